"""The balance sheet, the income statement and the roll-forwards, proved on random histories
of every flow.

The machine is the gift machine (``test_gift_machine``: purchases in every currency, channel
and provider, gifts, unlocks, holds, refunds, chargebacks with either loss policy and disputes
won and lost, payouts requested, sent, paid, failed and rejected), with one more audit after
every step. With T the machine's start (before any entry) and N the database's clock now:

- the balance sheet as of N: per commodity, assets = liabilities + equity + result to date;
  in every currency each section's lines add up to its total in the identity, and no account is
  unclassified (every account the flows open has its line);
- the income statement over [T, N) gives the balance sheet's result to date (the books began
  after T);
- every roll-forward over [T, N) opens at zero, explains every movement (``not_explained`` is
  zero) and closes at the balance sheet's figure just before N.

One more rule brings the postings' totals per hour up to date (``summarize``) at random points:
from then on the reports read the totals of whole summarized hours and the postings of the
rest (the machine's entries, written now, are mostly that rest: the edges' reads meet every
flow), and the integrity check compares the totals with the postings.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from hypothesis.stateful import rule
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.reads import financials
from accounting.reads.financials import BalanceSheet, ReportLine
from accounting.reads.period_totals import summarize
from tests.properties.gift_model import FUNCTIONAL
from tests.properties.harness import Runs, run_machine
from tests.properties.test_gift_machine import RUNS, GiftMachine

MICROSECOND = timedelta(microseconds=1)
SECTION_OF_IDENTITY = {"assets": "assets", "liabilities": "liabilities", "equity": "equity"}


async def clock(session: AsyncSession) -> datetime:
    found: datetime | None = await session.scalar(select(func.clock_timestamp()))
    assert found is not None
    return found


def section_totals(sheet: BalanceSheet) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for line in sheet.lines:
        totals[(line.code.split(":", 1)[0], line.commodity)] += line.amount
    for line in sheet.result:
        totals[("result", line.commodity)] += line.amount
    return totals


def by_line(lines: list[ReportLine]) -> dict[tuple[str, str], int]:
    return {(line.code, line.commodity): line.amount for line in lines}


def check_sheet(sheet: BalanceSheet) -> None:
    assert sheet.balanced, sheet.checks
    assert not [line for line in sheet.lines if line.code.endswith(":unclassified")], sheet.lines
    totals = section_totals(sheet)
    for check in sheet.checks:
        if check.commodity in financials.VIRTUAL:
            continue
        c = check.commodity
        assert (totals[("assets", c)], totals[("liabilities", c)]) == (
            check.assets,
            check.liabilities,
        )
        assert (totals[("equity", c)], totals[("result", c)]) == (check.equity, check.result)


async def check_reports(session: AsyncSession, start: datetime) -> None:
    now = await clock(session)
    sheet = await financials.balance_sheet(session, FUNCTIONAL, now)
    check_sheet(sheet)
    before_now = await financials.balance_sheet(session, FUNCTIONAL, now - MICROSECOND)
    statement = await financials.income_statement(session, FUNCTIONAL, start, now)
    assert by_line(statement.result) == by_line(before_now.result)
    closing = by_line(before_now.lines)
    for report in await financials.roll_forwards(session, FUNCTIONAL, start, now):
        subject = next(s for s in financials.SUBJECTS if s.code == report.code)
        expected = sum(closing.get((code, report.commodity), 0) for code in subject.line_codes)
        assert (report.opening, report.not_explained, report.closing) == (0, 0, expected), report


class FinancialsMachine(GiftMachine):
    def __init__(self) -> None:
        super().__init__()
        self.start = self.run(self._clock())

    async def _clock(self) -> datetime:
        async with self.sessions() as session:
            return await clock(session)

    @rule()
    def summarize_totals(self) -> None:
        self.run(self._summarize())
        self.saw("totals summarized")

    async def _summarize(self) -> None:
        async with self.sessions() as session:
            done = await summarize(session)
        # On a server shared with other tests' databases (two workers on one server), another
        # test's transaction may still be in flight: the summary then gives up, writing nothing,
        # and a later one catches up; the audit compares every report either way.
        if done.waited_out:
            assert (done.hours, done.rows) == (0, 0)

    async def audit(self) -> None:
        await super().audit()
        async with self.sessions() as session, session.begin():
            await check_reports(session, self.start)


FINANCIALS_RUNS = Runs(
    must_reach=(
        "gift sent",
        "feature unlocked",
        "refunded",
        "provider event: charged_back",
        "provider event: dispute_won",
        "payout requested",
    ),
    max_examples=10,
    stateful_step_count=60,
    seed=RUNS.seed,
)


def test_assets_equal_liabilities_equity_and_result_after_every_step(
    server_url: URL, template_url: URL
) -> None:
    run_machine(FinancialsMachine, server_url, template_url, FINANCIALS_RUNS)
