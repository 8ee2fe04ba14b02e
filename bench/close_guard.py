"""``python -m bench.close_guard [--seconds N] [--rounds R]``: what the period-close guard
costs the gift hot path (also a phase of ``python -m bench``): gifts through the core (32
senders, 100 creators, uniform) with the guard as installed and with it disabled, each on a
fresh copy of the migrated template that has a month closed before the run.

The guard is the statement-level trigger ``journal_entry_closed_period``
(migrations/sql/invariants/close.sql): after each insert into ``journal_entry`` it reads the
earliest ``posted_at`` of the statement's new rows and the end of the last closed period. A
gift is dated now, so it never takes the close's advisory lock. Sealing the chain is not on the
gift path at all: it runs after commit (a close, or ``coinbooks seal``). The two variants run in
turn, ``ROUNDS`` times each, so that drift on a shared machine falls on both alike; the figure is
the ratio of their mean rates."""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.engine import URL

from accounting.close.rules import month_name, month_start
from accounting.close.service import CloseRequest, close_period
from api.database import create_engine, libpq_url, migrate, session_factory
from bench.database import BenchServer, bench_server
from bench.phases import PhaseResult, run_gift_phase

GUARD_TRIGGER = "journal_entry_closed_period"
ROUNDS = 2
"""Runs of each variant, alternated: guard on, guard off, guard on, guard off."""
CLIENTS = 32
CREATORS = 100


async def prepare(url: URL, *, guard: bool) -> None:
    """Close the month a year before this one (as finance would, so that the guard has a
    closed period to compare with), then enable or disable the guard."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        month = month_start(month_start(datetime.now(UTC)) - timedelta(days=365))
        await close_period(
            session_factory(engine),
            CloseRequest(month_name(month), "user:bench", "a period closed before the run"),
        )
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(libpq_url(url))
    try:
        switch = "ENABLE" if guard else "DISABLE"
        await conn.execute(f"ALTER TABLE journal_entry {switch} TRIGGER {GUARD_TRIGGER}")
    finally:
        await conn.close()


async def guard_enabled(url: URL) -> bool:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        enabled = await conn.fetchval(
            "SELECT tgenabled <> 'D' FROM pg_trigger WHERE tgname = $1 AND NOT tgisinternal",
            GUARD_TRIGGER,
        )
    finally:
        await conn.close()
    return bool(enabled)


@dataclass(frozen=True, slots=True)
class GuardRun:
    guard: bool
    result: PhaseResult


@dataclass(frozen=True, slots=True)
class GuardCost:
    runs: list[GuardRun]

    def per_second(self, *, guard: bool) -> float:
        rates = [run.result.load.per_second for run in self.runs if run.guard == guard]
        return sum(rates) / len(rates) if rates else 0.0

    @property
    def ratio(self) -> float | None:
        """Gifts/s with the guard over gifts/s without it (1.0: it costs nothing)."""
        without = self.per_second(guard=False)
        return self.per_second(guard=True) / without if without else None

    @property
    def books_ok(self) -> bool:
        return all(run.result.books.ok and not run.result.load.errors for run in self.runs)


def run_guard_cost(
    server: BenchServer,
    template: URL,
    *,
    seconds: float,
    warmup: float,
    max_pool: int,
    rounds: int = ROUNDS,
) -> GuardCost:
    """Each variant ``rounds`` times, alternated, each on a fresh copy of ``template``."""
    runs = []
    for round_ in range(rounds):
        for guard in (True, False):
            url = server.create(f"guard_{'on' if guard else 'off'}_{round_}", template=template)
            asyncio.run(prepare(url, guard=guard))
            assert asyncio.run(guard_enabled(url)) == guard
            server.checkpoint()
            result = run_gift_phase(
                url,
                clients=CLIENTS,
                seconds=seconds,
                warmup=warmup,
                creators=CREATORS,
                max_pool=max_pool,
            )
            server.drop(url)
            runs.append(GuardRun(guard, result))
    return GuardCost(runs)


ENTRY = (
    "INSERT INTO journal_entry (kind, event_key, fingerprint, posted_at, actor, rates, refs)"
    " VALUES ('gift', $1, 'bench', clock_timestamp(), 'user:bench',"
    ' \'{"diamonds_per_coin": "1"}\', \'{"gift_id": 1}\')'
)
"""A gift-shaped entry's insert: one statement, so the guard runs once."""


async def statement_cost(url: URL, *, inserts: int, rounds: int) -> tuple[float, float]:
    """Microseconds per entry insert (the statement alone, its transaction rolled back so the
    deferred checks never run) with the guard enabled and disabled, on one connection,
    alternated ``rounds`` times: the guard's own cost, without the gift path's Python."""
    await prepare(url, guard=True)
    conn = await asyncpg.connect(libpq_url(url))
    spent = {True: 0.0, False: 0.0}
    try:
        for round_ in range(rounds):
            for guard in (True, False):
                switch = "ENABLE" if guard else "DISABLE"
                await conn.execute(f"ALTER TABLE journal_entry {switch} TRIGGER {GUARD_TRIGGER}")
                for n in range(inserts):
                    transaction = conn.transaction()
                    await transaction.start()
                    started = time.perf_counter()
                    await conn.execute(ENTRY, f"bench:{round_}:{guard}:{n}")
                    spent[guard] += time.perf_counter() - started
                    await transaction.rollback()
        await conn.execute(f"ALTER TABLE journal_entry ENABLE TRIGGER {GUARD_TRIGGER}")
    finally:
        await conn.close()
    total = inserts * rounds
    return spent[True] / total * 1e6, spent[False] / total * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--inserts", type=int, default=2_000, help="entry inserts per round")
    args = parser.parse_args()
    with bench_server() as server:
        template = server.create("template")
        migrate(template)
        statements = server.create("guard_statements", template=template)
        with_guard, without = asyncio.run(
            statement_cost(statements, inserts=args.inserts, rounds=args.rounds)
        )
        server.drop(statements)
        cost = run_guard_cost(
            server,
            template,
            seconds=args.seconds,
            warmup=args.warmup,
            max_pool=CLIENTS,
            rounds=args.rounds,
        )
        server.drop(template)
    for run in cost.runs:
        load = run.result.load
        state = "installed" if run.guard else "disabled "
        p99 = "-" if load.p99_ms is None else f"{load.p99_ms:,.1f}"
        print(f"guard {state}: {load.per_second:,.1f} gifts/s, p99 {p99} ms")
    print(
        f"mean: {cost.per_second(guard=True):,.1f} gifts/s with the guard, "
        f"{cost.per_second(guard=False):,.1f} without; ratio {cost.ratio or 0:.3f}; "
        f"books {'OK' if cost.books_ok else 'FAIL'}"
    )
    print(
        f"one entry's insert statement: {with_guard:,.1f} µs with the guard, {without:,.1f} µs"
        f" without ({with_guard - without:+,.1f} µs; {args.inserts * args.rounds:,} each)"
    )


if __name__ == "__main__":
    main()
