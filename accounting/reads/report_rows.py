"""The reports as export rows: pure functions from a report's objects to the mappings the
streaming writer (:mod:`accounting.reads.export`) writes as CSV or JSON lines.

Every amount is a decimal string in its commodity's unit (``4.99``, ``350``), with the
commodity in its own column, as the journal export writes it; a line's sources (accounts,
account patterns or entry kinds) are one cell, separated by spaces (no code holds one).

- An account statement is one row a line, the ``line`` column saying which: ``opening`` (the
  balance before ``from``, in ``balance``), one ``movement`` per posting (``amount`` signed in
  the account's natural reading: positive increased it; ``balance`` after it), then
  ``total_in`` (positive), ``total_out`` (negative, as the movements out are) and ``closing``
  (the balance before ``to``): opening + total_in + total_out = closing.
- The balance sheet: its lines (assets, liabilities, equity, memo), then the result to date,
  section ``result``.
- The income statement: revenue, expenses, then the period's result (``result:period``).
- The roll-forwards: per subject an ``opening`` row, its lines, ``not_explained`` and
  ``closing``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from accounting.reads.financials import BalanceSheet, IncomeStatement, ReportLine, RollForward
from accounting.reads.journal import amount_text
from accounting.reads.statements import AccountStatement, StatementMovement

Row = dict[str, Any]

STATEMENT_COLUMNS = (
    "account_code",
    "commodity",
    "line",
    "posted_at",
    "entry_id",
    "kind",
    "amount",
    "balance",
    "counterparties",
    "memo",
)
BALANCE_SHEET_COLUMNS = ("as_of", "section", "line", "label", "commodity", "amount", "sources")
INCOME_STATEMENT_COLUMNS = (
    "from",
    "to",
    "section",
    "line",
    "label",
    "commodity",
    "amount",
    "sources",
)
ROLL_FORWARD_COLUMNS = ("from", "to", "subject", "line", "label", "commodity", "amount", "sources")


def _statement_row(statement: AccountStatement, line: str, **values: Any) -> Row:
    row: Row = dict.fromkeys(STATEMENT_COLUMNS)
    row.update(account_code=statement.code, commodity=statement.commodity, line=line)
    row.update(values)
    return row


def statement_opening(statement: AccountStatement) -> Row:
    return _statement_row(
        statement,
        "opening",
        posted_at=statement.start.isoformat(),
        balance=amount_text(statement.opening, statement.commodity),
    )


def statement_movement(statement: AccountStatement, movement: StatementMovement) -> Row:
    commodity = statement.commodity
    return _statement_row(
        statement,
        "movement",
        posted_at=movement.posted_at.isoformat(),
        entry_id=movement.entry_id,
        kind=movement.kind,
        amount=amount_text(movement.amount, commodity),
        balance=amount_text(movement.balance_after, commodity),
        counterparties=" ".join(movement.counterparties),
        memo=movement.memo,
    )


def statement_closing(statement: AccountStatement) -> list[Row]:
    """``total_in``, ``total_out`` and ``closing``: the whole period's (the statement read
    with its totals)."""
    commodity, total_in, total_out = statement.commodity, statement.total_in, statement.total_out
    if total_in is None or total_out is None:
        raise ValueError("the statement was read without its totals")
    return [
        _statement_row(statement, "total_in", amount=amount_text(total_in, commodity)),
        _statement_row(statement, "total_out", amount=amount_text(-total_out, commodity)),
        _statement_row(
            statement,
            "closing",
            posted_at=statement.end.isoformat(),
            balance=amount_text(statement.closing, commodity),
        ),
    ]


def _line_row(line: ReportLine, section: str, **values: Any) -> Row:
    return {
        **values,
        "section": section,
        "line": line.code,
        "label": line.label,
        "commodity": line.commodity,
        "amount": amount_text(line.amount, line.commodity),
        "sources": " ".join(line.sources),
    }


def balance_sheet_rows(sheet: BalanceSheet) -> list[Row]:
    at = sheet.as_of.isoformat()
    rows = [_line_row(line, line.code.split(":", 1)[0], as_of=at) for line in sheet.lines]
    return rows + [_line_row(line, "result", as_of=at) for line in sheet.result]


def income_statement_rows(statement: IncomeStatement) -> list[Row]:
    period = {"from": statement.start.isoformat(), "to": statement.end.isoformat()}
    result = [
        replace(line, code="result:period", label="Result of the period")
        for line in statement.result
    ]
    sections = (
        ("revenue", statement.revenue),
        ("expenses", statement.expenses),
        ("result", result),
    )
    return [_line_row(line, name, **period) for name, lines in sections for line in lines]


def _roll_forward_rows(report: RollForward, start: datetime, end: datetime) -> Iterator[Row]:
    period = {"from": start.isoformat(), "to": end.isoformat(), "subject": report.code}

    def row(line: str, label: str, amount: int, sources: str = "") -> Row:
        commodity = report.commodity
        amount_in_unit = amount_text(amount, commodity)
        named = {"line": line, "label": label, "commodity": commodity, "sources": sources}
        return {**period, **named, "amount": amount_in_unit}

    yield row("opening", f"{report.label}: opening", report.opening)
    for line in report.lines:
        yield row(line.code, line.label, line.amount, " ".join(line.sources))
    yield row("not_explained", "Not explained by the period's entries", report.not_explained)
    yield row("closing", f"{report.label}: closing", report.closing)


def roll_forward_rows(reports: Iterable[RollForward], start: datetime, end: datetime) -> list[Row]:
    return [row for report in reports for row in _roll_forward_rows(report, start, end)]
