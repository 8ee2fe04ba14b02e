"""The probes over HTTP: /livez answers while the process does, /readyz (and /health, its
earlier name) only while the database answers and is at this version's head migration; when
not ready, a 503 in JSON saying what it found, and one line in the log, no traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, make_url

from api.app import create_app
from api.database import alembic_config, head_revision, migrate
from api.settings import Settings
from tests.conftest import drop_database, new_database

NOTHING_LISTENS = make_url("postgresql://coinbooks:secret@127.0.0.1:1/coinbooks")


async def _probe(settings: Settings, url: URL, *paths: str) -> list[httpx.Response]:
    app = create_app(settings, url)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test") as http:
            return [await http.get(path) for path in paths]
    finally:
        await app.state.engine.dispose()


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.fixture
def behind_url(server_url: URL) -> Iterator[URL]:
    """A database one migration behind the head."""
    url = new_database(server_url, server_url.set(database="template0"))
    below = ScriptDirectory.from_config(alembic_config(url)).get_revision(head_revision())
    assert below is not None and isinstance(below.down_revision, str)
    migrate(url, below.down_revision)
    yield url
    drop_database(server_url, url)


async def test_at_head_it_is_live_and_ready(client: httpx.AsyncClient) -> None:
    head = head_revision()
    live, ready, health = [await client.get(p) for p in ("/livez", "/readyz", "/health")]

    assert (live.status_code, live.json()) == (200, {"status": "live"})
    expected = {
        "status": "ready",
        "database": "reachable",
        "migration": {"current": head, "head": head},
    }
    assert (ready.status_code, ready.json()) == (200, expected)
    assert (health.status_code, health.json()) == (200, expected)


async def test_a_database_behind_the_head_is_not_ready(
    settings: Settings, behind_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    head = head_revision()
    below = ScriptDirectory.from_config(alembic_config(behind_url)).get_revision(head)
    assert below is not None
    caplog.set_level(logging.INFO)

    live, ready, health = await _probe(settings, behind_url, "/livez", "/readyz", "/health")

    assert live.status_code == 200
    expected = {
        "status": "not ready",
        "database": "reachable",
        "migration": {"current": below.down_revision, "head": head},
    }
    assert (ready.status_code, ready.json()) == (503, expected)
    assert (health.status_code, health.json()) == (503, expected)
    assert ready.headers["content-type"] == "application/json"
    _no_traceback(caplog)
    assert f"not ready: the database is at migration {below.down_revision}" in caplog.text


async def test_an_unreachable_database_is_not_ready(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    live, ready, health = await _probe(settings, NOTHING_LISTENS, "/livez", "/readyz", "/health")

    assert (live.status_code, live.json()) == (200, {"status": "live"})
    expected = {
        "status": "not ready",
        "database": "unreachable",
        "migration": {"current": None, "head": head_revision()},
    }
    assert (ready.status_code, ready.json()) == (503, expected)
    assert (health.status_code, health.json()) == (503, expected)
    _no_traceback(caplog)
    assert "not ready: the database cannot be reached: " in caplog.text
    assert "Connect call failed" in caplog.text
