"""Account statements: finance reads any account's; a viewer their own wallet's, a creator their
own diamonds' and payable's; support any user's wallet and any creator's diamonds and payable
(the same figures its wallet, transactions and earnings queries already show)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types.nodes import SelectedField, Selection

from accounting.ledger import chart
from accounting.ledger.errors import LedgerError
from accounting.ledger.pages import Page
from accounting.policy.access import (
    Principal,
    may_read_books,
    may_read_earnings,
    may_read_wallet,
)
from accounting.reads.statements import AccountStatement as Found
from accounting.reads.statements import StatementMovement as FoundMovement
from accounting.reads.statements import UnknownCursor, account_statement
from schema.context import Info
from schema.errors import BAD_USER_INPUT, NOT_FOUND, ClientError, forbidden, require_principal
from schema.pagination import (
    Connection,
    check_first,
    connection,
    decode_instant_cursor,
    instant_position,
)
from schema.scalars import BigInt, Money, money_of

CURSOR_KIND = "statement"


@strawberry.type(description="An amount of the statement's commodity.")
class StatementAmount:
    units: BigInt = strawberry.field(
        description="In the commodity's smallest unit: coins, diamonds, or micro-units of a "
        "currency (1 USD = 1000000)."
    )
    money: Money | None = strawberry.field(
        description="The same amount as money when the commodity is a currency; null for coins "
        "and diamonds."
    )


def amount_of(units: int, commodity: str) -> StatementAmount:
    return StatementAmount(units=BigInt(units), money=money_of(units, commodity))


@strawberry.type(description="One posting to the account: a journal entry seen from it.")
class StatementMovement:
    entry_id: strawberry.ID
    posted_at: datetime
    kind: str = strawberry.field(description="purchase, gift, hold_release, reversal, ...")
    memo: str
    amount: StatementAmount = strawberry.field(
        description="Positive when it increased the account in its natural reading (what a "
        "user holds, what the platform owes or earned), negative when it decreased it."
    )
    balance_after: StatementAmount
    counterparties: list[str] = strawberry.field(
        description="The codes of the entry's other accounts."
    )


@strawberry.type(
    description="One account over [from, to): a movement posted exactly at 'from' is in it, one "
    "at 'to' is in the next period. Opening, closing, totals and movementCount are the whole "
    "period's, whichever page of movements is asked for; closing = opening + totalIn - totalOut."
)
class AccountStatement:
    account_code: str
    commodity: str
    from_: datetime = strawberry.field(name="from")
    to: datetime
    opening: StatementAmount = strawberry.field(description="The balance at 'from'.")
    closing: StatementAmount = strawberry.field(description="The balance at 'to'.")
    total_in: StatementAmount = strawberry.field(
        resolver=lambda self: self.read_totals()[0], description="What increased the account."
    )
    total_out: StatementAmount = strawberry.field(
        resolver=lambda self: self.read_totals()[1],
        description="What decreased it, as a positive amount.",
    )
    movement_count: BigInt
    movements: Connection[StatementMovement] = strawberry.field(
        description="The period's movements, oldest first (as a statement reads: each one's "
        "balanceAfter follows from the one before)."
    )
    totals: strawberry.Private[tuple[StatementAmount, StatementAmount] | None]
    """In and out; read only when the query asks for them (they sum the whole period)."""

    def read_totals(self) -> tuple[StatementAmount, StatementAmount]:
        if self.totals is None:  # the resolver reads them whenever the query names them
            raise ClientError(BAD_USER_INPUT, "The totals were not read")
        return self.totals


def _owner(code: str, currency: str) -> tuple[str, str] | None:
    """``("user", id)`` for a user's wallet account, ``("creator", id)`` for a creator's
    diamonds or payable; ``None`` for every other code (the platform's, or none at all)."""
    parts = code.split(":")
    try:
        if parts[0] == "user" and len(parts) == 3:
            user = parts[1]
            kinds = {chart.user_coins(user).code, chart.user_coins_value(user, currency).code}
            return ("user", user) if code in kinds else None
        if parts[0] == "creator" and len(parts) in (3, 4):
            creator = parts[1]
            kinds = {chart.creator_diamonds(creator, s).code for s in chart.CREATOR_DIAMOND_STATES}
            kinds.add(chart.creator_payable(creator, currency).code)
            return ("creator", creator) if code in kinds else None
    except LedgerError:  # not a user id: nobody's
        return None
    return None


def _commodity_of_own(code: str, functional_currency: str) -> str:
    if code.endswith(":coins_value") or code.endswith(":payable"):
        return functional_currency
    return "COIN" if code.endswith(":coins") else "DIAMOND"


def may_read_statement(principal: Principal, code: str, currency: str) -> bool:
    """Finance: any account. A user's wallet accounts: whoever may read that wallet (the user,
    support). A creator's diamonds and payable: whoever may read their earnings (the creator,
    support). Nobody else: whether the account exists or not, the answer is the same."""
    if may_read_books(principal):
        return True
    owner = _owner(code, currency)
    if owner is None:
        return False
    kind, user_id = owner
    if kind == "user":
        return may_read_wallet(principal, user_id)
    return may_read_earnings(principal, user_id)


def _movement(m: FoundMovement, commodity: str) -> tuple[str, StatementMovement]:
    return instant_position(*m.cursor), StatementMovement(
        entry_id=strawberry.ID(str(m.entry_id)),
        posted_at=m.posted_at,
        kind=m.kind,
        memo=m.memo,
        amount=amount_of(m.amount, commodity),
        balance_after=amount_of(m.balance_after, commodity),
        counterparties=list(m.counterparties),
    )


def statement_of(found: Found) -> AccountStatement:
    c = found.commodity
    page = found.movements
    return AccountStatement(
        account_code=found.code,
        commodity=c,
        from_=found.start,
        to=found.end,
        opening=amount_of(found.opening, c),
        closing=amount_of(found.closing, c),
        movement_count=BigInt(found.movement_count),
        movements=connection(CURSOR_KIND, [_movement(m, c) for m in page.items], page.has_next),
        totals=(
            None
            if found.total_in is None or found.total_out is None
            else (amount_of(found.total_in, c), amount_of(found.total_out, c))
        ),
    )


TOTALS = frozenset({"totalIn", "totalOut"})


def _names(selections: Sequence[Selection], names: frozenset[str]) -> bool:
    """Whether ``selections`` (fragments included) name one of ``names``."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name in names:
                return True
        elif _names(selection.selections, names):
            return True
    return False


def asks_for_totals(info: Info) -> bool:
    """Whether the query reads the statement's totals: the one figure that reads every
    movement of the period, so a page that does not ask for it reads only its own."""
    return any(_names(field.selections, TOTALS) for field in info.selected_fields)


def _check_period(start: datetime, end: datetime) -> None:
    if start.utcoffset() is None or end.utcoffset() is None:
        raise ClientError(BAD_USER_INPUT, "Send 'from' and 'to' with a UTC offset")
    if end <= start:
        raise ClientError(BAD_USER_INPUT, "'to' must be after 'from'")


async def _read(
    info: Info,
    code: str,
    start: datetime,
    end: datetime,
    first: int,
    after: tuple[datetime, int] | None,
) -> Found | None:
    """The statement, with its totals when the query asks for them."""
    async with info.context.services.sessions() as session:
        try:
            return await account_statement(
                session, code, start, end, first=first, after=after, totals=asks_for_totals(info)
            )
        except UnknownCursor:
            raise ClientError(BAD_USER_INPUT, "'after' is not a cursor from this list") from None


@strawberry.type
class StatementQueries:
    @strawberry.field(
        description="An account's statement for [from, to): opening and closing balances, "
        "totals in and out, and its movements. Finance: any account. Viewers: their own wallet "
        "(user:<id>:coins, user:<id>:coins_value). Creators: their own diamonds "
        "(creator:<id>:diamonds:pending|available|reserved) and creator:<id>:payable. Support: "
        "those of any user or creator."
    )
    async def account_statement(
        self,
        info: Info,
        account_code: str,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        first: int = 20,
        after: str | None = None,
    ) -> AccountStatement:
        principal = require_principal(info)
        currency = info.context.services.functional_currency
        if not may_read_statement(principal, account_code, currency):
            raise forbidden(f"read the statement of {account_code}")
        _check_period(from_, to)
        check_first(first)
        cursor = decode_instant_cursor(CURSOR_KIND, after)
        found = await _read(info, account_code, from_, to, first, cursor)
        if found is not None:
            return statement_of(found)
        if not may_read_books(principal):  # one's own account, not opened yet: nothing in it
            commodity = _commodity_of_own(account_code, currency)
            return statement_of(
                Found(account_code, commodity, from_, to, 0, 0, 0, 0, 0, Page([], False))
            )
        raise ClientError(NOT_FOUND, f"No account {account_code}")
