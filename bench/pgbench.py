"""The baseline: PostgreSQL's own pgbench running its built-in TPC-B script on the same server,
in a database of its own."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from sqlalchemy.engine import URL

from api.local_postgres import postgres_tool

SCALE = 10
THREADS = 2
_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class PgbenchResult:
    clients: int
    seconds: int
    tps: float
    latency_avg_ms: float | None
    failed: int


class PgbenchError(RuntimeError):
    pass


def connection_args(url: URL) -> tuple[list[str], dict[str, str]]:
    """pgbench's -h/-p/-U options (and the password, in the environment) for ``url``. The
    embedded server listens on a Unix socket: its directory is the URL's ``host`` parameter."""
    args: list[str] = []
    socket_dir = url.query.get("host")
    host = socket_dir if isinstance(socket_dir, str) else url.host
    if host:
        args += ["-h", host]
    if url.port:
        args += ["-p", str(url.port)]
    args += ["-U", url.username or "postgres"]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def _pgbench(url: URL, *options: str) -> str:
    args, env = connection_args(url)
    assert url.database is not None
    command = [postgres_tool("pgbench"), *options, *args, url.database]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise PgbenchError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def initialise(url: URL, scale: int = SCALE) -> None:
    """``pgbench -i -s <scale>``: the TPC-B tables, 100,000 accounts per unit of scale."""
    _pgbench(url, "-i", "-s", str(scale), "-q")


def parse(output: str, clients: int, seconds: int) -> PgbenchResult:
    tps = _TPS.search(output)
    if tps is None:
        raise PgbenchError(f"no tps in pgbench's output:\n{output[-2000:]}")
    latency = _LATENCY.search(output)
    failed = _FAILED.search(output)
    return PgbenchResult(
        clients=clients,
        seconds=seconds,
        tps=float(tps.group(1)),
        latency_avg_ms=float(latency.group(1)) if latency else None,
        failed=int(failed.group(1)) if failed else 0,
    )


def run(url: URL, clients: int, seconds: int) -> PgbenchResult:
    """``pgbench -c <clients> -j 2 -T <seconds>``, the built-in TPC-B script."""
    output = _pgbench(url, "-c", str(clients), "-j", str(min(THREADS, clients)), "-T", str(seconds))
    return parse(output, clients, seconds)


@dataclass(frozen=True, slots=True)
class Baseline:
    """pgbench at one client count, run before the ledger phases and again after them: the
    figure is the mean, and how far the two runs differ says how noisy the machine was."""

    clients: int
    runs: tuple[PgbenchResult, ...]

    @property
    def tps(self) -> float:
        return sum(run.tps for run in self.runs) / len(self.runs)

    @property
    def drift(self) -> float:
        """(highest - lowest) / mean tps of the runs."""
        tps = [run.tps for run in self.runs]
        return (max(tps) - min(tps)) / self.tps if self.tps else 0.0

    @property
    def latency_avg_ms(self) -> float | None:
        found = [run.latency_avg_ms for run in self.runs if run.latency_avg_ms is not None]
        return sum(found) / len(found) if found else None

    @property
    def failed(self) -> int:
        return sum(run.failed for run in self.runs)
