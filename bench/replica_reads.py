"""Reads with and without a streaming replica: wallet and history (``transactions``) reads over
HTTP through the real service, once on the primary alone and once with
``COINBOOKS_READ_REPLICA_URLS`` naming a hot standby of it, reported as ratios (with / without).

The primary and the replica are built from the embedded PostgreSQL's own programs
(api/local_replicas.py) whatever server the rest of the benchmark uses, on this one machine: the
replica adds no processors here, only a second server sharing them, so the ratio says what the
routing costs (each read asks the replica how far it has replayed first), not what a replica on
a machine of its own adds. ``python -m bench.replica_reads [--seconds N]`` runs it alone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import URL

from accounting.ledger import chart
from accounting.policy.access import Role
from api.auth import issue_token
from api.database import create_engine, libpq_url, migrate, session_factory
from api.local_replicas import LocalReplicaPair
from api.settings import Settings
from bench.core import purchase_request, purchase_service, user_ids
from bench.load import LoadResult, NotAcknowledged, drive
from bench.over_http import ServiceProcess
from bench.rawhttp import Connection, graphql_body, graphql_data, post_request, request_head
from bench.wallet_reads import drive_wallet_reads

READERS = 32
PURCHASES_EACH = 8
"""Each reader's history: this many purchases of 350 coins."""
CLIENTS = 16
HISTORY = """
query History { transactions(first: 10) { edges { node { kind coins coinsAfter } } } }
"""
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class ReadRun:
    """Wallet and history reads against one configuration of the service."""

    wallet: LoadResult
    history: LoadResult
    on_replica: float
    """Reads the replica answered, as /metrics counted them (0 without one)."""
    on_primary: float


@dataclass(frozen=True, slots=True)
class ReplicaReads:
    without: ReadRun
    with_replica: ReadRun
    clients: int
    mismatches: list[str]

    def ratio(self, kind: str) -> float | None:
        before = getattr(self.without, kind).per_second
        after = getattr(self.with_replica, kind).per_second
        return after / before if before else None

    def failures(self) -> list[str]:
        found = [f"replica reads: {m}" for m in self.mismatches]
        for name, run in (("without", self.without), ("with a replica", self.with_replica)):
            for kind, load in (("wallet", run.wallet), ("history", run.history)):
                if load.errors:
                    found.append(f"replica reads, {kind} {name}: {load.errors} reads failed")
        if not self.with_replica.on_replica:
            found.append("replica reads: the replica answered no read")
        return found

    def to_json(self) -> dict[str, Any]:
        def run(r: ReadRun) -> dict[str, Any]:
            return {
                "wallet_per_second": round(r.wallet.per_second, 1),
                "wallet_p99_ms": r.wallet.p99_ms,
                "history_per_second": round(r.history.per_second, 1),
                "history_p99_ms": r.history.p99_ms,
                "reads_on_replica": r.on_replica,
                "reads_on_primary": r.on_primary,
            }

        return {
            "clients": self.clients,
            "without_replica": run(self.without),
            "with_replica": run(self.with_replica),
            "wallet_ratio": _round(self.ratio("wallet")),
            "history_ratio": _round(self.ratio("history")),
            "mismatches": self.mismatches,
        }

    def table(self) -> Table:
        table = Table(title="Reads over HTTP with a streaming replica (same machine)")
        table.add_column("reads")
        table.add_column("primary only, /s", justify="right")
        table.add_column("with a replica, /s", justify="right")
        table.add_column("ratio", justify="right")
        for kind in ("wallet", "history"):
            ratio = self.ratio(kind)
            table.add_row(
                f"{kind} ({self.clients} connections)",
                f"{getattr(self.without, kind).per_second:,.0f}",
                f"{getattr(self.with_replica, kind).per_second:,.0f}",
                "-" if ratio is None else f"{ratio:.3f}",
            )
        return table


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """These variables set for the service started inside (a subprocess inherits them)."""
    kept = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in kept.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def _seed(url: URL, readers: list[str]) -> dict[str, int]:
    """Give each reader its history; each one's coins, as the books hold them."""
    engine = create_engine(url, pool_size=8, max_overflow=0)
    try:
        purchases = purchase_service(session_factory(engine))
        for _ in range(PURCHASES_EACH):
            await asyncio.gather(
                *(purchases.purchase_coins(purchase_request(reader)) for reader in readers)
            )
    finally:
        await engine.dispose()
    codes = {chart.user_coins(reader).code: reader for reader in readers}
    connection = await asyncpg.connect(libpq_url(url))
    try:
        rows = await connection.fetch(
            "SELECT code, balance * normal_sign FROM account WHERE code = ANY($1)", list(codes)
        )
    finally:
        await connection.close()
    return {codes[code]: int(balance) for code, balance in rows}


