"""For finance: the journal, entry by entry, with postings, rates, references and reversal
links; filtered, and paged by keyset on (postedAt, id)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from accounting.ledger.errors import LedgerError
from accounting.reads import journal
from schema.authorization import JOURNAL_ENTRIES, look_up
from schema.context import Info
from schema.errors import BAD_USER_INPUT, ClientError
from schema.nodes import Node, global_id, pk_of
from schema.pagination import (
    Connection,
    Edge,
    PageInfo,
    check_first,
    decode_instant_cursor,
    encode_cursor,
    instant_position,
)
from schema.scalars import BigInt, Money, money_of

CURSOR_KIND = "journal"


@strawberry.enum(description="The order of the journal's entries, by postedAt then id.")
class JournalOrder(Enum):
    NEWEST_FIRST = "newest_first"
    OLDEST_FIRST = "oldest_first"


@strawberry.enum(description="DEBIT: the posting's signed amount is positive. CREDIT: negative.")
class PostingSide(Enum):
    DEBIT = "DEBIT"
    CREDIT = "CREDIT"


@strawberry.input(description="Every filter given must hold.")
class JournalFilter:
    from_: datetime | None = strawberry.field(
        name="from", default=None, description="Posted at or after (with a UTC offset)."
    )
    to: datetime | None = strawberry.field(default=None, description="Posted before.")
    kind: str | None = strawberry.field(
        default=None, description="purchase, gift, feature, hold_release, refund, ..."
    )
    account: str | None = strawberry.field(
        default=None,
        description="An account code; ending with ':' a prefix ('creator:bo:' is every "
        "account of Bo's).",
    )
    user_id: str | None = strawberry.field(
        default=None, description="A posting on any account of this user or creator."
    )
    actor: str | None = strawberry.field(
        default=None, description="Who caused the entry ('user:ana', 'system:hold-release')."
    )
    purchase_id: strawberry.ID | None = strawberry.field(
        default=None, description="The purchase and what undid it (refund, chargeback...)."
    )
    gift_id: strawberry.ID | None = strawberry.field(
        default=None, description="The gift and the release of its hold."
    )
    payout_id: strawberry.ID | None = None
    refund_id: strawberry.ID | None = None
    chargeback_id: strawberry.ID | None = strawberry.field(
        default=None, description="The chargeback and, if won, the entry that undid it."
    )
    provider_reference: str | None = strawberry.field(
        default=None, description="The payment provider's reference of a charge."
    )


@strawberry.type
class JournalRate:
    key: str
    value: str


@strawberry.type(description="One posting of an entry.")
class JournalPosting:
    account_code: str
    commodity: str
    side: PostingSide
    amount: str = strawberry.field(
        description="Unsigned decimal string in the commodity's unit: coins and diamonds whole "
        '("350"), money in currency units ("4.99", "0.014257").'
    )
    units: BigInt = strawberry.field(
        description="Signed, in the smallest unit (micro-units for money): debit positive."
    )
    money: Money | None = strawberry.field(
        description="The signed units as Money when the commodity is a currency (debit "
        "positive); null for coins and diamonds."
    )


@strawberry.type(description="A balanced journal entry: debits equal credits per commodity.")
class JournalEntry(Node):
    kind: str
    event_key: str = strawberry.field(description="The business event it records.")
    posted_at: datetime
    actor: str = strawberry.field(description="Who caused it.")
    memo: str
    rates: list[JournalRate] = strawberry.field(description="The rates it used, as recorded.")
    refs: JSON = strawberry.field(
        description="Its business references as recorded, a JSON object (purchase_id, "
        "user_id, provider_reference, stream_id, gift_ids, payout_id...)."
    )
    reverses_entry_id: strawberry.ID | None
    reversed_by_entry_id: strawberry.ID | None
    postings: list[JournalPosting]


def _entry(line: journal.JournalLine) -> JournalEntry:
    def optional_id(value: int | None) -> strawberry.ID | None:
        return strawberry.ID(str(value)) if value is not None else None

    return JournalEntry(
        id=global_id("JournalEntry", line.id),
        kind=line.kind,
        event_key=line.event_key,
        posted_at=line.posted_at,
        actor=line.actor,
        memo=line.memo,
        rates=[JournalRate(key=k, value=v) for k, v in sorted(line.rates.items())],
        refs=cast(JSON, line.refs),
        reverses_entry_id=optional_id(line.reverses_entry_id),
        reversed_by_entry_id=optional_id(line.reversed_by_entry_id),
        postings=[
            JournalPosting(
                account_code=p.account_code,
                commodity=p.commodity,
                side=PostingSide(str(p.side)),
                amount=p.amount,
                units=BigInt(p.units),
                money=money_of(p.units, p.commodity),
            )
            for p in line.postings
        ],
    )


def _id(value: strawberry.ID | None, field: str, type_name: str) -> int | None:
    if value is None:
        return None
    parsed = pk_of(value, type_name)
    if parsed is None:
        raise ClientError(BAD_USER_INPUT, f"'{field}' is not an id")
    return parsed


def _filter(given: JournalFilter | None) -> journal.JournalFilter:
    if given is None:
        return journal.JournalFilter()
    if any(t is not None and t.utcoffset() is None for t in (given.from_, given.to)):
        raise ClientError(BAD_USER_INPUT, "Send 'from' and 'to' with a UTC offset")
    return journal.JournalFilter(
        start=given.from_,
        end=given.to,
        kind=given.kind,
        account=given.account,
        user_id=given.user_id,
        actor=given.actor,
        purchase_id=_id(given.purchase_id, "purchaseId", "Purchase"),
        gift_id=_id(given.gift_id, "giftId", "Gift"),
        payout_id=_id(given.payout_id, "payoutId", "Payout"),
        refund_id=_id(given.refund_id, "refundId", "Refund"),
        chargeback_id=_id(given.chargeback_id, "chargebackId", "Chargeback"),
        provider_reference=given.provider_reference,
    )


@strawberry.type
class JournalQueries:
    @strawberry.field(
        description="Journal entries with their postings, newest first unless 'order' says "
        "otherwise, filtered; keyset pages of at most 100. Finance only."
    )
    async def journal(
        self,
        info: Info,
        filter: JournalFilter | None = None,
        order: JournalOrder = JournalOrder.NEWEST_FIRST,
        first: int = 20,
        after: Annotated[str | None, strawberry.argument(description="An endCursor.")] = None,
    ) -> Connection[JournalEntry]:
        JOURNAL_ENTRIES.caller(info)
        check_first(first)
        wanted, start = _filter(filter), decode_instant_cursor(CURSOR_KIND, after)
        try:
            async with info.context.services.sessions() as session:
                page = await journal.journal_page(
                    session,
                    wanted,
                    first=first,
                    after=start,
                    newest_first=order is JournalOrder.NEWEST_FIRST,
                )
        except LedgerError as error:
            raise ClientError(BAD_USER_INPUT, error.message) from None
        edges = [
            Edge(
                cursor=encode_cursor(CURSOR_KIND, instant_position(e.posted_at, e.id)),
                node=_entry(e),
            )
            for e in page.items
        ]
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
            ),
        )

    @strawberry.field(description="One journal entry by id; null when there is none.")
    async def journal_entry(self, info: Info, id: strawberry.ID) -> JournalEntry | None:
        return await look_up(info, id, "JournalEntry", load_journal_entry)


async def load_journal_entry(info: Info, pk: int) -> JournalEntry | None:
    """Journal entry ``pk``, for finance; None when there is none."""
    JOURNAL_ENTRIES.caller(info)
    async with info.context.services.sessions() as session:
        found = await journal.journal_entry(session, pk)
    return _entry(found) if found is not None else None
