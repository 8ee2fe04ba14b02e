"""``python -m bench.platform_shards [--seconds N] [--shards K] [--services S]``: what splitting
the hot platform accounts into sub-accounts (COINBOOKS_PLATFORM_SHARDS) does to gifts per
second on one server: gifts through the core (32 senders, 100 creators, uniform) with the
accounts whole and split in ``K``, in turn, each on a fresh copy of the migrated template.

The gifts go through ``S`` gift services in this process, as through ``S`` processes of the
service: each batches its own gifts (one batch in flight per service), so up to ``S`` batches
are written at once and queue for the platform rows they share. Whole, every batch locks the
same four platform rows; split, a batch locks its senders' and creators' sub-accounts, and two
batches wait for each other only where those meet. The variants run in turn, ``ROUNDS`` times
each, so that drift on a shared machine falls on both alike; the figure is the ratio of their
mean rates (split over whole). Every run's books are checked (bench/books.py), and the split
run's platform accounts must be spread over more than one sub-account."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
from rich.table import Table
from sqlalchemy.engine import URL

from accounting.ledger import chart
from api.database import libpq_url, migrate
from bench.database import BenchServer, bench_server
from bench.phases import PhaseResult, run_gift_phase

ROUNDS = 2
CLIENTS = 32
CREATORS = 100
SHARDS = 8
SERVICES = 4


@dataclass(frozen=True, slots=True)
class ShardRun:
    shards: int
    result: PhaseResult
    sub_accounts: int
    """Platform accounts posted to, sub-accounts counted each: 4 whole (coins spent, diamonds
    issued, gift revenue and promotions, less those no gift touched)."""


@dataclass(frozen=True, slots=True)
class ShardSplit:
    shards: int
    services: int
    runs: list[ShardRun]

    def per_second(self, shards: int) -> float:
        rates = [run.result.load.per_second for run in self.runs if run.shards == shards]
        return sum(rates) / len(rates) if rates else 0.0

    @property
    def ratio(self) -> float | None:
        """Gifts/s split over gifts/s whole (above 1.0: the split helps)."""
        whole = self.per_second(1)
        return self.per_second(self.shards) / whole if whole else None

    def to_json(self) -> dict[str, Any]:
        return {
            "clients": CLIENTS,
            "creators": CREATORS,
            "services": self.services,
            "shards": self.shards,
            "whole_per_second": round(self.per_second(1), 1),
            "split_per_second": round(self.per_second(self.shards), 1),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "runs": [
                {
                    "shards": run.shards,
                    "per_second": round(run.result.load.per_second, 1),
                    "p99_ms": run.result.load.p99_ms,
                    "platform_accounts_moved": run.sub_accounts,
                }
                for run in self.runs
            ],
        }

    def table(self) -> Table:
        table = Table(title="Core gifts with the hot platform accounts whole and split")
        table.add_column("gifts")
        table.add_column("whole, /s", justify="right")
        table.add_column(f"split in {self.shards}, /s", justify="right")
        table.add_column("ratio", justify="right")
        table.add_row(
            f"{CLIENTS} senders, {CREATORS} creators, {self.services} gift services",
            f"{self.per_second(1):,.0f}",
            f"{self.per_second(self.shards):,.0f}",
            "-" if self.ratio is None else f"{self.ratio:.3f}",
        )
        return table

    def failures(self) -> list[str]:
        found = []
        for run in self.runs:
            if not run.result.books.ok or run.result.load.errors:
                found.append(f"platform shards {run.shards}: books or errors")
            if run.shards > 1 and run.sub_accounts <= 4:
                found.append(f"platform shards {run.shards}: gifts landed on one sub-account")
        return found


async def platform_accounts_moved(url: URL) -> int:
    """The hot platform accounts (sub-accounts each) that any posting moved."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM account WHERE posting_count > 0 AND code ~"
                " '^platform:(coins:spent|diamonds:issued|revenue:gifts|expense:promotions)'"
            )
        )
    finally:
        await conn.close()


def run_shard_split(
    server: BenchServer,
    template: URL,
    *,
    seconds: float,
    warmup: float,
    max_pool: int,
    shards: int = SHARDS,
    services: int = SERVICES,
    rounds: int = ROUNDS,
) -> ShardSplit:
    """Whole and split in ``shards``, ``rounds`` times each, alternated, each on a fresh copy of
    ``template``; the count in force before is restored after."""
    runs = []
    before = chart.platform_shards()
    try:
        for round_ in range(rounds):
            for count in (1, shards):
                url = server.create(f"shards_{count}_{round_}", template=template)
                server.checkpoint()
                chart.configure_platform_shards(count)
                result = run_gift_phase(
                    url,
                    clients=CLIENTS,
                    seconds=seconds,
                    warmup=warmup,
                    creators=CREATORS,
                    max_pool=max_pool,
                    services=services,
                )
                moved = asyncio.run(platform_accounts_moved(url))
                server.drop(url)
                runs.append(ShardRun(count, result, moved))
    finally:
        chart.configure_platform_shards(before)
    return ShardSplit(shards, services, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--shards", type=int, default=SHARDS)
    parser.add_argument("--services", type=int, default=SERVICES)
    args = parser.parse_args()
    with bench_server() as server:
        template = server.create("template")
        migrate(template)
        split = run_shard_split(
            server,
            template,
            seconds=args.seconds,
            warmup=args.warmup,
            max_pool=CLIENTS,
            shards=args.shards,
            services=args.services,
            rounds=args.rounds,
        )
        server.drop(template)
    for run in split.runs:
        load = run.result.load
        p99 = "-" if load.p99_ms is None else f"{load.p99_ms:,.1f}"
        print(
            f"platform shards {run.shards}: {load.per_second:,.1f} gifts/s, p99 {p99} ms,"
            f" {run.sub_accounts} platform (sub-)accounts moved"
        )
    print(
        f"mean over {split.services} gift services: {split.per_second(1):,.1f} gifts/s whole,"
        f" {split.per_second(split.shards):,.1f} split in {split.shards};"
        f" ratio {split.ratio or 0:.3f}; {'; '.join(split.failures()) or 'books OK'}"
    )


if __name__ == "__main__":
    main()
