"""``python -m bench.purchase_cpu [--purchases N] [--workers 1,8]``: this process's CPU time and
the SQL statements per purchase through the core (bench/core.py's purchases: the sandbox
provider, coins_350 in USD on the web), on a fresh migrated database of the embedded PostgreSQL
(or DATABASE_URL's server). Each worker count is measured after one warm-up purchase per worker;
CPU is ``time.process_time`` over the purchases, so it is the service's Python and driver, not
PostgreSQL's. See docs/performance.md."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL

from api.database import create_engine, migrate, session_factory
from bench.core import purchase_request, purchase_service, user_ids
from bench.database import bench_server


async def measure(url: URL, workers: int, purchases: int) -> tuple[float, float]:
    """CPU milliseconds and statements per purchase, ``purchases`` spread over ``workers``."""
    engine = create_engine(url, pool_size=workers, max_overflow=0)
    sent = [0]

    def count(*_: Any) -> None:
        sent[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    service = purchase_service(session_factory(engine))
    buyers = user_ids("cpu", workers)
    each = max(1, purchases // workers)

    async def buy(buyer: str, times: int) -> None:
        for _ in range(times):
            result = await service.purchase_coins(purchase_request(buyer))
            assert result.purchase.status == "completed"

    try:
        await asyncio.gather(*(buy(buyer, 1) for buyer in buyers))  # warm-up
        sent[0] = 0
        started = time.process_time()
        await asyncio.gather(*(buy(buyer, each) for buyer in buyers))
        cpu = time.process_time() - started
    finally:
        await engine.dispose()
    done = each * workers
    return cpu * 1000 / done, sent[0] / done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.purchase_cpu")
    parser.add_argument("--purchases", type=int, default=400, help="per worker count")
    parser.add_argument("--workers", default="1,8", help="comma-separated worker counts")
    options = parser.parse_args(argv)
    with bench_server() as server:
        url = server.create("purchase_cpu")
        migrate(url)
        for workers in (int(w) for w in options.workers.split(",")):
            cpu_ms, statements = asyncio.run(measure(url, workers, options.purchases))
            print(
                f"{workers} workers, {options.purchases} purchases: {cpu_ms:.2f} ms CPU and "
                f"{statements:.2f} statements a purchase"
            )


if __name__ == "__main__":
    main()
