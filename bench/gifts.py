"""Gifts through the accounting core: GiftService.send_gift called directly by N concurrent
senders, into live streams, either spread uniformly over many creators or all to one.

The setup (not measured) gives each sender a wallet deep enough for any run and starts one live
stream per creator."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.gifts.tables import StreamRow
from accounting.ledger.posting import in_transaction
from accounting.purchases.service import PurchaseRequest, PurchaseService
from bench.core import purchase_service, user_ids
from bench.limits import GIFT_RATE_LIMIT
from bench.load import LoadResult, NotAcknowledged, drive

SEED_COINS = 1_000_000
"""Coins each sender buys before the run (a custom web amount, $14,300 by card): more than any
run spends, so no gift is refused for want of coins."""
GIFTS = ("rose", "finger_heart", "perfume", "doughnut", "hand_hearts")
"""The cheap gifts that make up most of a stream's traffic (1 to 100 coins), taken in turn. A
gift's entry has seven postings: coins, their value, gift revenue, the creator's payable and
diamonds."""
SEED_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class GiftingSetup:
    senders: list[str]
    streams: list[int]
    """One live stream per creator."""


async def seed_gifting(
    sessions: async_sessionmaker[AsyncSession], *, senders: int, creators: int
) -> GiftingSetup:
    """``senders`` viewers with SEED_COINS coins each, and ``creators`` creators live."""
    purchases: PurchaseService = purchase_service(sessions)
    viewers = user_ids("fan", senders)
    gate = asyncio.Semaphore(SEED_CONCURRENCY)

    async def fund(viewer: str) -> None:
        async with gate:
            result = await purchases.purchase_coins(
                PurchaseRequest(
                    user_id=viewer,
                    idempotency_key=uuid.uuid4().hex,
                    currency="USD",
                    channel="web",
                    provider="card",
                    payment_token="tok_success",
                    custom_coins=SEED_COINS,
                )
            )
        if result.purchase.status != "completed":
            raise RuntimeError(f"seeding {viewer}: purchase {result.purchase.status}")

    await asyncio.gather(*(fund(viewer) for viewer in viewers))
    streams = []
    for creator in user_ids("creator", creators):

        async def go_live(session: AsyncSession, creator: str = creator) -> StreamRow:
            return await start_stream(session, creator, "benchmark stream")

        streams.append((await in_transaction(sessions, go_live)).id)
    return GiftingSetup(senders=viewers, streams=streams)


async def drive_gifts(
    service: GiftService | Sequence[GiftService],
    setup: GiftingSetup,
    *,
    clients: int,
    seconds: float,
    warmup: float = 0.0,
) -> LoadResult:
    """``clients`` workers send gifts for ``seconds``, worker ``i`` as sender ``i % senders``,
    each gift into a stream picked uniformly at random (with one stream, all to one creator).
    With several services, worker ``i`` sends through service ``i % services``, as if each were
    a process of its own (each batches its own gifts)."""
    picks = random.Random(20261125)
    services = [service] if isinstance(service, GiftService) else list(service)

    async def attempt(client: int, sequence: int) -> None:
        request = GiftRequest(
            sender_id=setup.senders[client % len(setup.senders)],
            idempotency_key=uuid.uuid4().hex,
            stream_id=picks.choice(setup.streams),
            gift_code=GIFTS[sequence % len(GIFTS)],
            quantity=1,
        )
        result = await services[client % len(services)].send_gift(request)
        if result.replayed:
            raise NotAcknowledged(f"gift {result.gift.id} came back replayed")

    return await drive(clients, seconds, warmup, attempt)


def gift_service(sessions: async_sessionmaker[AsyncSession]) -> GiftService:
    """Gifts at the default rates and hold (nothing is released during a run), with the
    benchmark's gift rate limit (checked, never reached)."""
    return GiftService(sessions, functional_currency="USD", rate_limit=GIFT_RATE_LIMIT)
