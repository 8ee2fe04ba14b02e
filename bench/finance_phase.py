"""Finance's reads against the grown history: the balance sheet now and at a past instant, the
income statement over a month-like period and over the whole history, the roll-forwards over a
short and a long period, an account statement page (the busiest platform account and a long-lived
wallet), journal pages by period, by actor and by business reference, and the journal export through
``coinbooks export journal`` in a process of its own (lines/s, peak RSS). Every report read is
checked: the balance sheet balances, every roll-forward is explained to the unit.

The history (bench/history.py) spreads its entries over the year that ends an hour ago. The
periods are fractions of it, named after what they stand for: a *month* is the last twelfth of
the history, a *day* its last 365th (on a year-long history, a month and a day).

Before the reads, the postings' totals per hour are brought up to date once (``summarize``, as
the service does every minute), timed: its one-off cost per posting, the rows it wrote and the
totals' storage are reported. The reports then read whole hours from the totals and the rest
from the postings."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.reads.financials import balance_sheet, income_statement, roll_forwards
from accounting.reads.journal import JournalFilter, journal_page
from accounting.reads.period_totals import summarize
from accounting.reads.statements import account_statement
from api.database import create_engine, libpq_url, session_factory

REPORT_TARGET_SECONDS = 1.0
STATEMENT_TARGET_SECONDS = 0.05
EXPORT_TARGET_LINES_PER_SECOND = 50_000
FLAT_MEMORY_SLACK_BYTES = 16 * 1024 * 1024
"""The whole history's export may peak at most this much above the export of a tenth of it."""
INDEXES = ("ix_journal_entry_posted_at",)
"""The journal's indexes of revision 0009, whose storage is reported per entry."""
ABSENT_ACTOR = "finance:bench-nobody"
ABSENT_PURCHASE = 1
"""The history's entries are transfers without references: no purchase 1."""
EXPORTED = re.compile(r"Exported (\d+) posting")


@dataclass(frozen=True, slots=True)
class Timing:
    """One read, run ``len(seconds)`` times (the first warms the cache and is not counted)."""

    name: str
    seconds: list[float]
    target_seconds: float | None
    detail: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def met(self) -> bool | None:
        return None if self.target_seconds is None else self.median <= self.target_seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "median_ms": round(self.median * 1000, 2),
            "max_ms": round(max(self.seconds) * 1000, 2),
            "runs": len(self.seconds),
            "target_ms": None if self.target_seconds is None else self.target_seconds * 1000,
            "met": self.met,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ExportRun:
    """One ``coinbooks export journal`` to ``/dev/null``."""

    label: str
    lines: int
    seconds: float
    peak_rss_bytes: int
    """The exporting process's kernel high-water mark (``ru_maxrss`` from ``wait4``)."""
    cpu_seconds: float
    """The exporting process's CPU time, user and system (the server's is not in it)."""

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "lines": self.lines,
            "seconds": round(self.seconds, 2),
            "lines_per_second": round(self.lines_per_second, 1),
            "peak_rss_mib": round(self.peak_rss_bytes / 1024 / 1024, 1),
            "cpu_seconds": round(self.cpu_seconds, 2),
        }


@dataclass(frozen=True, slots=True)
class SummaryRun:
    """The one ``summarize`` before the reads: every hour of the history, from nothing."""

    hours: int
    rows: int
    seconds: float
    postings: int
    table_bytes: int
    """``posting_hour_total`` with its key's index (``pg_total_relation_size``)."""

    @property
    def micros_per_posting(self) -> float:
        return self.seconds * 1e6 / self.postings if self.postings else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "hours": self.hours,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "micros_per_posting": round(self.micros_per_posting, 3),
            "table_bytes": self.table_bytes,
        }


@dataclass(slots=True)
class FinanceResult:
    postings: int
    entries: int
    timings: list[Timing] = field(default_factory=list)
    exports: list[ExportRun] = field(default_factory=list)
    index_bytes: dict[str, int] = field(default_factory=dict)
    summary: SummaryRun | None = None
    problems: list[str] = field(default_factory=list)
    """Unbalanced sheets, unexplained roll-forwards, exports that failed or missed lines."""

    def timing(self, name: str) -> Timing:
        return next(timing for timing in self.timings if timing.name == name)

    @property
    def whole_export(self) -> ExportRun | None:
        return self.exports[-1] if self.exports else None

    @property
    def memory_flat(self) -> bool | None:
        if len(self.exports) < 2:
            return None
        part, whole = self.exports[0], self.exports[-1]
        return whole.peak_rss_bytes <= part.peak_rss_bytes + FLAT_MEMORY_SLACK_BYTES

    def to_json(self) -> dict[str, Any]:
        return {
            "postings": self.postings,
            "entries": self.entries,
            "timings": [timing.to_json() for timing in self.timings],
            "exports": [export.to_json() for export in self.exports],
            "export_memory_flat": self.memory_flat,
            "indexes": {
                name: {
                    "bytes": size,
                    "bytes_per_entry": round(size / self.entries, 1) if self.entries else None,
                    "bytes_per_posting": round(size / self.postings, 1) if self.postings else None,
                }
                for name, size in self.index_bytes.items()
            },
            "summary": None if self.summary is None else self.summary.to_json(),
            "books_ok": not self.problems,
            "problems": self.problems,
        }


