"""The balance sheet, the income statement and the roll-forwards, from account balances.

Every figure is in the smallest unit of its commodity and is reported **per commodity**: a
line that holds both dollars and euros (clearing by card, processor fees) is two lines. The
functional-currency view of a foreign-currency line needs an exchange rate that the books do
not fix at a reporting instant; the trading accounts ``platform:fx:<CUR>`` carry the
conversion each purchase or refund booked, so every commodity balances on its own and nothing
is converted here.

The identity checked, per commodity, at any instant: assets = liabilities + equity + result to
date, where result to date is revenue less expenses since the beginning of the books (revenue
and expense accounts are never closed). It holds because every commodity's postings sum to
zero.

The balance sheet now reads the balances on the account rows. Balances at a past instant and
the roll-forwards' movements read the stored totals per hour (``period_totals``: by account
kind, commodity and entry kind) for the whole hours below their watermark, and the postings only
for the rest: a period's partial first and last hours, and whatever is not yet summarized,
through the journal's index ``(posted_at, id)`` and each entry's postings. So they grow with
the hours, not with the postings or the accounts. Before any totals are stored, a balance at an
instant is each account's running balance on its last posting before it (one probe of the index
``(account_id, posted_at)`` per account), and the movements each subject account's
postings of the period through the same index (measured on 2,000,000 postings over 10,000
wallets: a balance sheet at a past instant 0.2-0.4 s, roll-forwards 1 s over 240,000 postings
and 4 s over 1,000,000). The figures are the same, to the unit, either way.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.chart import PARENT_CODE_SQL
from accounting.ledger.money import COIN, DIAMOND

# --- classifying accounts: pure rules -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountFigure:
    """A balance at an instant (debit-positive, as stored): one platform account's, or the sum
    of one kind of account of every user or creator, whose ``code`` is then the kind's pattern
    (``user:*:coins_value``)."""

    code: str
    commodity: str
    type: str
    normal_sign: int
    balance: int


@dataclass(frozen=True, slots=True)
class LineOf:
    """Where an account goes: the line's code (``section:name``) and its label."""

    code: str
    label: str

    @property
    def section(self) -> str:
        return self.code.split(":", 1)[0]


_RULES: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern), code, label)
    for pattern, code, label in (
        (r"platform:clearing:(\w+):[A-Z]{3}", "assets:clearing:{0}", "Clearing: {0}"),
        (r"platform:bank:[A-Z]{3}", "assets:bank", "Bank"),
        (r"user:[^:]+:receivable", "assets:receivables", "Receivables from users"),
        (
            r"user:[^:]+:coins_value",
            "liabilities:deferred_revenue",
            "Deferred revenue (users' coins)",
        ),
        (r"creator:[^:]+:payable", "liabilities:creator_payable", "Creator payable"),
        (
            r"platform:payouts_in_transit:[A-Z]{3}",
            "liabilities:payouts_in_transit",
            "Payouts in transit",
        ),
        (r"platform:fx:[A-Z]{3}", "equity:fx_trading", "FX trading"),
        (r"platform:revenue:(\w+)", "revenue:{0}", "Revenue: {0}"),
        (r"platform:contra_revenue:(\w+)", "revenue:less_{0}", "Less {0}"),
        (r"platform:expense:(\w+)(?::[A-Z]{3})?", "expenses:{0}", "Expense: {0}"),
        (r"user:[^:]+:coins", "memo:coins_outstanding", "Coins outstanding"),
        (r"platform:coins:(\w+)", "memo:coins_{0}", "Coins {0} (offset)"),
        (r"creator:[^:]+:diamonds:(\w+)", "memo:diamonds_{0}", "Diamonds outstanding, {0}"),
        (r"platform:diamonds:(\w+)", "memo:diamonds_{0}", "Diamonds {0} (offset)"),
    )
)

_SECTION_OF_TYPE = {
    "asset": "assets",
    "liability": "liabilities",
    "equity": "equity",
    "revenue": "revenue",
    "expense": "expenses",
}
VIRTUAL = (COIN.code, DIAMOND.code)


def line_of(code: str, account_type: str, commodity: str) -> LineOf:
    """The report line an account belongs to; an account no rule knows goes to its section's
    ``unclassified`` line (or the memo's, for coins and diamonds): shown, never dropped."""
    for pattern, line, label in _RULES:
        found = pattern.fullmatch(code)
        if found:
            name = found.group(1).replace("_", " ") if found.groups() else ""
            key = found.group(1) if found.groups() else ""
            return LineOf(line.format(key), label.format(name))
    section = "memo" if commodity in VIRTUAL else _SECTION_OF_TYPE.get(account_type, "memo")
    return LineOf(f"{section}:unclassified", "Unclassified accounts")


