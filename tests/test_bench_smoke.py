"""The benchmark's phases, run for about a second each: purchases and gifts are acknowledged
and the books hold exactly those; gifts over HTTP through the real service likewise; a seeded
history passes the integrity check and its wallets read back over HTTP as the books hold them.
Nothing here is timed: speed is for ``make bench``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import matplotlib.pyplot as plt
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.integrity import check_integrity
from api.database import libpq_url
from api.settings import Settings
from bench import plots
from bench.books import BooksCheck, check_books, entries_of_kind, purchase_entries
from bench.close_guard import guard_enabled, prepare, statement_cost
from bench.core import drive_core, purchase_service
from bench.gifts import drive_gifts, gift_service, seed_gifting
from bench.history import POSTINGS_PER_TRANSFER, HistorySeeder
from bench.http_gifts import drive_http_gifts
from bench.load import LoadResult
from bench.mixed import MixedResult
from bench.over_http import ServiceMemory, ServiceProcess
from bench.pgbench import parse
from bench.phases import run_mixed_phase
from bench.report import Figure
from bench.runner import HTTP_GIFT_PHASE, MIXED_PHASE, targets
from bench.storage import StorageGrowth, table_sizes
from bench.wallet_reads import drive_wallet_reads

PGBENCH_OUTPUT = """\
pgbench (18.6)
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 10
query mode: simple
number of clients: 32
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 9245
number of failed transactions: 0 (0.000%)
latency average = 17.358 ms
initial connection time = 53.732 ms
tps = 1843.575831 (without initial connection time)
"""


async def test_core_phase_acknowledges_purchases_and_books_agree(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await purchase_entries(sessions)
    load = await drive_core(purchase_service(sessions), clients=4, seconds=1.0, users=2)

    assert load.acknowledged > 0
    assert load.errors == 0, load.error_examples
    books = await check_books(sessions, load.acknowledged, before)
    assert books.ok, books.problems()
    assert (books.kind, books.entries) == ("purchase", load.acknowledged)


@pytest.mark.parametrize("creators", [5, 1])
async def test_gift_phase_acknowledges_gifts_and_books_agree(
    sessions: async_sessionmaker[AsyncSession], creators: int
) -> None:
    """Four senders gift for a second into five streams, or all into one: every gift sent is
    one gift entry, the creators got all the diamonds, and the integrity check is clean."""
    setup = await seed_gifting(sessions, senders=4, creators=creators)
    assert len(setup.streams) == creators
    before = await entries_of_kind(sessions, "gift")
    load = await drive_gifts(gift_service(sessions), setup, clients=4, seconds=1.0)

    assert load.acknowledged > 0
    assert load.errors == 0, load.error_examples
    books = await check_books(sessions, load.acknowledged, before, kind="gift")
    assert books.ok, books.problems()
    assert (books.kind, books.entries) == ("gift", load.acknowledged)
    async with sessions() as session:
        gifts, coins, streams = (
            await session.execute(
                text("SELECT count(*), sum(coins), count(DISTINCT stream_id) FROM gift")
            )
        ).one()
        pending = await session.scalar(
            text(
                "SELECT -sum(balance) FROM account WHERE code LIKE 'creator:%\\:diamonds\\:pending'"
            )
        )
    assert gifts == load.acknowledged
    assert pending == coins  # a diamond per coin, every one of them pending
    assert streams == creators


@pytest.mark.parametrize("guard", [True, False])
async def test_close_guard_phase_closes_a_month_and_sets_the_guard_as_asked(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], guard: bool
) -> None:
    """The guard's comparison runs on a database with a month closed a year ago, the guard
    enabled or disabled as asked; gifts go through either way and the books agree. Enabled,
    the guard refuses an entry dated into the closed month."""
    await prepare(db_url, guard=guard)
    assert await guard_enabled(db_url) is guard
    async with sessions() as session:
        closed = await session.scalar(text("SELECT count(*) FROM closed_period"))
    assert closed == 1
    setup = await seed_gifting(sessions, senders=2, creators=2)
    before = await entries_of_kind(sessions, "gift")
    load = await drive_gifts(gift_service(sessions), setup, clients=2, seconds=0.5)
    assert load.acknowledged > 0
    assert load.errors == 0, load.error_examples
    books = await check_books(sessions, load.acknowledged, before, kind="gift")
    assert books.ok, books.problems()
    if guard:
        conn = await asyncpg.connect(libpq_url(db_url))
        try:
            with pytest.raises(asyncpg.RestrictViolationError, match="closed period"):
                await conn.execute(
                    "INSERT INTO journal_entry (kind, event_key, fingerprint, posted_at, actor)"
                    " VALUES ('transfer', 'late', 'x', now() - interval '400 days', 'test')"
                )
        finally:
            await conn.close()


async def test_close_guard_statement_cost_leaves_the_journal_and_the_guard_as_they_were(
    db_url: URL,
) -> None:
    """The guard's cost per insert statement is timed with it on and off, and afterwards the
    guard is on again and no entry was left behind (each insert was rolled back)."""
    with_guard, without = await statement_cost(db_url, inserts=5, rounds=1)
    assert with_guard > 0 and without > 0
    assert await guard_enabled(db_url)
    conn = await asyncpg.connect(libpq_url(db_url))
    try:
        assert await conn.fetchval("SELECT count(*) FROM journal_entry") == 0
    finally:
        await conn.close()


def test_pgbench_output_parses() -> None:
    result = parse(PGBENCH_OUTPUT, clients=32, seconds=5)
    assert result.tps == 1843.575831
    assert result.latency_avg_ms == 17.358
    assert result.failed == 0


async def test_http_gift_phase_acknowledges_gifts_and_books_agree(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """Four connections send gifts for a second through the real service: every gift sent is
    one gift entry, the integrity check is clean, and the tables grew by the gifts."""
    setup = await seed_gifting(sessions, senders=4, creators=3)
    before = await entries_of_kind(sessions, "gift")
    sizes_before = await table_sizes(db_url)
    settings = Settings(database_url=db_url.render_as_string(hide_password=False))
    with ServiceProcess(db_url, tmp_path / "service.log") as service:
        await service.wait_healthy()
        load = await drive_http_gifts(service, settings, setup, clients=4, seconds=1.0, warmup=0)

    assert load.acknowledged > 0
    assert load.errors == 0, load.error_examples
    assert service.memory.peak_rss >= service.memory.idle_rss > 0
    books = await check_books(sessions, load.acknowledged, before, kind="gift")
    assert books.ok, books.problems()
    assert books.entries == load.acknowledged
    storage = StorageGrowth.between(sizes_before, await table_sizes(db_url), books.entries)
    assert {"gift", "journal_entry", "posting"} <= set(storage.grown)
    assert storage.bytes_per_gift is not None and storage.bytes_per_gift > 0


async def test_seeded_history_keeps_every_invariant_and_reads_back_over_http(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """A few thousand postings of history, written in several chunks: the integrity check
    finds nothing, every wallet's stored balance and count are its postings', the wallets
    read have the longest histories, and the wallet query over HTTP returns their balances."""
    conn = await asyncpg.connect(libpq_url(db_url))
    try:
        seeder = HistorySeeder(conn, users=200, readers=3, chunk_postings=1_000)
        await seeder.open_wallets(6_000)
        opened = await seeder.progress()
        progress = await seeder.grow_to(6_000)
        wallets = await conn.fetch(
            """
            SELECT a.code, a.balance, a.posting_count, sum(p.amount) AS total, count(p.id) AS n
              FROM account a LEFT JOIN posting p ON p.account_id = a.id
             WHERE a.code LIKE 'user:hist-%'
             GROUP BY a.id"""
        )
        readers = seeder.reader_ids
        middle = seeder.middle_instant
        held_then = {
            reader: -int(
                await conn.fetchval(
                    """
                    SELECT p.balance_after FROM posting p JOIN account a ON a.id = p.account_id
                     WHERE a.code = $1 AND p.posted_at <= $2
                     ORDER BY p.account_seq DESC LIMIT 1""",
                    f"user:{reader}:coins",
                    middle,
                )
            )
            for reader in seeder.reader_ids
        }
    finally:
        await conn.close()

    assert opened.postings == 2 * 200 + 2 * 10  # ten opening entries of 20 wallets
    assert 6_000 <= progress.postings < 6_000 + POSTINGS_PER_TRANSFER
    assert progress.postings_written == progress.postings
    assert len(wallets) == 400
    for wallet in wallets:
        assert (wallet["balance"], wallet["posting_count"]) == (wallet["total"], wallet["n"])
        assert wallet["balance"] < 0  # credit: every wallet still holds coins and value
    reader_codes = {f"user:{reader}:coins" for reader in readers}
    counts = sorted(
        (w["posting_count"], w["code"] in reader_codes)
        for w in wallets
        if w["code"].endswith(":coins")
    )
    assert all(is_reader for _, is_reader in counts[-len(readers) :])
    async with sessions() as session:
        report = await check_integrity(session)
    assert report.ok, report.violations
    assert report.postings == progress.postings

    settings = Settings(database_url=db_url.render_as_string(hide_password=False))
    seen: dict[str, int] = {}
    seen_then: dict[str, int] = {}
    with ServiceProcess(db_url, tmp_path / "service.log") as service:
        await service.wait_healthy()
        load = await drive_wallet_reads(
            service, settings, readers, clients=2, seconds=0.5, warmup=0, seen=seen
        )
        load_then = await drive_wallet_reads(
            service,
            settings,
            readers,
            clients=2,
            seconds=0.5,
            warmup=0,
            seen=seen_then,
            as_of=middle,
        )
    assert load.errors == 0, load.error_examples
    assert load_then.errors == 0, load_then.error_examples
    assert load.completed > 0 and load_then.completed > 0
    held = {w["code"]: -w["balance"] for w in wallets}
    assert seen == {reader: held[f"user:{reader}:coins"] for reader in readers}
    assert seen_then == held_then
    assert seen_then != seen  # halfway through, the readers' coins were not what they are now


async def test_mixed_phase_answers_every_kind_and_counts_no_deadlock(
    db_url: URL, tmp_path: Path
) -> None:
    """Eight connections run the mix for two seconds through the real service: every kind of
    request is answered as it should be (a replay with the gift first sent), PostgreSQL counts
    no deadlock, and the books hold exactly the gifts, unlocks and purchases answered."""
    phase = await asyncio.to_thread(
        run_mixed_phase,
        db_url,
        clients=8,
        seconds=2.0,
        warmup=0.0,
        creators=3,
        log_path=tmp_path / "service.log",
    )
    assert phase.mixed is not None
    assert phase.load.errors == 0, phase.load.error_examples
    assert phase.mixed.deadlocks == 0
    assert phase.books.ok, phase.books.problems()
    answered = phase.mixed.acknowledged
    assert answered["gift"] > 0 and answered["wallet"] > 0
    assert phase.books.acknowledged == answered["gift"] + answered["unlock"] + answered["purchase"]


def _figure(key: str, per_second: float, p99_ms: float, **extra: Any) -> Figure:
    latencies = [p99_ms / 2] * 98 + [p99_ms] * 2
    load = LoadResult(32, 1.0, int(per_second), int(per_second), 0, latencies_ms=latencies)
    books = BooksCheck(int(per_second), int(per_second), int(per_second), kind="gift")
    return Figure(key, key, "core", 32, 32, load, books, baseline_tps=1_000.0, **extra)


def test_the_targets_carry_every_row_of_the_issue_with_its_target_and_whether_met() -> None:
    """Against pgbench at 1,000 tps: gifts at 1,250/s (1.25x, met), all to one creator at
    1,000/s (0.8x uniform, not met), purchases at 500/s with p99 90 ms (met), sendGift over
    HTTP at 450/s with p99 120 ms (not met: p99), the mix with one deadlock (not met)."""
    memory = ServiceMemory(idle_rss=80 * 10**6, peak_rss=150 * 10**6)
    mixed = MixedResult(LoadResult(32, 1.0, 400, 400, 0), {"gift": [1.0]}, {"gift": 1}, 1)
    figures = {
        f.key: f
        for f in (
            _figure("gifts_c32_uniform", 1_250, 50),
            _figure("gifts_c32_one_creator", 1_000, 50),
            _figure("core_c32", 500, 90),
            _figure(HTTP_GIFT_PHASE.key, 450, 120, memory=memory),
            _figure(MIXED_PHASE.key, 400, 100, mixed=mixed),
        )
    }
    found = {t.figure: (t.target, t.met) for t in targets(figures, None, 0)}
    assert found["gifts/s through the core, 32 senders, uniform creators"] == (
        ">= 1.2x pgbench",
        True,
    )
    assert found["the same, every gift to one creator"] == (">= 0.9x uniform", False)
    assert found["purchases through the core, 32 workers"] == (
        ">= 0.5x pgbench, p99 <= 100 ms",
        True,
    )
    assert found["sendGift over HTTP, 32 connections"] == (">= 0.4x pgbench, p99 <= 100 ms", False)
    assert found["mixed phase over HTTP, 32 connections"] == ("0 deadlocks, p99 <= 150 ms", False)
    assert found["service memory under the HTTP load"] == ("<= 200 MB", True)
    assert found["wallet balance query over HTTP, 10M postings"] == ("p99 <= 5 ms", None)
    assert figures[MIXED_PHASE.key].failures() == [
        f"{MIXED_PHASE.key}: PostgreSQL reported 1 deadlocks"
    ]


def test_plots_keep_the_legend_off_the_lines_and_draw_the_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every plot's legend lies outside its axes, so it hides no line, and names the target."""
    drawn: list[Any] = []
    monkeypatch.setattr(plt, "close", drawn.append)  # keep each figure to look at
    plots.throughput_plot(
        tmp_path / "t.png", [1, 8, 32], [100, 500, 900], {32: 1_000, 8: 950}, "t", (32, 1_200)
    )
    plots.latency_plot(tmp_path / "l.png", [10, 100], {"p50, a": [1, 2], "p99, a": [3, 4]}, 5, "l")
    plots.mixed_plot(tmp_path / "m.png", {"gift": (1.0, 9.0), "wallet": (0.5, 2.0)}, 150, 0, "m")
    monkeypatch.undo()
    assert len(drawn) == 3
    for figure in drawn:
        renderer = figure.canvas.get_renderer()
        axes = figure.axes[0]
        legend = axes.get_legend()
        assert not legend.get_window_extent(renderer).overlaps(axes.get_window_extent(renderer))
        assert any("target" in text.get_text() for text in legend.get_texts())
        plt.close(figure)
    assert {path.name for path in tmp_path.iterdir()} == {"t.png", "l.png", "m.png"}