@dataclass(frozen=True, slots=True)
class _Span:
    """What the history holds, as the reads are asked about it."""

    first: datetime
    last: datetime
    platform_account: str
    """The platform account with the most postings."""
    wallet_account: str
    """The user account with the most postings."""

    @property
    def end(self) -> datetime:
        return self.last + timedelta(microseconds=1)

    def last_part(self, parts: int) -> tuple[datetime, datetime]:
        return self.end - (self.end - self.first) / parts, self.end


_SPAN = """
SELECT (SELECT min(posted_at) FROM journal_entry) AS first,
       (SELECT max(posted_at) FROM journal_entry) AS last,
       (SELECT code FROM account WHERE code LIKE 'platform:%'
         ORDER BY posting_count DESC, code LIMIT 1) AS platform_account,
       (SELECT code FROM account WHERE code LIKE 'user:%'
         ORDER BY posting_count DESC, code LIMIT 1) AS wallet_account,
       (SELECT count(*) FROM posting) AS postings,
       (SELECT count(*) FROM journal_entry) AS entries"""


async def _timed(
    sessions: async_sessionmaker[AsyncSession],
    repeats: int,
    read: Callable[..., Awaitable[Any]],
    *args: Any,
) -> tuple[list[float], Any]:
    """``read(session, *args)`` once to warm up, then ``repeats`` times, each in a session of
    its own."""
    seconds: list[float] = []
    found: Any = None
    for run in range(repeats + 1):
        async with sessions() as session, session.begin():
            started = time.perf_counter()
            found = await read(session, *args)
            if run:
                seconds.append(time.perf_counter() - started)
    return seconds, found


async def _report_reads(
    sessions: async_sessionmaker[AsyncSession], span: _Span, currency: str, repeats: int
) -> tuple[list[Timing], list[str]]:
    """The balance sheet, the income statement and the roll-forwards, each checked."""
    middle = span.first + (span.last - span.first) / 2
    month, day = span.last_part(12), span.last_part(365)
    whole = (span.first, span.end)
    timings: list[Timing] = []
    problems: list[str] = []
    for name, as_of in (("balance sheet now", None), ("balance sheet, halfway", middle)):
        seconds, sheet = await _timed(sessions, repeats, balance_sheet, currency, as_of)
        timings.append(Timing(name, seconds, REPORT_TARGET_SECONDS, f"{len(sheet.lines)} lines"))
        problems += [f"{name}: {c.commodity} does not balance" for c in sheet.checks if not c.holds]
    for name, (start, end) in (
        ("income statement, a month", month),
        ("income statement, all", whole),
    ):
        seconds, found = await _timed(sessions, repeats, income_statement, currency, start, end)
        lines = len(found.revenue) + len(found.expenses)
        timings.append(Timing(name, seconds, REPORT_TARGET_SECONDS, f"{lines} lines"))
    for name, (start, end) in (("roll-forwards, a day", day), ("roll-forwards, all", whole)):
        seconds, found = await _timed(sessions, repeats, roll_forwards, currency, start, end)
        timings.append(Timing(name, seconds, None, f"{len(found)} subjects"))
        problems += [
            f"{name}: {r.code} leaves {r.not_explained} unexplained"
            for r in found
            if r.not_explained
        ]
    return timings, problems


async def _page_reads(
    sessions: async_sessionmaker[AsyncSession], span: _Span, repeats: int
) -> tuple[list[Timing], list[str]]:
    """A statement page of the busiest platform account and wallet over the whole history (its
    totals too), then journal pages: over a day-like period, and by an actor and a purchase the
    history does not hold (no index serves those two: they read every entry)."""
    timings: list[Timing] = []
    problems: list[str] = []
    for name, code in (
        ("platform account", span.platform_account),
        ("wallet", span.wallet_account),
    ):
        seconds, found = await _timed(
            sessions, repeats, account_statement, code, span.first, span.end
        )
        if found is None or found.closing - found.opening != found.total_in - found.total_out:
            problems.append(f"statement of {code}: totals do not explain the movement")
        movements = 0 if found is None else found.movement_count
        timings.append(
            Timing(
                f"statement page, {name}",
                seconds,
                STATEMENT_TARGET_SECONDS,
                f"{code}: {movements:,} movements in the period",
            )
        )
    start, end = span.last_part(365)
    for name, wanted in (
        ("journal page, a day", JournalFilter(start=start, end=end)),
        ("journal page, by actor", JournalFilter(actor=ABSENT_ACTOR)),
        ("journal page, by purchase", JournalFilter(purchase_id=ABSENT_PURCHASE)),
    ):
        seconds, page = await _timed(sessions, repeats, journal_page, wanted)
        detail = f"{len(page.items)} entries"
        timings.append(Timing(name, seconds, None, detail))
    return timings, problems