async def _drive_history(
    service: ServiceProcess, settings: Settings, readers: list[str], seconds: float, warmup: float
) -> LoadResult:
    host = urlsplit(service.base_url)
    assert host.hostname is not None and host.port is not None
    requests = [
        post_request(
            request_head(
                f"{host.hostname}:{host.port}",
                "/graphql",
                issue_token(settings, reader, [Role("viewer")]),
            ),
            graphql_body(HISTORY),
        )
        for reader in readers
    ]
    connections = [Connection(host.hostname, host.port) for _ in range(CLIENTS)]

    async def attempt(client: int, sequence: int) -> None:
        status, reply = await connections[client].exchange(
            requests[(client + sequence) % len(requests)]
        )
        edges = graphql_data(status, reply, "transactions")["edges"]
        if len(edges) != PURCHASES_EACH:
            raise NotAcknowledged(f"{len(edges)} movements, not {PURCHASES_EACH}")

    try:
        return await drive(CLIENTS, seconds, warmup, attempt)
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))


async def _reads_counted(service: ServiceProcess) -> tuple[float, float]:
    """(on a replica, on the primary), as the service's /metrics counted them."""
    async with httpx.AsyncClient(base_url=service.base_url) as http:
        text = (await http.get("/metrics")).text
    counted = [
        (line.split('database="')[1].split('"')[0], float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("coinbooks_graphql_reads_total{")
    ]
    on_primary = sum(n for database, n in counted if database == "primary")
    return sum(n for _, n in counted) - on_primary, on_primary


def _run(
    url: URL,
    readers: list[str],
    balances: dict[str, int],
    *,
    seconds: float,
    warmup: float,
    mismatches: list[str],
    log_path: Path,
) -> ReadRun:
    settings = Settings(database_url=url.render_as_string(hide_password=False))
    with ServiceProcess(url, log_path) as service:

        async def go() -> ReadRun:
            await service.wait_healthy()
            seen: dict[str, int] = {}
            wallet = await drive_wallet_reads(
                service,
                settings,
                readers,
                clients=CLIENTS,
                seconds=seconds,
                warmup=warmup,
                seen=seen,
            )
            mismatches.extend(
                f"{reader} read {coins} coins, the books say {balances[reader]}"
                for reader, coins in seen.items()
                if coins != balances[reader]
            )
            history = await _drive_history(service, settings, readers, seconds, warmup)
            on_replica, on_primary = await _reads_counted(service)
            return ReadRun(wallet, history, on_replica, on_primary)

        return asyncio.run(go())


def run_replica_reads(
    *, seconds: float, warmup: float, say: Any, readers: int = READERS
) -> ReplicaReads:
    """Build the primary and its replica, give the readers a history, then read it over HTTP
    without and with the replica."""
    say("Reads over HTTP without and with a streaming replica (embedded primary and replica)")
    with LocalReplicaPair(replicas=1) as pair:
        assert pair.primary is not None
        asyncio.run(_create(pair.primary.url()))
        url = pair.primary.url("coinbooks")
        migrate(url)
        wallets = user_ids(f"reader-{uuid.uuid4().hex[:4]}", readers)
        balances = asyncio.run(_seed(url, wallets))
        mismatches: list[str] = []
        runs = []
        replica = pair.replicas[0].url("coinbooks").render_as_string(hide_password=False)
        for label, replicas in (("primary only", ""), ("with a replica", replica)):
            with _environment(COINBOOKS_READ_REPLICA_URLS=replicas):
                runs.append(
                    _run(
                        url,
                        wallets,
                        balances,
                        seconds=seconds,
                        warmup=warmup,
                        mismatches=mismatches,
                        log_path=RESULTS_DIR / "service-replica-reads.log",
                    )
                )
            run = runs[-1]
            say(
                f"  {label}: wallet {run.wallet.per_second:,.0f}/s, history "
                f"{run.history.per_second:,.0f}/s ({run.on_replica:,.0f} reads on the replica)"
            )
    return ReplicaReads(runs[0], runs[1], CLIENTS, mismatches)


async def _create(server: URL) -> None:
    connection = await asyncpg.connect(libpq_url(server))
    try:
        await connection.execute('CREATE DATABASE "coinbooks"')
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replica_reads")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    console = Console()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = run_replica_reads(seconds=args.seconds, warmup=args.warmup, say=console.print)
    console.print(result.table())
    for failure in result.failures():
        console.print(f"[bold red]FAIL[/bold red] {failure}")
    return 1 if result.failures() else 0


if __name__ == "__main__":
    raise SystemExit(main())
