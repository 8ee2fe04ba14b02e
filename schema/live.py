"""Live gifts: a subscription to the gifts of a stream, each as soon as it is committed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from accounting.gifts.events import GiftEvent
from accounting.gifts.tables import StreamRow
from schema.context import GiftSubscription, Info, LiveFeedEnded
from schema.errors import BAD_USER_INPUT, NOT_FOUND, ClientError, require_principal
from schema.nodes import global_id, pk_of
from schema.scalars import BigInt


@strawberry.type(description="A gift just committed in a live stream.")
class LiveGift:
    id: strawberry.ID = strawberry.field(
        description="The gift's global id, as in gift(id:), giftByKey, streamGifts."
    )
    stream_id: strawberry.ID
    sender_id: str
    creator_id: str
    gift_code: str
    quantity: int
    coins: BigInt = strawberry.field(description="Coins spent: quantity × the gift's price.")
    diamonds: BigInt = strawberry.field(description="Diamonds the creator received.")
    created_at: datetime


def live_gift_of(event: GiftEvent) -> LiveGift:
    return LiveGift(
        id=global_id("Gift", event.gift_id),
        stream_id=strawberry.ID(str(event.stream_id)),
        sender_id=event.sender_id,
        creator_id=event.creator_id,
        gift_code=event.gift_code,
        quantity=event.quantity,
        coins=BigInt(event.coins),
        diamonds=BigInt(event.diamonds),
        created_at=event.created_at,
    )


class LiveGifts:
    """The GraphQL side of a gift subscription: each gift as a ``LiveGift``, an early end as a
    top-level error with the feed's code (``FELL_BEHIND``, ``FEED_INTERRUPTED``, ...)."""

    def __init__(self, gifts: GiftSubscription) -> None:
        self._gifts = gifts

    def __aiter__(self) -> LiveGifts:
        return self

    async def __anext__(self) -> LiveGift:
        try:
            event = await self._gifts.__anext__()
        except LiveFeedEnded as ended:
            raise ClientError(ended.reason.value, ended.message) from None
        return live_gift_of(event)

    async def aclose(self) -> None:
        await self._gifts.aclose()


def _stream_number(stream_id: strawberry.ID) -> int:
    number = pk_of(stream_id, "Stream")
    if number is None:
        raise ClientError(NOT_FOUND, f"No stream {stream_id}")
    return number


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The gifts of a stream, each as soon as it is committed, in commit order, "
        "for any signed-in user. Completes when the stream ends (at once if it has). Delivery "
        "is at most once: gifts missed while disconnected are in the books (streamGifts for "
        "the stream's creator, giftByKey for their sender)."
    )
    async def gifts_in_stream(
        self, info: Info, stream_id: strawberry.ID
    ) -> AsyncIterator[LiveGift]:
        require_principal(info)
        number = _stream_number(stream_id)
        # Opened before the stream is read: a gift committed in between is not lost.
        gifts = info.context.services.gift_feed.subscribe(number)
        try:
            await gifts.open()
        except LiveFeedEnded as ended:
            raise ClientError(ended.reason.value, ended.message) from None
        try:
            async with info.context.services.sessions() as session:
                stream = await session.get(StreamRow, number)
        except BaseException:
            await gifts.aclose()
            raise
        if stream is None:
            await gifts.aclose()
            raise ClientError(NOT_FOUND, f"No stream {stream_id}")
        if stream.status != "live":
            await gifts.aclose()  # a closed subscription yields nothing: the stream completes
        return LiveGifts(gifts)


class SubscriptionsOverWebSocket(SchemaExtension):
    """Subscriptions are served over graphql-transport-ws only. Over HTTP (a POST, or a
    multipart stream) one is refused with a message that says where to subscribe, rather than
    failing as an unexpected error. A websocket's context has ``connection_params``."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        over_http = getattr(execution.context, "connection_params", None) is None
        if execution.operation_type is OperationType.SUBSCRIPTION and over_http:
            raise ClientError(
                BAD_USER_INPUT,
                "Subscriptions are served over a WebSocket at /graphql "
                "(protocol graphql-transport-ws), not over HTTP",
            )
        yield