def source_of(code: str) -> str:
    """What a line names as its source: a platform account's code, or the pattern of a user's or
    creator's accounts (``user:*:coins_value``), so a line never lists a million users."""
    parts = code.split(":")
    if parts[0] in ("user", "creator") and len(parts) > 2:
        return ":".join([parts[0], "*", *parts[2:]])
    return code


def section_reading(section: str, figure: AccountFigure) -> int:
    """A balance as its section reads it: assets and expenses debit-positive; liabilities,
    equity and revenue credit-positive (contra revenue thus negative); memo lines naturally."""
    if section in ("assets", "expenses"):
        return figure.balance
    if section == "memo":
        return figure.balance * figure.normal_sign
    return -figure.balance


@dataclass(frozen=True, slots=True)
class ReportLine:
    code: str
    label: str
    commodity: str
    amount: int
    """In the commodity's smallest unit, as the line's section reads it."""
    sources: tuple[str, ...]
    """The accounts (or account patterns) or the entry kinds behind the line."""


def group_lines(figures: Iterable[AccountFigure], sections: Sequence[str]) -> list[ReportLine]:
    """The figures of ``sections`` summed into lines per commodity, in a stable order."""
    amounts: dict[tuple[str, str], int] = defaultdict(int)
    labels: dict[str, str] = {}
    sources: dict[tuple[str, str], set[str]] = defaultdict(set)
    for figure in figures:
        line = line_of(figure.code, figure.type, figure.commodity)
        if line.section not in sections:
            continue
        key = (line.code, figure.commodity)
        amounts[key] += section_reading(line.section, figure)
        labels[line.code] = line.label
        sources[key].add(source_of(figure.code))
    order = {section: i for i, section in enumerate(sections)}
    keys = sorted(
        amounts,
        key=lambda k: (order[k[0].split(":", 1)[0]], k[1], k[0].endswith(":unclassified"), k[0]),
    )
    return [
        ReportLine(
            code,
            labels[code],
            commodity,
            amounts[(code, commodity)],
            tuple(sorted(sources[(code, commodity)])),
        )
        for code, commodity in keys
    ]


@dataclass(frozen=True, slots=True)
class IdentityCheck:
    """assets = liabilities + equity + result to date, in one commodity."""

    commodity: str
    assets: int
    liabilities: int
    equity: int
    result: int

    @property
    def holds(self) -> bool:
        return self.assets == self.liabilities + self.equity + self.result


