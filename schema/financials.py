"""For finance: the balance sheet, the income statement and the roll-forwards."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import strawberry

from accounting.ledger.money import COIN, DIAMOND, format_micros
from accounting.reads import financials
from schema.authorization import READ_BOOKS, require_finance
from schema.context import Info
from schema.enums import Currency
from schema.errors import BAD_USER_INPUT, ClientError
from schema.scalars import CASH, BigInt, Money, money_of


def decimal_of(amount: int, commodity: str) -> str:
    """Coins and diamonds as whole numbers; money in its unit (``4.99``)."""
    if commodity in (COIN.code, DIAMOND.code):
        return str(amount)
    return format_micros(amount, commodity)


@strawberry.type(description="One line of a report, in one commodity.")
class FinancialLine:
    code: str = strawberry.field(description="Stable: 'liabilities:deferred_revenue'.")
    label: str
    commodity: str
    amount: BigInt = strawberry.field(
        description="In the commodity's smallest unit (micro-units of a currency: 1 USD = "
        "1000000), as the line's section reads it: assets and expenses debit-positive; "
        "liabilities, equity and revenue credit-positive; a roll-forward's line as it moves "
        "the balance."
    )
    money: Money | None = strawberry.field(description=CASH)
    decimal: str = strawberry.field(
        description="The amount in the commodity's unit: '4.99'.",
        deprecation_reason="Use money.amount (coins and diamonds: amount).",
    )
    accounts: list[str] = strawberry.field(
        description="The accounts behind the line; a user's or creator's as a pattern "
        "('user:*:coins_value')."
    )
    entry_kinds: list[str] = strawberry.field(
        description="The entry kinds behind a roll-forward's line ('payout:sent' for a "
        "payout's phase)."
    )

    @classmethod
    def of(cls, line: financials.ReportLine, *, kinds: bool = False) -> FinancialLine:
        return cls(
            code=line.code,
            label=line.label,
            commodity=line.commodity,
            amount=BigInt(line.amount),
            money=money_of(line.amount, line.commodity),
            decimal=decimal_of(line.amount, line.commodity),
            accounts=[] if kinds else list(line.sources),
            entry_kinds=list(line.sources) if kinds else [],
        )


def lines_of(lines: Sequence[financials.ReportLine]) -> list[FinancialLine]:
    return [FinancialLine.of(line) for line in lines]


@strawberry.type(description="Assets = liabilities + equity + result to date, in one commodity.")
class BalanceIdentity:
    commodity: str
    assets: BigInt
    liabilities: BigInt
    equity: BigInt
    result: BigInt
    holds: bool
    assets_money: Money | None = strawberry.field(description=CASH)
    liabilities_money: Money | None = strawberry.field(description=CASH)
    equity_money: Money | None = strawberry.field(description=CASH)
    result_money: Money | None = strawberry.field(description=CASH)


@strawberry.type(
    description="The books at an instant, per commodity (a foreign currency's lines are in "
    "that currency; the FX trading accounts carry the conversion). Only non-zero lines."
)
class BalanceSheet:
    as_of: datetime
    functional_currency: Currency
    lines: list[FinancialLine] = strawberry.field(
        description="Assets, liabilities, equity, then memo lines (coins and diamonds)."
    )
    result: list[FinancialLine] = strawberry.field(
        description="Revenue less expenses since the books began, per commodity."
    )
    checks: list[BalanceIdentity]
    balanced: bool


@strawberry.type(description="Revenue and expenses of the postings in [from, to), per commodity.")
class IncomeStatement:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    functional_currency: Currency
    revenue: list[FinancialLine] = strawberry.field(
        description="Refunds and chargebacks (contra revenue) are negative lines."
    )
    expenses: list[FinancialLine]
    result: list[FinancialLine]


@strawberry.type(
    description="Opening + every line + not explained = closing, over the postings in "
    "[from, to). Closing equals the balance sheet as of 'to' less a microsecond."
)
class RollForward:
    code: str
    label: str
    commodity: str
    opening: BigInt
    opening_money: Money | None = strawberry.field(description=CASH)
    opening_decimal: str = strawberry.field(deprecation_reason="Use openingMoney.amount.")
    lines: list[FinancialLine]
    not_explained: BigInt = strawberry.field(
        description="What no entry of the period explains: zero in sound books; never hidden."
    )
    not_explained_money: Money | None = strawberry.field(description=CASH)
    closing: BigInt
    closing_money: Money | None = strawberry.field(description=CASH)
    closing_decimal: str = strawberry.field(deprecation_reason="Use closingMoney.amount.")

    @classmethod
    def of(cls, found: financials.RollForward) -> RollForward:
        return cls(
            code=found.code,
            label=found.label,
            commodity=found.commodity,
            opening=BigInt(found.opening),
            opening_money=money_of(found.opening, found.commodity),
            opening_decimal=decimal_of(found.opening, found.commodity),
            lines=[FinancialLine.of(line, kinds=True) for line in found.lines],
            not_explained=BigInt(found.not_explained),
            not_explained_money=money_of(found.not_explained, found.commodity),
            closing=BigInt(found.closing),
            closing_money=money_of(found.closing, found.commodity),
            closing_decimal=decimal_of(found.closing, found.commodity),
        )


def check_period(start: datetime, end: datetime) -> None:
    if start > end:
        raise ClientError(BAD_USER_INPUT, "'from' must not be after 'to'")


@strawberry.type
class FinancialQueries:
    @strawberry.field(description="The balance sheet as of an instant (default: now).")
    async def balance_sheet(self, info: Info, as_of: datetime | None = None) -> BalanceSheet:
        require_finance(info, READ_BOOKS)
        services = info.context.services
        async with services.sessions() as session:
            found = await financials.balance_sheet(session, services.functional_currency, as_of)
        return BalanceSheet(
            as_of=found.as_of,
            functional_currency=Currency(found.functional_currency),
            lines=lines_of(found.lines),
            result=lines_of(found.result),
            checks=[
                BalanceIdentity(
                    commodity=c.commodity,
                    assets=BigInt(c.assets),
                    liabilities=BigInt(c.liabilities),
                    equity=BigInt(c.equity),
                    result=BigInt(c.result),
                    holds=c.holds,
                    assets_money=money_of(c.assets, c.commodity),
                    liabilities_money=money_of(c.liabilities, c.commodity),
                    equity_money=money_of(c.equity, c.commodity),
                    result_money=money_of(c.result, c.commodity),
                )
                for c in found.checks
            ],
            balanced=found.balanced,
        )

    @strawberry.field(description="The income statement of the postings in [from, to).")
    async def income_statement(
        self,
        info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
    ) -> IncomeStatement:
        require_finance(info, READ_BOOKS)
        check_period(from_, to)
        services = info.context.services
        async with services.sessions() as session:
            found = await financials.income_statement(
                session, services.functional_currency, from_, to
            )
        return IncomeStatement(
            from_=found.start,
            to=found.end,
            functional_currency=Currency(found.functional_currency),
            revenue=lines_of(found.revenue),
            expenses=lines_of(found.expenses),
            result=lines_of(found.result),
        )

    @strawberry.field(
        description="Roll-forwards of deferred revenue, creator payable, coins and diamonds "
        "outstanding over the postings in [from, to)."
    )
    async def roll_forwards(
        self,
        info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
    ) -> list[RollForward]:
        require_finance(info, READ_BOOKS)
        check_period(from_, to)
        services = info.context.services
        async with services.sessions() as session:
            found = await financials.roll_forwards(session, services.functional_currency, from_, to)
        return [RollForward.of(report) for report in found]
