"""Wallets and their history: what a user holds, and every movement of it."""

from __future__ import annotations

from datetime import datetime

import strawberry

from accounting.ledger import balances
from accounting.ledger.chart import check_user_id
from accounting.ledger.errors import LedgerError
from accounting.policy.access import Principal, may_read_wallet
from accounting.reads.history import wallet_history
from schema.context import Info
from schema.errors import BAD_USER_INPUT, ClientError, forbidden, require_principal
from schema.pagination import (
    Connection,
    check_first,
    connection,
    decode_instant_cursor,
    instant_position,
)
from schema.scalars import BigInt, Money


@strawberry.type(description="A user's coins and what they paid for the coins they still hold.")
class Wallet:
    user_id: str
    coins: BigInt
    coins_value: Money = strawberry.field(
        description="Deferred value: what the user paid for the coins they hold, in the "
        "functional currency."
    )
    as_of: datetime | None = strawberry.field(description="Null for the current balance.")


def wallet_of(found: balances.Wallet) -> Wallet:
    return Wallet(
        user_id=found.user_id,
        coins=BigInt(found.coins),
        coins_value=Money.of(found.coins_value_micros, found.currency),
        as_of=found.as_of,
    )


@strawberry.type(description="One movement of a wallet's coins: a journal entry seen from it.")
class WalletMovement:
    entry_id: strawberry.ID
    kind: str = strawberry.field(description="purchase, gift, reversal, ...")
    posted_at: datetime
    coins: BigInt = strawberry.field(description="Coins in (positive) or out (negative).")
    coins_after: BigInt
    value: Money = strawberry.field(description="Change of the wallet's deferred value.")
    memo: str
    purchase_id: strawberry.ID | None


def readable_user(info: Info, user_id: str | None) -> tuple[Principal, str]:
    """The user whose wallet is asked for (the caller when omitted), if the caller may read it."""
    principal = require_principal(info)
    wanted = user_id if user_id is not None else principal.user_id
    try:
        check_user_id(wanted)
    except LedgerError as error:
        raise ClientError(BAD_USER_INPUT, error.message) from None
    if not may_read_wallet(principal, wanted):
        raise forbidden(
            "read another user's wallet"
            if wanted != principal.user_id
            else "hold a wallet without the viewer or creator role"
        )
    return principal, wanted


@strawberry.type
class WalletQueries:
    @strawberry.field(
        description="A wallet: yours when userId is omitted; anyone's for support "
        "and finance. With asOf, its balance at that instant."
    )
    async def wallet(
        self, info: Info, user_id: str | None = None, as_of: datetime | None = None
    ) -> Wallet:
        _, wanted = readable_user(info, user_id)
        async with info.context.services.reads() as session:  # one statement
            found = await balances.wallet(
                session, wanted, info.context.services.functional_currency, as_of
            )
        return wallet_of(found)

    @strawberry.field(
        description="A wallet's movements, newest first (yours when userId is omitted)."
    )
    async def transactions(
        self, info: Info, user_id: str | None = None, first: int = 20, after: str | None = None
    ) -> Connection[WalletMovement]:
        _, wanted = readable_user(info, user_id)
        check_first(first)
        before = decode_instant_cursor("movement", after)
        async with info.context.services.sessions() as session:
            page = await wallet_history(
                session,
                wanted,
                info.context.services.functional_currency,
                first=first,
                before=before,
            )
        currency = info.context.services.functional_currency
        items = [
            (
                instant_position(*m.cursor),
                WalletMovement(
                    entry_id=strawberry.ID(str(m.entry_id)),
                    kind=m.kind,
                    posted_at=m.posted_at,
                    coins=BigInt(m.coins),
                    coins_after=BigInt(m.coins_after),
                    value=Money.of(m.value_micros, currency),
                    memo=m.memo,
                    purchase_id=(
                        strawberry.ID(str(m.refs["purchase_id"]))
                        if "purchase_id" in m.refs
                        else None
                    ),
                ),
            )
            for m in page.items
        ]
        return connection("movement", items, page.has_next)