def identity_checks(figures: Iterable[AccountFigure]) -> list[IdentityCheck]:
    """The identity per commodity, from every account's type (whatever line shows it)."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for figure in figures:
        totals[figure.commodity][figure.type] += figure.balance
    return [
        IdentityCheck(
            commodity=commodity,
            assets=by_type["asset"],
            liabilities=-by_type["liability"],
            equity=-by_type["equity"],
            result=-by_type["revenue"] - by_type["expense"],
        )
        for commodity, by_type in sorted(totals.items())
    ]


# --- balances at an instant ---------------------------------------------------------------------

KIND_OF_ACCOUNT = PARENT_CODE_SQL.format(
    code="regexp_replace(a.code, '^(user|creator):[^:]+:', '\\1:*:')"
)
"""A user's or creator's account as the pattern of its kind (``user:*:coins_value``), and a
platform sub-account as its platform account (``platform:coins:spent#3`` as
``platform:coins:spent``): the reports sum them in the database, and classify a handful of
kinds, not a million accounts."""
FLOW_OF_ENTRY = (
    "CASE WHEN e.kind = 'payout' THEN 'payout:' || coalesce(e.refs->>'phase', '') ELSE e.kind END"
)
"""What moved a posting, as the roll-forwards name it: its entry's kind, ``payout:<phase>`` for
a payout's."""
EDGE_POSTINGS = (
    "journal_entry e JOIN posting p ON p.entry_id = e.id JOIN account a ON a.id = p.account_id"
)
"""The postings of the entries of a period: a range of the index ``(posted_at, id)`` of the
journal, then each entry's postings by ``entry_id``."""
_SUMMARIZED_HOURS = text(
    "SELECT CASE WHEN date_trunc('hour', g.s, 'UTC') = g.s THEN g.s"
    "            ELSE date_trunc('hour', g.s, 'UTC') + interval '1 hour' END AS first_hour,"
    "       least(w.summarized_until, date_trunc('hour', g.e, 'UTC')) AS past_last_hour"
    "  FROM posting_total_watermark w,"
    "       (SELECT CAST(:start AS timestamptz) AS s, CAST(:end AS timestamptz) AS e) g"
)
_LAST_POSTING = (
    f"SELECT {KIND_OF_ACCOUNT} AS code, a.commodity, a.type, a.normal_sign,"
    "        sum(p.balance_after) AS balance"
    "  FROM account a"
    "  CROSS JOIN LATERAL (SELECT balance_after FROM posting"
    "                       WHERE account_id = a.id AND posted_at {op} :at"
    "                       ORDER BY posted_at DESC, account_seq DESC LIMIT 1) p"
    " WHERE a.type = ANY(CAST(:types AS text[]))"
    " GROUP BY 1, 2, 3, 4 HAVING sum(p.balance_after) <> 0"
)
_AT_OR_BEFORE = text(_LAST_POSTING.format(op="<="))
_BEFORE = text(_LAST_POSTING.format(op="<"))
_FROM_TOTALS = (
    "SELECT code, commodity, type, normal_sign, sum(amount) AS balance FROM ("
    "  SELECT account_kind AS code, commodity, account_type AS type, normal_sign, amount"
    "    FROM posting_hour_total"
    "   WHERE hour < :summarized AND account_type = ANY(CAST(:types AS text[]))"
    "  UNION ALL"
    f" SELECT {KIND_OF_ACCOUNT}, a.commodity, a.type, a.normal_sign, p.amount"
    f"   FROM {EDGE_POSTINGS}"
    "   WHERE e.posted_at >= :summarized AND e.posted_at {op} :at"
    "     AND a.type = ANY(CAST(:types AS text[]))"
    ") f GROUP BY 1, 2, 3, 4 HAVING sum(amount) <> 0"
)
_AT_OR_BEFORE_FROM_TOTALS = text(_FROM_TOTALS.format(op="<="))
_BEFORE_FROM_TOTALS = text(_FROM_TOTALS.format(op="<"))
_NOW = text(
    f"SELECT {KIND_OF_ACCOUNT} AS code, a.commodity, a.type, a.normal_sign,"
    "        sum(a.balance) AS balance, clock_timestamp() AS at"
    "  FROM account a"
    " GROUP BY 1, 2, 3, 4 HAVING sum(a.balance) <> 0"
)
ALL_TYPES = ("asset", "liability", "equity", "revenue", "expense")


def figure_of(row: Any) -> AccountFigure:
    return AccountFigure(row.code, row.commodity, row.type, int(row.normal_sign), int(row.balance))


async def figures_at(
    session: AsyncSession,
    at: datetime,
    *,
    inclusive: bool,
    types: Sequence[str] = ALL_TYPES,
) -> list[AccountFigure]:
    """The balances of the accounts of ``types`` after their postings at or before ``at``
    (``inclusive``) or strictly before it, in one statement: a platform account's own, the
    accounts of one kind of every user or creator summed (``user:*:coins_value``); zeros left
    out.

    Once totals are stored (``period_totals``), the sum of every whole summarized hour before
    ``at`` plus the postings from the last of them to ``at`` (the partial hour, and whatever is
    not yet summarized); before, each account's running balance on its last posting."""
    hours = await summarized_hours(session, None, at)
    params = {"at": at, "types": list(types)}
    if hours is None:
        rows = await session.execute(_AT_OR_BEFORE if inclusive else _BEFORE, params)
    else:
        totals = _AT_OR_BEFORE_FROM_TOTALS if inclusive else _BEFORE_FROM_TOTALS
        rows = await session.execute(totals, {**params, "summarized": hours[1]})
    return [figure_of(row) for row in rows]


async def summarized_hours(
    session: AsyncSession, start: datetime | None, end: datetime
) -> tuple[datetime | None, datetime] | None:
    """The whole hours of ``[start, end)`` (from the beginning of the books if ``start`` is
    None) that the stored totals hold, as ``(first hour, end of the last)``: None if there are
    none. Below the watermark totals never change, so a summary written after this read only
    leaves more to the raw postings."""
    found = (await session.execute(_SUMMARIZED_HOURS, {"start": start, "end": end})).first()
    if found is None or found.past_last_hour is None:
        return None
    first, past_last = found.first_hour, found.past_last_hour
    if first is not None and first >= past_last:
        return None
    return first, past_last


