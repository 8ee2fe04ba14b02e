"""Every revision's downgrade puts back exactly the schema of the revision below it (what a fresh
upgrade to that revision leaves, compared object by object in the catalog), down to an empty
database, and the upgrade back to head leaves the schema the migrated template has."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from api.database import alembic_config, downgrade, migrate
from tests.conftest import drop_database, new_database, run_sync
from tests.migrations.catalog import Catalog, catalog, differences


@pytest.fixture
def empty_url(server_url: URL) -> Iterator[URL]:
    """A database of this test's own, with nothing in it."""
    url = new_database(server_url, server_url.set(database="template0"))
    yield url
    drop_database(server_url, url)


def _revisions(url: URL) -> list[str]:
    """Every revision, oldest first."""
    scripts = ScriptDirectory.from_config(alembic_config(url))
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


def _schema(url: URL) -> Catalog:
    return run_sync(lambda: catalog(url))


def test_each_downgrade_restores_the_schema_below_and_upgrading_again_restores_head(
    empty_url: URL, template_url: URL
) -> None:
    revisions = _revisions(empty_url)
    empty = _schema(empty_url)
    upgraded: dict[str, Catalog] = {}
    for revision in revisions:
        migrate(empty_url, revision)
        upgraded[revision] = _schema(empty_url)
    assert differences(_schema(template_url), upgraded[revisions[-1]]) == []

    for revision in reversed(revisions[:-1]):
        downgrade(empty_url, revision)
        assert differences(upgraded[revision], _schema(empty_url)) == [], f"down to {revision}"
    downgrade(empty_url, "base")
    at_base = {k: v for k, v in _schema(empty_url).items() if "alembic_version" not in k}
    assert differences(empty, at_base) == []

    migrate(empty_url)
    assert differences(upgraded[revisions[-1]], _schema(empty_url)) == []
