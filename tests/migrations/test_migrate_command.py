"""``coinbooks migrate`` as a deployment runs it: several services starting at once on a fresh
database each migrate it, and ``--status`` tells the database's migration from the head."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from api.database import head_revision
from tests.conftest import drop_database, new_database

COINBOOKS = str(Path(sys.executable).parent / "coinbooks")
ROOT = Path(__file__).parents[2]


@pytest.fixture
def empty_url(server_url: URL) -> Iterator[URL]:
    url = new_database(server_url, server_url.set(database="template0"))
    yield url
    drop_database(server_url, url)


def _start(url: URL, *options: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COINBOOKS_")}
    environment.update(DATABASE_URL=url.render_as_string(hide_password=False), PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [COINBOOKS, "migrate", *options],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(url: URL, *options: str) -> tuple[int, str, str]:
    process = _start(url, *options)
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def test_two_migrations_at_once_on_a_fresh_database_both_succeed(empty_url: URL) -> None:
    first, second = _start(empty_url), _start(empty_url)
    outcomes = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in (first, second)]
    for process in (first, second):
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    assert outcomes == [(0, ""), (0, "")]
    assert _run(empty_url, "--status")[0] == 0


def test_status_tells_the_database_from_the_head(empty_url: URL) -> None:
    host = empty_url.query.get("host") or empty_url.host or "localhost"
    where = f"database {empty_url.database} at {host}"
    head = head_revision()

    code, out, err = _run(empty_url, "--status")
    assert (code, err) == (1, "")
    assert " ".join(out.split()) == (
        f"{where}: current none, head {head} Behind the head: run `coinbooks migrate`"
    )

    assert _run(empty_url)[0] == 0

    code, out, err = _run(empty_url, "--status")
    assert (code, " ".join(out.split()), err) == (0, f"{where}: current {head}, head {head}", "")