async def figures_now(session: AsyncSession) -> tuple[datetime, list[AccountFigure]]:
    """The same from the balances on the account rows: no posting read. The instant is the
    statement's clock; the rows are its snapshot (whole entries only)."""
    rows = (await session.execute(_NOW)).all()
    at = rows[0].at if rows else await now(session)
    return at, [figure_of(row) for row in rows]


async def now(session: AsyncSession) -> datetime:
    found: datetime | None = await session.scalar(select(func.clock_timestamp()))
    assert found is not None
    return found


# --- the balance sheet --------------------------------------------------------------------------

BALANCE_SHEET_SECTIONS = ("assets", "liabilities", "equity", "memo")


@dataclass(frozen=True, slots=True)
class BalanceSheet:
    as_of: datetime
    functional_currency: str
    lines: list[ReportLine]
    """Assets, liabilities, equity, then the memo lines (coins and diamonds), per commodity."""
    result: list[ReportLine]
    """The result to date per commodity: revenue less expenses since the books began."""
    checks: list[IdentityCheck]

    @property
    def balanced(self) -> bool:
        return all(check.holds for check in self.checks)


def result_lines(figures: Iterable[AccountFigure]) -> list[ReportLine]:
    """Revenue less expenses per commodity, as one line each."""
    amounts: dict[str, int] = defaultdict(int)
    sources: dict[str, set[str]] = defaultdict(set)
    for figure in figures:
        if figure.type in ("revenue", "expense"):
            amounts[figure.commodity] -= figure.balance
            sources[figure.commodity].add(figure.code)
    return [
        ReportLine("result:to_date", "Result to date", c, amounts[c], tuple(sorted(sources[c])))
        for c in sorted(amounts)
    ]


def build_balance_sheet(
    as_of: datetime, functional_currency: str, figures: Sequence[AccountFigure]
) -> BalanceSheet:
    return BalanceSheet(
        as_of=as_of,
        functional_currency=functional_currency,
        lines=group_lines(figures, BALANCE_SHEET_SECTIONS),
        result=result_lines(figures),
        checks=identity_checks(figures),
    )


async def balance_sheet(
    session: AsyncSession, functional_currency: str, as_of: datetime | None = None
) -> BalanceSheet:
    """The books after every posting at or before ``as_of`` (default: now)."""
    if as_of is None:
        at, figures = await figures_now(session)
    else:
        at, figures = as_of, await figures_at(session, as_of, inclusive=True)
    return build_balance_sheet(at, functional_currency, figures)


# --- the income statement -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncomeStatement:
    start: datetime
    end: datetime
    functional_currency: str
    revenue: list[ReportLine]
    """Credit-positive: refunds and chargebacks (contra revenue) are negative lines."""
    expenses: list[ReportLine]
    """Debit-positive."""
    result: list[ReportLine]
    """Revenue less expenses per commodity."""


def movements(
    opening: Iterable[AccountFigure], closing: Iterable[AccountFigure]
) -> list[AccountFigure]:
    """Each account's closing balance less its opening one (zero movements left out)."""
    moved: dict[str, AccountFigure] = {f.code: f for f in closing}
    for figure in opening:
        before = moved.get(figure.code)
        after = before.balance if before else 0
        moved[figure.code] = AccountFigure(
            figure.code, figure.commodity, figure.type, figure.normal_sign, after - figure.balance
        )
    return [figure for figure in moved.values() if figure.balance]


async def income_statement(
    session: AsyncSession, functional_currency: str, start: datetime, end: datetime
) -> IncomeStatement:
    """Revenue and expenses of the postings with ``start <= posted_at < end``: each revenue and
    expense account's balance before ``end`` less its balance before ``start``."""
    kinds = ("revenue", "expense")
    opening = await figures_at(session, start, inclusive=False, types=kinds)
    closing = await figures_at(session, end, inclusive=False, types=kinds)
    moved = movements(opening, closing)
    return IncomeStatement(
        start=start,
        end=end,
        functional_currency=functional_currency,
        revenue=group_lines(moved, ("revenue",)),
        expenses=group_lines(moved, ("expenses",)),
        result=result_lines(moved),
    )


# --- the roll-forwards --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowLine:
    """One expected line of a roll-forward: the entry kinds (``payout:<phase>`` for a payout's
    phases) whose postings on the subject's accounts it sums."""

    code: str
    label: str
    flows: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Subject:
    """What a roll-forward follows: the balance sheet line whose accounts it sums."""

    code: str
    label: str
    line_codes: tuple[str, ...]
    like: str
    """The accounts' codes, as a SQL ``LIKE`` pattern."""
    lines: tuple[FlowLine, ...]


