"""``python -m bench.seal_timing [--entries N]``: what sealing costs per entry.

On a fresh database of the embedded PostgreSQL (a temporary directory), N gift-shaped entries
(six postings each, a gift's rates and references) are written in bulk, then
:func:`accounting.close.service.seal_journal` seals them all and
:func:`accounting.close.reads.verify_chain` recomputes them; each is timed once and reported in
microseconds per entry. docs/accounting.md ("What sealing costs") gives a run's figures."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL

from accounting.close import reads
from accounting.close.service import seal_journal
from api.database import create_engine, ensure_database, libpq_url, migrate, session_factory
from api.local_postgres import LocalPostgres

GIFT_SHAPED = """
INSERT INTO journal_entry (id, kind, event_key, fingerprint, posted_at, actor, rates, refs)
SELECT n, 'gift', 'gift:' || n, 'bench', now(), 'user:u' || (n % 1000),
       '{"diamonds_per_coin": "1", "diamond_value_micros": 5000}',
       jsonb_build_object('gift_id', n, 'stream_id', n % 50, 'creator_id', 'c' || (n % 100))
  FROM generate_series(1, $1) n;
INSERT INTO posting (entry_id, posted_at, account_id, commodity, amount, account_seq, balance_after)
SELECT n, now(), a.id, a.commodity, x.amount, n, 0
  FROM generate_series(1, $1) n
 CROSS JOIN (VALUES ('platform:coins:issued', 100), ('platform:coins:spent', -100),
                    ('platform:diamonds:issued', 100), ('platform:diamonds:redeemed', -100),
                    ('platform:revenue:gifts', -1), ('platform:expense:promotions', 1))
       AS x(code, amount)
  JOIN account a ON a.code = x.code;
SELECT setval(pg_get_serial_sequence('journal_entry', 'id'), $1);
"""
"""Written with the triggers set aside (a superuser's bulk load): sealing reads what is there."""


async def load(url: URL, entries: int) -> None:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute("SET session_replication_role = replica")
        for statement in GIFT_SHAPED.split(";")[:-1]:
            await conn.execute(statement, entries)
        assert await conn.fetchval("SELECT count(*) FROM posting") == 6 * entries
    finally:
        await conn.close()


async def measure(url: URL, entries: int) -> tuple[float, float]:
    await load(url, entries)
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with session_factory(engine)() as session:
            started = time.perf_counter()
            done = await seal_journal(session)
            sealing = time.perf_counter() - started
            assert done.sealed == entries, done
            started = time.perf_counter()
            verified = await reads.verify_chain(session)
            verifying = time.perf_counter() - started
            assert verified.intact and verified.entries_checked == entries
    finally:
        await engine.dispose()
    return sealing, verifying


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=20_000)
    entries = parser.parse_args().entries
    with tempfile.TemporaryDirectory() as data, LocalPostgres(Path(data) / "pgdata") as server:
        url = asyncio.run(ensure_database(server.url(), "seal_timing"))
        migrate(url)
        sealing, verifying = asyncio.run(measure(url, entries))
    print(f"{entries} entries of six postings")
    print(f"sealing:   {sealing:.2f} s, {sealing / entries * 1e6:.0f} µs per entry")
    print(f"verifying: {verifying:.2f} s, {verifying / entries * 1e6:.0f} µs per entry")


if __name__ == "__main__":
    main()
