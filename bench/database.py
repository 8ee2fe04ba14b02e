"""The PostgreSQL server the benchmark runs against: the embedded one in a temporary
directory, or the one ``DATABASE_URL`` names. Every database the benchmark makes on it is
called ``coinbooks_bench*`` and is dropped at the end."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL, make_url

from api.database import libpq_url
from api.local_postgres import LocalPostgres

PREFIX = "coinbooks_bench"


async def _execute(url: URL, *statements: str) -> None:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def fetch_settings(url: URL) -> dict[str, str]:
    """The server's version and the settings that move the figures."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        names = [
            "server_version",
            "max_connections",
            "shared_buffers",
            "synchronous_commit",
            "fsync",
            "wal_level",
        ]
        found = {name: str(await conn.fetchval(f"SHOW {name}")) for name in names}
        found["version"] = str(await conn.fetchval("SELECT version()"))
    finally:
        await conn.close()
    return found


class BenchServer:
    """Creates, clones and drops the benchmark's databases. Call it outside an event loop."""

    def __init__(self, admin_url: URL, *, embedded: bool) -> None:
        self.admin_url = admin_url
        self.embedded = embedded
        self.created: list[str] = []

    @property
    def description(self) -> str:
        if self.embedded:
            return "embedded PostgreSQL (temporary directory)"
        return f"DATABASE_URL {self.admin_url.render_as_string(hide_password=True)}"

    def url(self, name: str) -> URL:
        return self.admin_url.set(database=name)

    def create(self, suffix: str, *, template: URL | None = None) -> URL:
        """A new, empty database ``coinbooks_bench_<suffix>`` (or a copy of ``template``),
        replacing a leftover of the same name."""
        name = f"{PREFIX}_{suffix}"
        clone = f' TEMPLATE "{template.database}"' if template is not None else ""
        asyncio.run(
            _execute(
                self.admin_url,
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                f'CREATE DATABASE "{name}"{clone}',
            )
        )
        self.created.append(name)
        return self.url(name)

    def drop(self, url: URL) -> None:
        name = url.database
        assert name is not None and name.startswith(PREFIX)
        asyncio.run(_execute(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def checkpoint(self) -> None:
        """Flush dirty pages before a timed run, so no run pays for the previous one's writes.
        Needs a superuser (or pg_checkpoint); skipped where not allowed."""
        with suppress(asyncpg.PostgresError):
            asyncio.run(_execute(self.admin_url, "CHECKPOINT"))

    def settings(self) -> dict[str, str]:
        return asyncio.run(fetch_settings(self.admin_url))

    def drop_all(self) -> None:
        for name in list(self.created):
            self.drop(self.url(name))


@contextmanager
def bench_server() -> Iterator[BenchServer]:
    """The server in ``DATABASE_URL`` if set, else an embedded one that lives for the context."""
    with ExitStack() as stack:
        given = os.environ.get("DATABASE_URL")
        if given:
            server = BenchServer(make_url(given), embedded=False)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="coinbooks-bench-"))
            local = stack.enter_context(LocalPostgres(Path(tmp) / "pgdata", temporary=True))
            server = BenchServer(local.url(), embedded=True)
        try:
            yield server
        finally:
            server.drop_all()