SUBJECTS: tuple[Subject, ...] = (
    Subject(
        "deferred_revenue",
        "Deferred revenue",
        ("liabilities:deferred_revenue",),
        "user:%:coins_value",
        (
            FlowLine("purchases", "Purchases", ("purchase",)),
            FlowLine("released_by_gifts", "Released by gifts", ("gift",)),
            FlowLine("released_by_features", "Released by features", ("feature",)),
            FlowLine("refunds", "Refunds", ("refund",)),
            FlowLine("chargebacks", "Chargebacks", ("chargeback",)),
            FlowLine("disputes_won", "Chargebacks undone (disputes won)", ("chargeback_won",)),
            FlowLine("breakage", "Breakage", ("breakage",)),
        ),
    ),
    Subject(
        "creator_payable",
        "Creator payable",
        ("liabilities:creator_payable",),
        "creator:%:payable",
        (
            FlowLine("earned", "Earned by gifts", ("gift",)),
            FlowLine("paid_out", "Paid out (payouts sent)", ("payout:sent",)),
            FlowLine("failed_payouts", "Failed payouts returned", ("payout:failed",)),
            FlowLine("returned_payouts", "Paid payouts the bank returned", ("payout:returned",)),
            FlowLine("clawed_back", "Clawed back by chargebacks", ("chargeback",)),
            FlowLine("disputes_won", "Claw-backs undone (disputes won)", ("chargeback_won",)),
        ),
    ),
    Subject(
        "coins_outstanding",
        "Coins outstanding",
        ("memo:coins_outstanding",),
        "user:%:coins",
        (
            FlowLine("purchased", "Purchased (bonus included)", ("purchase",)),
            FlowLine("spent_on_gifts", "Spent on gifts", ("gift",)),
            FlowLine("spent_on_features", "Spent on features", ("feature",)),
            FlowLine("refunded", "Refunded", ("refund",)),
            FlowLine("charged_back", "Charged back", ("chargeback",)),
            FlowLine("disputes_won", "Returned (disputes won)", ("chargeback_won",)),
        ),
    ),
    Subject(
        "diamonds_outstanding",
        "Diamonds outstanding",
        ("memo:diamonds_pending", "memo:diamonds_available", "memo:diamonds_reserved"),
        "creator:%:diamonds:%",
        (
            FlowLine("earned", "Earned by gifts", ("gift",)),
            FlowLine("redeemed", "Redeemed (payouts sent)", ("payout:sent",)),
            FlowLine("failed_payouts", "Returned by failed payouts", ("payout:failed",)),
            FlowLine(
                "returned_payouts",
                "Returned by paid payouts the bank returned",
                ("payout:returned",),
            ),
            FlowLine("clawed_back", "Clawed back by chargebacks", ("chargeback",)),
            FlowLine("disputes_won", "Returned (disputes won)", ("chargeback_won",)),
        ),
    ),
)
"""Moves between a creator's diamond states (hold releases, payouts requested or rejected)
net to zero in diamonds outstanding: they appear only if they do not."""


@dataclass(frozen=True, slots=True)
class RollForward:
    code: str
    label: str
    commodity: str
    opening: int
    lines: list[ReportLine]
    """Each signed as it moves the balance: a release of deferred revenue is negative."""
    not_explained: int
    """Closing less opening less every line: zero unless something moved the balance that no
    entry of the period explains. Always reported."""
    closing: int


def subject_commodity(subject: Subject, functional_currency: str) -> str:
    if subject.code == "coins_outstanding":
        return COIN.code
    if subject.code == "diamonds_outstanding":
        return DIAMOND.code
    return functional_currency


def subject_total(subject: Subject, lines: Iterable[ReportLine], commodity: str) -> int:
    return sum(
        line.amount
        for line in lines
        if line.commodity == commodity and line.code in subject.line_codes
    )


def build_roll_forward(
    subject: Subject,
    commodity: str,
    opening: int,
    closing: int,
    flows: dict[str, int],
) -> RollForward:
    """The expected lines (always shown, zero or not), then a line per other entry kind that
    moved the subject, then what remains unexplained."""
    lines = [
        ReportLine(
            line.code, line.label, commodity, sum(flows.get(f, 0) for f in line.flows), line.flows
        )
        for line in subject.lines
    ]
    expected = {flow for line in subject.lines for flow in line.flows}
    lines += [
        ReportLine(f"other:{flow}", f"Other entries: {flow}", commodity, amount, (flow,))
        for flow, amount in sorted(flows.items())
        if flow not in expected and amount
    ]
    residual = closing - opening - sum(line.amount for line in lines)
    return RollForward(subject.code, subject.label, commodity, opening, lines, residual, closing)


