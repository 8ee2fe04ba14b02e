"""Wallet reads against a growing history: one fresh migrated database, grown step by step
(bench/history.py) to each history size, the wallet query read over HTTP through the real
service at each size, and the integrity check over the whole history at the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from accounting.integrity import check_integrity
from accounting.ledger import chart
from api.database import create_engine, libpq_url, session_factory
from api.settings import Settings
from bench.finance_phase import FinanceResult, run_finance_phase
from bench.history import HistorySeeder, SeedProgress
from bench.load import LoadResult
from bench.over_http import ServiceMemory, ServiceProcess
from bench.wallet_reads import drive_wallet_reads

BALANCES = "SELECT code, balance * normal_sign, posting_count FROM account WHERE code = ANY($1)"
BALANCES_AS_OF = """
SELECT DISTINCT ON (a.code) a.code, p.balance_after * a.normal_sign
  FROM account a JOIN posting p ON p.account_id = a.id
 WHERE a.code = ANY($1) AND p.posted_at <= $2
 ORDER BY a.code, p.posted_at DESC, p.account_seq DESC"""


@dataclass(frozen=True, slots=True)
class ReadSeries:
    """One way of reading the wallets at each history size."""

    name: str
    clients: int
    past: bool = False
    """Read the balance as of an instant halfway through the history, not the current one."""


@dataclass(slots=True)
class ReadStep:
    postings: int
    """Postings in the books while the wallets were read."""
    entries: int
    reader_postings_min: int
    """The shortest history among the wallets read (postings on a reader's coin account)."""
    seed_seconds: float
    """Writing time of the history so far (every chunk, opening balances included)."""
    reads: dict[str, LoadResult] = field(default_factory=dict)
    """By read series."""
    mismatches: list[str] = field(default_factory=list)
    """Replies whose coins differ from the account's balance."""
    service_cpu_ms: dict[str, float] = field(default_factory=dict)
    """By read series: the service's CPU milliseconds per read (warm-up included)."""
    as_of: datetime | None = None
    """The past instant of the series that read past balances."""

    def to_json(self) -> dict[str, Any]:
        return {
            "postings": self.postings,
            "entries": self.entries,
            "reader_postings_min": self.reader_postings_min,
            "seed_seconds": round(self.seed_seconds, 1),
            "mismatches": self.mismatches,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "reads": {
                name: {
                    "connections": load.clients,
                    "per_second": round(load.per_second, 1),
                    "latency_p50_ms": _round(load.p50_ms),
                    "latency_p99_ms": _round(load.p99_ms),
                    "latency_mean_ms": _round(load.mean_ms),
                    "completed_in_window": load.completed,
                    "errors": load.errors,
                    "error_examples": load.error_examples,
                    "service_cpu_ms_per_read": (
                        round(self.service_cpu_ms[name], 3) if name in self.service_cpu_ms else None
                    ),
                }
                for name, load in self.reads.items()
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(slots=True)
class HistoryResult:
    users: int
    readers: int
    steps: list[ReadStep]
    seed: SeedProgress
    integrity_seconds: float
    integrity_checks: int
    violations: list[str]
    memory: ServiceMemory
    database_bytes: int
    """The history database's size on disk at the end (``pg_database_size``)."""
    finance: FinanceResult | None = None
    """Finance's reads and the journal export over the whole history."""

    @property
    def last(self) -> ReadStep:
        return self.steps[-1]

    def failures(self) -> list[str]:
        found = [f"history: {violation}" for violation in self.violations]
        for step in self.steps:
            found += [f"history at {step.postings:,} postings: {m}" for m in step.mismatches]
            found += [
                f"history at {step.postings:,} postings, {name}: {load.errors} reads failed"
                for name, load in step.reads.items()
                if load.errors
            ]
        if self.finance is not None:
            found += [f"finance reads: {problem}" for problem in self.finance.problems]
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "readers": self.readers,
            "seed": {
                "postings": self.seed.postings,
                "entries": self.seed.entries,
                "postings_written": self.seed.postings_written,
                "seconds": round(self.seed.seconds, 1),
                "postings_per_second": round(self.seed.postings_per_second, 1),
            },
            "integrity_seconds": round(self.integrity_seconds, 1),
            "database_bytes": self.database_bytes,
            "integrity_checks": self.integrity_checks,
            "books_ok": not self.violations,
            "violations": self.violations,
            "service_rss_peak_mib": round(self.memory.peak_rss / 1024 / 1024, 1),
            "steps": [step.to_json() for step in self.steps],
            "finance": None if self.finance is None else self.finance.to_json(),
        }


async def _read_step(
    seeder: HistorySeeder,
    service: ServiceProcess,
    settings: Settings,
    *,
    series: tuple[ReadSeries, ...],
    seconds: float,
    warmup: float,
) -> ReadStep:
    conn = seeder.conn
    # The per-posting balance updates leave the account table full of dead row versions that
    # autovacuum would clear in time; clear them now, as it would between bursts.
    await conn.execute("VACUUM (ANALYZE) account")
    progress = await seeder.progress()
    readers = seeder.reader_ids
    codes = [chart.user_coins(reader).code for reader in readers]
    balances = {row[0]: (int(row[1]), int(row[2])) for row in await conn.fetch(BALANCES, codes)}
    step = ReadStep(
        postings=progress.postings,
        entries=progress.entries,
        reader_postings_min=min(count for _, count in balances.values()),
        seed_seconds=progress.seconds,
    )
    past: dict[str, int] = {}
    if any(s.past for s in series):
        step.as_of = seeder.middle_instant
        past = {row[0]: int(row[1]) for row in await conn.fetch(BALANCES_AS_OF, codes, step.as_of)}
    for read in series:
        seen: dict[str, int] = {}
        cpu_before = service.cpu_seconds()
        load = step.reads[read.name] = await drive_wallet_reads(
            service,
            settings,
            readers,
            clients=read.clients,
            seconds=seconds,
            warmup=warmup,
            seen=seen,
            as_of=step.as_of if read.past else None,
        )
        if load.acknowledged:
            step.service_cpu_ms[read.name] = (
                (service.cpu_seconds() - cpu_before) * 1000 / load.acknowledged
            )
        for reader, code in zip(readers, codes, strict=True):
            held = past.get(code, 0) if read.past else balances[code][0]
            if reader in seen and seen[reader] != held:
                step.mismatches.append(
                    f"{read.name}: {reader} read {seen[reader]} coins, the books say {held}"
                )
    return step


@dataclass(frozen=True, slots=True)
class HistoryPlan:
    """How far to grow the history, over how many wallets, and how to read them at each size."""

    max_postings: int
    users: int
    readers: int
    """The wallets read (the first ``readers``; they carry a long history of their own)."""
    series: tuple[ReadSeries, ...]
    seconds: float
    warmup: float
    log_path: Path
    """Where the service's output goes."""
    finance: bool = True
    """Time finance's reads and the journal export over the grown history
    (bench/finance_phase.py)."""


def run_history_phase(url: URL, plan: HistoryPlan, say: Callable[[str], None]) -> HistoryResult:
    """Grow the history of the (fresh, migrated) database at ``url`` and read wallets at each
    size; the integrity check over it all at the end."""
    return asyncio.run(_history(url, plan, say))


@dataclass(frozen=True, slots=True)
class _Grown:
    """The history as grown and read, step by step."""

    steps: list[ReadStep]
    seed: SeedProgress
    memory: ServiceMemory
    database_bytes: int


async def _history(url: URL, plan: HistoryPlan, say: Callable[[str], None]) -> HistoryResult:
    grown = await _grow_and_read(url, plan, say)
    finance = None
    if plan.finance:
        say(f"  finance reads over {grown.seed.postings:,} postings")
        finance = await run_finance_phase(url, say)
    say(f"  integrity check over {grown.seed.postings:,} postings")
    started = time.monotonic()
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with session_factory(engine)() as session:
            report = await check_integrity(session)
    finally:
        await engine.dispose()
    integrity_seconds = time.monotonic() - started
    say(
        f"    {'no violation' if report.ok else f'{len(report.violations)} violations'}"
        f" ({len(report.checks)} checks, {integrity_seconds:,.0f} s)"
    )
    return HistoryResult(
        users=plan.users,
        readers=plan.readers,
        steps=grown.steps,
        seed=grown.seed,
        integrity_seconds=integrity_seconds,
        integrity_checks=len(report.checks),
        violations=[f"invariant {v.invariant} {v.check}: {v.detail}" for v in report.violations],
        memory=grown.memory,
        database_bytes=grown.database_bytes,
        finance=finance,
    )


async def _grow_and_read(url: URL, plan: HistoryPlan, say: Callable[[str], None]) -> _Grown:
    """Open the wallets, then grow the history to each size in turn and read the wallets over
    HTTP through the real service at each."""
    settings = Settings(database_url=url.render_as_string(hide_password=False))
    conn = await asyncpg.connect(libpq_url(url))
    steps: list[ReadStep] = []
    try:
        seeder = HistorySeeder(conn, users=plan.users, readers=plan.readers)
        await seeder.open_wallets(plan.max_postings)
        with ServiceProcess(url, plan.log_path) as service:
            await service.wait_healthy()
            for target in [0, *history_sizes(plan.max_postings)]:
                progress = await seeder.grow_to(target)
                if target:
                    say(
                        f"  {progress.postings:,} postings "
                        f"({progress.postings_per_second:,.0f} postings/s written so far)"
                    )
                step = await _read_step(
                    seeder,
                    service,
                    settings,
                    series=plan.series,
                    seconds=plan.seconds,
                    warmup=plan.warmup,
                )
                steps.append(step)
                say("    wallet reads: " + _read_figures(step))
            service.note_peak()
        seed = await seeder.progress()
        database_bytes = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()
    return _Grown(steps, seed, service.memory, database_bytes)


def _read_figures(step: ReadStep) -> str:
    return "; ".join(
        f"{name} {load.per_second:,.0f}/s p50 {load.p50_ms or 0:.1f} p99 {load.p99_ms or 0:.1f} ms"
        for name, load in step.reads.items()
    )


def history_sizes(maximum: int) -> list[int]:
    """The history sizes (postings) to read at after the opening balances: each power of ten
    from 10^5 below ``maximum``, then ``maximum`` itself."""
    sizes: list[int] = []
    size = 100_000
    while size < maximum:
        sizes.append(size)
        size *= 10
    sizes.append(maximum)
    return sizes
