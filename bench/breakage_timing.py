"""``python -m bench.breakage_timing [--wallets N]``: what a breakage run costs.

On a fresh database of the embedded PostgreSQL (a temporary directory), N wallets each get 100
coins worth $1.00 through the ledger's own posting path; then, dated two years on (the day
after it taken as today), a dry run reads the dormant wallets and real runs break them, 500 a
run, until none is left. Each is timed once; docs/accounting.md ("Breakage") gives a run's
figures."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.breakage.rules import BreakagePolicy
from accounting.breakage.service import BreakageRequest, recognise_breakage
from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.posting import in_transaction, post_entry
from api.database import create_engine, ensure_database, migrate, session_factory
from api.local_postgres import LocalPostgres


def grant(user: str) -> Entry:
    """100 coins worth $1.00 into ``user``'s wallet, as a purchase would put them."""
    return Entry(
        EntryKind.TRANSFER,
        f"bench-grant:{user}",
        (
            Posting(chart.coins_issued(), 100),
            Posting(chart.user_coins(user), -100),
            Posting(chart.bank("USD"), 1_000_000),
            Posting(chart.user_coins_value(user, "USD"), -1_000_000),
        ),
        actor="bench",
    )


async def measure(url: URL, wallets: int) -> list[tuple[str, int, float]]:
    """(what, wallets, seconds) of the dry run and of each real run."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    sessions = session_factory(engine)

    async def grant_all(session: AsyncSession) -> None:
        for n in range(wallets):
            await post_entry(session, grant(f"u{n:06}"))

    timings = []
    try:
        await in_transaction(sessions, grant_all)
        as_of = datetime.now(UTC).date() + timedelta(days=730)
        for number in range(wallets // 500 + 2):
            dry_run = number == 0
            started = time.perf_counter()
            done = await recognise_breakage(
                sessions,
                BreakageRequest(as_of, "user:bench", f"bench-breakage-{number:04}", dry_run),
                policy=BreakagePolicy(),
                functional_currency="USD",
                today=as_of + timedelta(days=1),
            )
            seconds = time.perf_counter() - started
            timings.append(("dry run" if dry_run else "run", len(done.wallets), seconds))
            if not dry_run and not done.more:
                break
    finally:
        await engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wallets", type=int, default=2_000)
    wallets = parser.parse_args().wallets
    with tempfile.TemporaryDirectory() as data, LocalPostgres(Path(data) / "pgdata") as server:
        url = asyncio.run(ensure_database(server.url(), "breakage_timing"))
        migrate(url)
        timings = asyncio.run(measure(url, wallets))
    print(f"{wallets} dormant wallets")
    for what, broken, seconds in timings:
        per_wallet = f", {seconds / broken * 1e6:,.0f} µs per wallet" if broken else ""
        print(f"{what}: {broken} wallets in {seconds * 1e3:.0f} ms{per_wallet}")


if __name__ == "__main__":
    main()