_SUBJECTS = (
    "unnest(CAST(:subjects AS text[]), CAST(:patterns AS text[]),"
    "       CAST(:commodities AS text[])) AS s(subject, pattern, commodity)"
)
_FLOWS = text(
    f"SELECT s.subject, {FLOW_OF_ENTRY} AS flow, -sum(p.amount) AS amount"
    f"  FROM {_SUBJECTS}"
    "  JOIN account a ON a.code LIKE s.pattern AND a.commodity = s.commodity"
    "  CROSS JOIN LATERAL (SELECT amount, entry_id FROM posting"
    "                       WHERE account_id = a.id"
    "                         AND posted_at >= :start AND posted_at < :end) p"
    "  JOIN journal_entry e ON e.id = p.entry_id"
    " GROUP BY 1, 2"
)
"""Each subject account's postings of the period through the index ``(account_id, posted_at,
account_seq)``: a range per account, not a scan of every posting."""
_EDGE_FLOWS = (
    f" SELECT s.subject, {FLOW_OF_ENTRY}, p.amount FROM {EDGE_POSTINGS}"
    f"   JOIN {_SUBJECTS} ON a.code LIKE s.pattern AND a.commodity = s.commodity"
    "   WHERE e.posted_at >= :{0} AND e.posted_at < :{1}"
)
_FLOWS_FROM_TOTALS = text(
    "SELECT subject, flow, -sum(amount) AS amount FROM ("
    "  SELECT s.subject, t.flow, t.amount"
    f"   FROM {_SUBJECTS}"
    "    JOIN posting_hour_total t ON t.account_kind LIKE s.pattern AND t.commodity = s.commodity"
    "   WHERE t.hour >= :first_hour AND t.hour < :past_last_hour"
    f" UNION ALL {_EDGE_FLOWS.format('start', 'first_hour')}"
    f" UNION ALL {_EDGE_FLOWS.format('past_last_hour', 'end')}"
    ") f GROUP BY 1, 2"
)
"""The same from the totals of the whole summarized hours of the period, and the postings of
its edges: before its first whole hour, and from the end of the last (or the watermark) on."""


async def period_flows(
    session: AsyncSession, functional_currency: str, start: datetime, end: datetime
) -> dict[str, dict[str, int]]:
    """Per subject, the period's movement of its accounts per entry kind, credit-positive (all
    four subjects are liabilities, read naturally). From the stored totals for the period's
    whole summarized hours, if any, and the postings for the rest."""
    params = {
        "subjects": [s.code for s in SUBJECTS],
        "patterns": [s.like for s in SUBJECTS],
        "commodities": [subject_commodity(s, functional_currency) for s in SUBJECTS],
        "start": start,
        "end": end,
    }
    hours = await summarized_hours(session, start, end)
    if hours is None:
        rows = await session.execute(_FLOWS, params)
    else:
        hours_of = {"first_hour": hours[0], "past_last_hour": hours[1]}
        rows = await session.execute(_FLOWS_FROM_TOTALS, {**params, **hours_of})
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        found[row.subject][row.flow] = int(row.amount)
    return found


async def roll_forwards(
    session: AsyncSession, functional_currency: str, start: datetime, end: datetime
) -> list[RollForward]:
    """Deferred revenue, creator payable, coins and diamonds outstanding over the postings with
    ``start <= posted_at < end``: opening is the balance sheet just before ``start``, closing
    the balance sheet just before ``end`` (as of ``end`` less a microsecond)."""
    liabilities = ("liability",)
    opening = group_lines(
        await figures_at(session, start, inclusive=False, types=liabilities),
        BALANCE_SHEET_SECTIONS,
    )
    closing = group_lines(
        await figures_at(session, end, inclusive=False, types=liabilities),
        BALANCE_SHEET_SECTIONS,
    )
    flows = await period_flows(session, functional_currency, start, end)
    reports = []
    for subject in SUBJECTS:
        commodity = subject_commodity(subject, functional_currency)
        reports.append(
            build_roll_forward(
                subject,
                commodity,
                subject_total(subject, opening, commodity),
                subject_total(subject, closing, commodity),
                flows.get(subject.code, {}),
            )
        )
    return reports
