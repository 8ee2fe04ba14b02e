"""The benchmark's finance phase on a tiny history (bench/finance_phase.py): every read runs and
is checked, the export writes every posting from a process of its own, and the run's targets
carry its figures. Nothing here is timed: speed is for ``make bench``."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import URL

from api.database import libpq_url
from bench.finance_phase import FinanceResult, Timing, run_finance_phase
from bench.history import HistorySeeder
from bench.runner import _finance_targets

NAMES = [
    "balance sheet now",
    "balance sheet, halfway",
    "income statement, a month",
    "income statement, all",
    "roll-forwards, a day",
    "roll-forwards, all",
    "statement page, platform account",
    "statement page, wallet",
    "journal page, a day",
    "journal page, by actor",
    "journal page, by purchase",
]


async def _grow(url: URL) -> tuple[int, str]:
    """200 wallets, 3 read ones, about 4,000 postings: the postings and the busiest wallet."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        seeder = HistorySeeder(conn, users=200, readers=3, chunk_postings=1_000)
        await seeder.open_wallets(4_000)
        progress = await seeder.grow_to(4_000)
        busiest = await conn.fetchval(
            "SELECT code FROM account WHERE code LIKE 'user:%'"
            " ORDER BY posting_count DESC, code LIMIT 1"
        )
    finally:
        await conn.close()
    return progress.postings, str(busiest)


async def test_finance_phase_reads_a_grown_history_and_exports_every_posting(
    db_url: URL,
) -> None:
    """The history is transfers between wallets, with their opening balances from the platform:
    the balance sheets balance and the roll-forwards are explained (no problem found); both
    statement pages are the busiest accounts'; the whole history's export is one line per
    posting and the first tenth's fewer; the journal's indexes are measured."""
    postings, busiest = await _grow(db_url)
    said: list[str] = []
    result = await run_finance_phase(db_url, said.append, repeats=1)

    assert result.problems == []
    assert result.postings == postings
    # The history's first entry is dated a year and an hour ago: the totals go from its hour
    # up to the hour begun two minutes ago, 365 x 24 + 1 = 8,761 hours (8,760 in the first two
    # minutes of an hour).
    summary = result.summary
    assert summary is not None and summary.postings == postings
    assert summary.hours in (8_760, 8_761)
    assert summary.rows > 0 and summary.table_bytes >= 8192
    assert any(line.startswith("    totals per hour: ") for line in said)
    assert [timing.name for timing in result.timings] == NAMES
    assert all(len(timing.seconds) == 1 for timing in result.timings)
    wallet = result.timing("statement page, wallet")
    assert wallet.detail.startswith(f"{busiest}: ")
    assert result.timing("statement page, platform account").detail.startswith("platform:")
    assert result.timing("journal page, a day").detail != "0 entries"  # the last 365th
    assert result.timing("journal page, by actor").detail == "0 entries"
    assert result.timing("journal page, by purchase").detail == "0 entries"
    part, whole = result.exports
    assert whole.lines == postings
    assert 0 < part.lines < whole.lines
    assert whole.peak_rss_bytes > 10 * 1024 * 1024  # a Python process: tens of MiB
    assert result.memory_flat is True
    assert whole.cpu_seconds > 0
    assert list(result.index_bytes) == ["ix_journal_entry_posted_at"]
    assert result.index_bytes["ix_journal_entry_posted_at"] >= 8192  # a page at least
    assert any(line.startswith("    export, all: ") for line in said)

    targets = _finance_targets(result)
    assert [t.met is not None for t in targets] == [True] * 4
    assert all(t.books_ok for t in targets)
    assert targets[-1].note.startswith(f"{postings:,} lines")


def test_finance_targets_without_the_history_are_not_measured() -> None:
    targets = _finance_targets(None)
    assert len(targets) == 4
    assert {t.value for t in targets} == {"not measured"}
    assert {t.met for t in targets} == {None}


def test_a_problem_in_the_finance_reads_fails_their_targets_books() -> None:
    """Every read in time, but a roll-forward left something unexplained: the targets are
    met and the books are not OK."""
    timings = [Timing(name, [0.001], 0.05) for name in NAMES]
    result = FinanceResult(10, 2, timings, problems=["roll-forwards, all: x leaves 1 unexplained"])
    targets = _finance_targets(result)
    assert [t.met for t in targets[:3]] == [True, True, True]
    assert [t.books_ok for t in targets[:3]] == [False, False, False]
    assert (targets[3].value, targets[3].met) == ("not measured", None)  # no export run
