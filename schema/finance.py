"""For finance: the trial balance, the integrity report and any account's balance."""

from __future__ import annotations

from datetime import datetime

import strawberry

from accounting import integrity
from accounting.ledger import balances
from accounting.reads import reports
from schema.authorization import READ_BOOKS, require_finance
from schema.context import Info
from schema.scalars import CASH, BigInt, Money, money_of


@strawberry.type(description="One account's balance in the trial balance, in smallest units.")
class TrialBalanceLine:
    account_code: str
    commodity: str
    type: str
    debit: BigInt
    credit: BigInt
    debit_money: Money | None = strawberry.field(description=CASH)
    credit_money: Money | None = strawberry.field(description=CASH)


@strawberry.type(description="Debit and credit totals of one commodity: equal when balanced.")
class CommodityTotals:
    commodity: str
    debit: BigInt
    credit: BigInt
    debit_money: Money | None = strawberry.field(description=CASH)
    credit_money: Money | None = strawberry.field(description=CASH)
    balanced: bool


@strawberry.type(
    description="Amounts are in each commodity's smallest unit: coins, diamonds, "
    "or micro-units of a currency (1 USD = 1000000)."
)
class TrialBalance:
    as_of: datetime
    balanced: bool
    totals: list[CommodityTotals]
    lines: list[TrialBalanceLine]


@strawberry.type
class IntegrityViolation:
    invariant: int = strawberry.field(description="The invariant's number in DESIGN.md.")
    check: str
    detail: str


@strawberry.type(description="Every invariant re-derived from the raw postings.")
class IntegrityReport:
    checked_at: datetime
    ok: bool
    entries: BigInt
    postings: BigInt
    accounts: BigInt
    checks: list[str]
    violations: list[IntegrityViolation]


@strawberry.type
class AccountBalance:
    code: str
    commodity: str
    balance: BigInt = strawberry.field(
        description="In the account's natural reading (a liability's credit balance is "
        "positive), in the commodity's smallest unit."
    )
    balance_money: Money | None = strawberry.field(description=CASH)
    posting_count: BigInt


@strawberry.type
class FinanceQueries:
    @strawberry.field(description="Debits equal credits per commodity, at any instant.")
    async def trial_balance(self, info: Info, as_of: datetime | None = None) -> TrialBalance:
        require_finance(info, READ_BOOKS)
        async with info.context.services.sessions() as session:
            found = await reports.trial_balance(session, as_of)
        return TrialBalance(
            as_of=found.as_of,
            balanced=found.balanced,
            totals=[
                CommodityTotals(
                    commodity=t.commodity,
                    debit=BigInt(t.debit),
                    credit=BigInt(t.credit),
                    debit_money=money_of(t.debit, t.commodity),
                    credit_money=money_of(t.credit, t.commodity),
                    balanced=t.balanced,
                )
                for t in found.totals
            ],
            lines=[
                TrialBalanceLine(
                    account_code=line.code,
                    commodity=line.commodity,
                    type=line.type,
                    debit=BigInt(line.debit),
                    credit=BigInt(line.credit),
                    debit_money=money_of(line.debit, line.commodity),
                    credit_money=money_of(line.credit, line.commodity),
                )
                for line in found.lines
            ],
        )

    @strawberry.field(description="Re-checks every invariant from the raw postings.")
    async def integrity_report(self, info: Info) -> IntegrityReport:
        require_finance(info, READ_BOOKS)
        async with info.context.services.sessions() as session:
            found = await integrity.check_integrity(session)
        return IntegrityReport(
            checked_at=found.checked_at,
            ok=found.ok,
            entries=BigInt(found.entries),
            postings=BigInt(found.postings),
            accounts=BigInt(found.accounts),
            checks=found.checks,
            violations=[
                IntegrityViolation(invariant=v.invariant, check=v.check, detail=v.detail)
                for v in found.violations
            ],
        )

    @strawberry.field(
        description="Any account's balance by code, now or as of an instant; null when there "
        "is no such account."
    )
    async def account_balance(
        self, info: Info, code: str, as_of: datetime | None = None
    ) -> AccountBalance | None:
        require_finance(info, READ_BOOKS)
        async with info.context.services.sessions() as session:
            found = await balances.account_balance(session, code, as_of)
        if found is None:
            return None
        return AccountBalance(
            code=found.code,
            commodity=found.commodity,
            balance=BigInt(found.balance),
            balance_money=money_of(found.balance, found.commodity),
            posting_count=BigInt(found.posting_count),
        )
