"""Spending coins: gifts to creators in live streams, premium features, and the catalogs of both;
gifts sent and received, a stream's leaderboard and totals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.gifts import catalog as gift_catalog
from accounting.gifts import streams
from accounting.gifts.errors import (
    FeatureNotFound,
    FeatureRetired,
    GiftNotFound,
    GiftRateLimited,
    GiftRetired,
    QuantityOutOfBounds,
    SelfGift,
    StreamNotFound,
    StreamNotLive,
)
from accounting.gifts.posting import GiftRequest, SentGift
from accounting.gifts.service import FeatureRequest, gift_by_id, gift_by_key
from accounting.gifts.tables import FeatureRow, FeatureUnlockRow, GiftRow, GiftTypeRow
from accounting.ledger import balances
from accounting.ledger.errors import (
    AccountFrozen,
    IdempotencyKeyReused,
    InsufficientCoins,
    InvalidIdempotencyKey,
    LedgerError,
)
from accounting.ledger.idempotency import check_key
from accounting.policy.access import may_read_earnings, may_read_leaderboards, may_spend_coins
from accounting.reads.earnings import (
    MAX_LEADERBOARD,
    gifts_in_stream,
    gifts_sent,
    stream_totals,
    top_gifters,
)
from schema.authorization import GIFTS, look_up
from schema.context import Info
from schema.errors import (
    BAD_USER_INPUT,
    NOT_FOUND,
    ClientError,
    MutationError,
    error_type,
    errors_in_payload,
    not_found,
    require_principal,
    require_role,
    seen,
)
from schema.nodes import Node, global_id, pk_of
from schema.pagination import Connection, connection, page_start
from schema.payloads import null_on_error, replayed_field
from schema.scalars import BigInt, Money
from schema.streams import Stream, stream_id_of, stream_of
from schema.wallet import Wallet, readable_user, wallet_of

# --- the catalogs -------------------------------------------------------------------------------


@strawberry.enum(description="How grand a gift is: it decides where the client shows it.")
class GiftTier(Enum):
    BASIC = "basic"
    POPULAR = "popular"
    PREMIUM = "premium"
    LEGENDARY = "legendary"


@strawberry.enum
class FeatureKind(Enum):
    EFFECT = "effect"
    STICKER = "sticker"
    BADGE = "badge"
    HIGHLIGHT = "highlight"


@strawberry.type(description="A gift in the catalog, at its current price.")
class GiftType:
    code: str
    name: str
    coin_price: BigInt = strawberry.field(description="Coins per gift, for gifts sent from now.")
    tier: GiftTier
    animation: str | None = strawberry.field(description="The animation the client plays.")
    active: bool = strawberry.field(description="False when retired: it can no longer be sent.")
    updated_at: datetime


def gift_type_of(row: GiftTypeRow) -> GiftType:
    return GiftType(
        code=row.code,
        name=row.name,
        coin_price=BigInt(row.coin_price),
        tier=GiftTier(row.tier),
        animation=row.animation,
        active=row.active,
        updated_at=row.updated_at,
    )


@strawberry.type(description="A premium feature in the catalog, at its current price.")
class Feature:
    code: str
    name: str
    coin_price: BigInt
    kind: FeatureKind
    active: bool = strawberry.field(description="False when retired: it can no longer be unlocked.")
    updated_at: datetime


def feature_of(row: FeatureRow) -> Feature:
    return Feature(
        code=row.code,
        name=row.name,
        coin_price=BigInt(row.coin_price),
        kind=FeatureKind(row.kind),
        active=row.active,
        updated_at=row.updated_at,
    )


# --- gifts sent ---------------------------------------------------------------------------------


@strawberry.type(
    description="A gift sent in a stream, with the prices and rates of the moment it was sent."
)
class Gift(Node):
    sender_id: str
    creator_id: str
    stream: Stream
    gift_code: str
    gift_name: str = strawberry.field(description="The gift's name in the catalog now.")
    quantity: int
    coin_price: BigInt = strawberry.field(
        description="Coins per gift when it was sent: a later price change does not touch it."
    )
    coins: BigInt = strawberry.field(description="Coins spent: quantity × coinPrice.")
    diamonds: BigInt = strawberry.field(description="Diamonds the creator received.")
    cash_value: Money = strawberry.field(
        description="What the platform owes the creator for those diamonds."
    )
    created_at: datetime
    release_at: datetime = strawberry.field(
        description="When the diamonds leave their hold and become available to the creator."
    )
    released: bool = strawberry.field(
        description="Whether the diamonds have been released from hold (they are once due, by "
        "the release job or when the creator's earnings are read)."
    )
    entry_id: strawberry.ID = strawberry.field(description="The journal entry of the gift.")


def gift_of(row: GiftRow | SentGift, name: str, stream: Stream, currency: str) -> Gift:
    return Gift(
        id=global_id("Gift", row.id),
        sender_id=row.sender_id,
        creator_id=row.creator_id,
        stream=stream,
        gift_code=row.gift_code,
        gift_name=name,
        quantity=row.quantity,
        coin_price=BigInt(row.coin_price),
        coins=BigInt(row.coins),
        diamonds=BigInt(row.diamonds),
        cash_value=Money.of(row.payable_micros, currency),
        created_at=row.created_at,
        release_at=row.release_at,
        released=row.release_entry_id is not None,
        entry_id=strawberry.ID(str(row.entry_id)),
    )


async def gifts_of(
    session: AsyncSession, rows: Sequence[GiftRow | SentGift], currency: str
) -> list[Gift]:
    """Gifts with their names and streams, read in two queries whatever the number of gifts."""
    if not rows:
        return []
    names = {t.code: t.name for t in await gift_catalog.gift_types(session, include_retired=True)}
    found = await streams.streams_by_id(session, (row.stream_id for row in rows))
    return [
        gift_of(row, names[row.gift_code], stream_of(found[row.stream_id]), currency)
        for row in rows
    ]


@strawberry.type(description="A premium feature a user unlocked with coins.")
class FeatureUnlock:
    id: strawberry.ID
    user_id: str
    feature_code: str
    coins: BigInt = strawberry.field(description="The feature's price when it was unlocked.")
    entry_id: strawberry.ID
    created_at: datetime


def unlock_of(row: FeatureUnlockRow) -> FeatureUnlock:
    return FeatureUnlock(
        id=strawberry.ID(str(row.id)),
        user_id=row.user_id,
        feature_code=row.feature_code,
        coins=BigInt(row.coins),
        entry_id=strawberry.ID(str(row.entry_id)),
        created_at=row.created_at,
    )


@strawberry.type(description="One place on a stream's leaderboard.")
class Gifter:
    rank: int
    user_id: str
    coins: BigInt = strawberry.field(description="Coins given in the stream.")
    gift_count: int


@strawberry.type(description="What a stream took in gifts.")
class StreamTotals:
    stream: Stream
    gift_count: int
    coins: BigInt
    diamonds: BigInt
    cash_value: Money
    gifters: int = strawberry.field(description="Distinct users who sent gifts.")


# --- sendGift -----------------------------------------------------------------------------------


@error_type(
    InsufficientCoins,
    StreamNotFound,
    StreamNotLive,
    GiftNotFound,
    GiftRetired,
    SelfGift,
    AccountFrozen,
    QuantityOutOfBounds,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    GiftRateLimited,
)
class SendGiftError(MutationError): ...


@strawberry.type
class SendGiftPayload:
    gift: Gift | None = null_on_error("The gift, delivered; null on error.")
    wallet: Wallet | None = null_on_error("The sender's wallet after it.")
    replayed: bool = replayed_field()
    errors: list[SendGiftError]


@strawberry.input
class SendGiftInput:
    stream_id: strawberry.ID
    gift_code: str
    quantity: int = strawberry.field(default=1, description="1 to 9,999 of the gift at once.")
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per gift (a UUID). Retrying with the "
        "same key never charges twice; giftByKey tells whether it was delivered."
    )


# --- unlockFeature ------------------------------------------------------------------------------


@error_type(
    InsufficientCoins,
    FeatureNotFound,
    FeatureRetired,
    AccountFrozen,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
)
class UnlockFeatureError(MutationError): ...


@strawberry.type
class UnlockFeaturePayload:
    unlock: FeatureUnlock | None = null_on_error("Null on error.")
    wallet: Wallet | None = null_on_error("The user's wallet after it.")
    replayed: bool = replayed_field()
    errors: list[UnlockFeatureError]


@strawberry.input
class UnlockFeatureInput:
    feature_code: str
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per unlock (a UUID)."
    )


def require_spender(info: Info) -> str:
    what = "spend coins without the viewer or creator role"
    return require_role(info, may_spend_coins, what).user_id


@strawberry.type
class GiftMutations:
    @strawberry.mutation(description="Send a gift to a live stream's creator, paid in coins.")
    @errors_in_payload(SendGiftPayload, SendGiftError)
    async def send_gift(self, info: Info, input: SendGiftInput) -> SendGiftPayload:
        sender_id = require_spender(info)
        stream_id = pk_of(input.stream_id, "Stream")
        if stream_id is None:
            raise StreamNotFound(f"No stream {input.stream_id}", field="streamId")
        services = info.context.services
        result = await services.gifts.send_gift(
            GiftRequest(
                sender_id=sender_id,
                idempotency_key=input.idempotency_key,
                stream_id=stream_id,
                gift_code=input.gift_code,
                quantity=input.quantity,
            )
        )
        if result.stream and result.gift_name and result.wallet_after:  # a new gift: all known
            gift = gift_of(
                result.gift,
                result.gift_name,
                stream_of(result.stream),
                services.functional_currency,
            )
            wallet = result.wallet_after
        else:
            async with services.sessions() as session:
                [gift] = await gifts_of(session, [result.gift], services.functional_currency)
                wallet = await balances.wallet(session, sender_id, services.functional_currency)
        return SendGiftPayload(
            gift=gift, wallet=wallet_of(wallet), replayed=result.replayed, errors=[]
        )

    @strawberry.mutation(description="Unlock a premium feature with coins.")
    @errors_in_payload(UnlockFeaturePayload, UnlockFeatureError)
    async def unlock_feature(self, info: Info, input: UnlockFeatureInput) -> UnlockFeaturePayload:
        user_id = require_spender(info)
        services = info.context.services
        result = await services.gifts.unlock_feature(
            FeatureRequest(
                user_id=user_id,
                idempotency_key=input.idempotency_key,
                feature_code=input.feature_code,
            )
        )
        async with services.sessions() as session:
            wallet = await balances.wallet(session, user_id, services.functional_currency)
        return UnlockFeaturePayload(
            unlock=unlock_of(result.unlock),
            wallet=wallet_of(wallet),
            replayed=result.replayed,
            errors=[],
        )


def check_leaderboard_size(first: int) -> int:
    if not 1 <= first <= MAX_LEADERBOARD:
        raise ClientError(BAD_USER_INPUT, f"'first' is 1 to {MAX_LEADERBOARD}")
    return first


@strawberry.type
class GiftQueries:
    @strawberry.field(description="The gift catalog, cheapest first (no token needed).")
    async def gift_catalog(self, info: Info, include_retired: bool = False) -> list[GiftType]:
        async with info.context.services.sessions() as session:
            rows = await gift_catalog.gift_types(session, include_retired=include_retired)
        return [gift_type_of(row) for row in rows]

    @strawberry.field(description="The premium features, cheapest first (no token needed).")
    async def feature_catalog(self, info: Info, include_retired: bool = False) -> list[Feature]:
        async with info.context.services.sessions() as session:
            rows = await gift_catalog.features(session, include_retired=include_retired)
        return [feature_of(row) for row in rows]

    @strawberry.field(
        description="One gift: for its sender, its creator, support and finance; null when "
        "there is no such gift (or it is not yours to see)."
    )
    async def gift(self, info: Info, id: strawberry.ID) -> Gift | None:
        return await look_up(info, id, "Gift", load_gift)

    @strawberry.field(
        description="Your gift sent with this idempotency key: delivered, or null if it never "
        "was (then sending it again with the same key is safe)."
    )
    async def gift_by_key(self, info: Info, idempotency_key: str) -> Gift | None:
        what = "send gifts without the viewer or creator role"
        sender_id = require_role(info, may_spend_coins, what).user_id
        try:
            check_key(idempotency_key)
        except LedgerError as error:
            raise ClientError(BAD_USER_INPUT, error.message) from None
        services = info.context.services
        async with services.sessions() as session:
            row = await gift_by_key(session, sender_id, idempotency_key)
            if row is None:
                return None
            [gift] = await gifts_of(session, [row], services.functional_currency)
        return gift

    @strawberry.field(description="Gifts sent, newest first (yours when userId is omitted).")
    async def gifts_sent(
        self, info: Info, user_id: str | None = None, first: int = 20, after: str | None = None
    ) -> Connection[Gift]:
        _, wanted = readable_user(info, user_id)
        before = page_start("gift_sent", first, after)
        services = info.context.services
        async with services.sessions() as session:
            page = await gifts_sent(session, wanted, first=first, before_id=before)
            gifts = await gifts_of(session, page.items, services.functional_currency)
        items = [(row.id, gift) for row, gift in zip(page.items, gifts, strict=True)]
        return connection("gift_sent", items, page.has_next)

    @strawberry.field(
        description="Gifts received in a stream, newest first: for its creator, support and "
        "finance."
    )
    async def stream_gifts(
        self, info: Info, stream_id: strawberry.ID, first: int = 20, after: str | None = None
    ) -> Connection[Gift]:
        principal = require_principal(info)
        wanted = stream_id_of(stream_id)
        before = page_start("stream_gift", first, after)
        services = info.context.services
        async with services.sessions() as session:
            found = await streams.streams_by_id(session, [wanted])
            stream = seen(found.get(wanted), lambda s: may_read_earnings(principal, s.creator_id))
            if stream is None:
                raise not_found("stream", stream_id)
            page = await gifts_in_stream(session, wanted, first=first, before_id=before)
            gifts = await gifts_of(session, page.items, services.functional_currency)
        items = [(row.id, gift) for row, gift in zip(page.items, gifts, strict=True)]
        return connection("stream_gift", items, page.has_next)

    @strawberry.field(
        description="A stream's leaderboard: its gifters by coins given; a tie goes to who got "
        "there first (any signed-in caller)."
    )
    async def top_gifters(
        self, info: Info, stream_id: strawberry.ID, first: int = 10
    ) -> list[Gifter]:
        require_role(info, may_read_leaderboards, "read leaderboards")
        wanted = stream_id_of(stream_id)
        check_leaderboard_size(first)
        try:
            async with info.context.services.sessions() as session:
                board = await top_gifters(session, wanted, first=first)
        except StreamNotFound:
            raise ClientError(NOT_FOUND, f"No stream {stream_id}") from None
        return [
            Gifter(rank=g.rank, user_id=g.user_id, coins=BigInt(g.coins), gift_count=g.gift_count)
            for g in board
        ]

    @strawberry.field(
        description="What a stream took in gifts: for its creator, support, finance; null when "
        "there is no such stream (or it is not yours to see)."
    )
    async def stream_totals(self, info: Info, stream_id: strawberry.ID) -> StreamTotals | None:
        principal = require_principal(info)
        wanted = pk_of(stream_id, "Stream")
        if wanted is None:
            return None
        try:
            async with info.context.services.sessions() as session:
                found = await stream_totals(session, wanted)
        except StreamNotFound:
            found = None
        totals = seen(found, lambda t: may_read_earnings(principal, t.stream.creator_id))
        if totals is None:
            return None
        return StreamTotals(
            stream=stream_of(totals.stream),
            gift_count=totals.gift_count,
            coins=BigInt(totals.coins),
            diamonds=BigInt(totals.diamonds),
            cash_value=Money.of(
                totals.cash_value_micros, info.context.services.functional_currency
            ),
            gifters=totals.gifters,
        )


async def load_gift(info: Info, pk: int) -> Gift | None:
    """Gift ``pk`` for its sender, its creator, support and finance; else None, the same for
    one that does not exist."""
    principal = GIFTS.caller(info)
    services = info.context.services
    async with services.sessions() as session:
        found = await gift_by_id(session, pk)
        row = seen(found, lambda row: GIFTS.sees(principal, row.sender_id, row.creator_id))
        if row is None:
            return None
        [gift] = await gifts_of(session, [row], services.functional_currency)
    return gift
