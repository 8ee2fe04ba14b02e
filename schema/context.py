"""What every resolver receives: the caller, the request id, and the services to delegate to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.types import Info as StrawberryInfo

from accounting.breakage.rules import BreakagePolicy
from accounting.gifts.events import GiftEvent
from accounting.gifts.service import GiftService
from accounting.payouts.service import PayoutService
from accounting.policy.access import Principal
from accounting.purchases.account_tokens import AccountTokens
from accounting.purchases.service import PurchaseService
from accounting.purchases.store import StorePurchases
from accounting.refunds.service import RefundPolicy


class FeedEnd(StrEnum):
    """Why a live gift subscription stopped before its stream ended."""

    FELL_BEHIND = "FELL_BEHIND"
    """The subscriber did not keep up: more gifts waited for it than its queue holds."""
    FEED_INTERRUPTED = "FEED_INTERRUPTED"
    """This process lost its database connection for a while: gifts may have been missed."""
    FEED_STOPPED = "FEED_STOPPED"
    """The process is shutting down."""


class LiveFeedEnded(Exception):
    """Raised by a gift subscription that ended early; gifts after it were not delivered."""

    def __init__(self, reason: FeedEnd, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class GiftSubscription(Protocol):
    """The gifts committed in one stream from the moment it is opened, in commit order.

    Iteration stops when the stream ends, and raises :class:`LiveFeedEnded` when delivery
    stopped for another reason. Open it (``open()`` or ``async with``) before reading whether
    the stream is live, so that no gift falls between the two; close it when done."""

    async def open(self) -> Self: ...

    async def aclose(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[GiftEvent]: ...

    async def __anext__(self) -> GiftEvent: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class GiftFeed(Protocol):
    """Committed gifts, as they are committed, for the process's live subscriptions."""

    def subscribe(self, stream_id: int) -> GiftSubscription: ...


@dataclass(frozen=True, slots=True)
class Services:
    sessions: async_sessionmaker[AsyncSession]
    reads: async_sessionmaker[AsyncSession]
    """For reads that are one statement: autocommit, one round trip."""
    purchases: PurchaseService
    gifts: GiftService
    payouts: PayoutService
    functional_currency: str
    gift_feed: GiftFeed
    refund_policy: RefundPolicy
    breakage_policy: BreakagePolicy = field(default_factory=BreakagePolicy)
    store_purchases: StorePurchases | None = None
    """Purchases proven by an app store's signed transaction (none taken when unset)."""
    account_tokens: AccountTokens = field(default_factory=AccountTokens)
    """Users' account tokens, which the store purchases check (``appAccountToken``)."""


@dataclass(slots=True)
class Context:
    services: Services
    request_id: str
    principal: Principal | None
    auth_error: str | None = None
    """Why the Authorization header was refused, when it was."""
    connection_params: dict[str, object] | None = None
    """The payload of a websocket's ``connection_init`` (strawberry sets it)."""
    wal_position: str | None = None
    """The WAL position the client's reads must see (its ``Coinbooks-WAL-Position`` header):
    reads from replicas wait for it (api/replicas.py)."""
    set_header: Callable[[str, str], None] | None = None
    """Sets a header of the HTTP answer; None over the websocket."""


Info = StrawberryInfo[Context, None]