def export_journal(url: URL, label: str, *, until: datetime | None = None) -> ExportRun:
    """``coinbooks export journal`` (up to ``until``) in a process of its own, to /dev/null:
    the lines it wrote, its wall time and its peak RSS (``wait4``'s, this child's alone)."""
    command = [sys.executable, "-c", "from api.cli import main; main()", "export", "journal"]
    command += ["--format", "csv", "--output", os.devnull]
    if until is not None:
        command += ["--to", until.isoformat()]
    env = dict(os.environ, DATABASE_URL=url.render_as_string(hide_password=False))
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    exported = EXPORTED.search(stderr)
    if process.returncode or exported is None:
        raise RuntimeError(f"export failed ({process.returncode}): {stderr[-500:]}")
    cpu_seconds = usage.ru_utime + usage.ru_stime
    return ExportRun(label, int(exported.group(1)), seconds, usage.ru_maxrss * 1024, cpu_seconds)


def _exports(url: URL, span: _Span, postings: int) -> tuple[list[ExportRun], list[str]]:
    """The first tenth of the history, then all of it: the whole must export every posting,
    and peak no higher than the tenth (memory flat)."""
    tenth = span.first + (span.last - span.first) / 10
    runs = [export_journal(url, "a tenth", until=tenth), export_journal(url, "all")]
    problems = []
    if runs[-1].lines != postings:
        problems.append(f"export: {runs[-1].lines:,} lines for {postings:,} postings")
    return runs, problems


async def _index_bytes(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relname = ANY($1)",
        list(INDEXES),
    )
    return {str(row[0]): int(row[1]) for row in rows}


async def _span(url: URL) -> tuple[_Span, int, int, dict[str, int]]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute("VACUUM (ANALYZE) account")
        row = await conn.fetchrow(_SPAN)
        assert row is not None
        sizes = await _index_bytes(conn)
    finally:
        await conn.close()
    span = _Span(row["first"], row["last"], row["platform_account"], row["wallet_account"])
    return span, int(row["postings"]), int(row["entries"]), sizes


async def _summarize(sessions: async_sessionmaker[AsyncSession], postings: int) -> SummaryRun:
    """The totals per hour brought up to date, timed, and their storage (the table analysed,
    as autovacuum would soon have it)."""
    async with sessions() as session:
        started = time.perf_counter()
        done = await summarize(session)
        seconds = time.perf_counter() - started
        if done.waited_out:
            raise RuntimeError("summarize: transactions in flight outlasted its wait")
        await session.execute(text("ANALYZE posting_hour_total"))
        size = await session.scalar(text("SELECT pg_total_relation_size('posting_hour_total')"))
        await session.commit()
    return SummaryRun(done.hours, done.rows, seconds, postings, int(size or 0))


async def measure_reads(
    url: URL, currency: str = "USD", repeats: int = 3
) -> tuple[FinanceResult, _Span]:
    """The totals brought up to date, then every report and page read, timed; the index
    sizes. The history must hold entries."""
    span, postings, entries, sizes = await _span(url)
    result = FinanceResult(postings, entries, index_bytes=sizes)
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        sessions = session_factory(engine)
        result.summary = await _summarize(sessions, postings)
        for reads in (
            _report_reads(sessions, span, currency, repeats),
            _page_reads(sessions, span, repeats),
        ):
            timings, problems = await reads
            result.timings += timings
            result.problems += problems
    finally:
        await engine.dispose()
    return result, span


async def run_finance_phase(
    url: URL, say: Callable[[str], None], *, repeats: int = 3, export: bool = True
) -> FinanceResult:
    """Finance's reads over the history at ``url``, then the journal export (which blocks the
    event loop while it runs: nothing else is measured meanwhile)."""
    result, span = await measure_reads(url, repeats=repeats)
    if result.summary is not None:
        done = result.summary
        say(
            f"    totals per hour: {done.hours:,} hours into {done.rows:,} rows in"
            f" {done.seconds:,.2f} s ({done.micros_per_posting:,.2f} us per posting),"
            f" {done.table_bytes / 2**20:,.1f} MiB"
        )
    for timing in result.timings:
        # No detail: account codes such as platform:bank:USD would print as emoji.
        say(f"    {timing.name}: {timing.median * 1000:,.1f} ms")
    if export:
        result.exports, problems = _exports(url, span, result.postings)
        result.problems += problems
        for run in result.exports:
            say(
                f"    export, {run.label}: {run.lines:,} lines in {run.seconds:,.1f} s "
                f"({run.lines_per_second:,.0f}/s), peak RSS {run.peak_rss_bytes / 2**20:,.0f} MiB, "
                f"CPU {run.cpu_seconds:,.1f} s"
            )
    for problem in result.problems:
        say(f"    [bold red]FAIL[/bold red] {problem}")
    return result
