"""What the gift tests below the GraphQL layer share: a stream going live, and gifts sent all
at once (so the group commit may write them in one batch), each answered or refused."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.service import GiftRequest, GiftResult, GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger.errors import LedgerError
from accounting.ledger.posting import in_transaction


async def live(sessions: async_sessionmaker[AsyncSession], creator: str, title: str) -> int:
    """The id of a stream ``creator`` starts now."""
    stream = await in_transaction(sessions, lambda s: start_stream(s, creator, title))
    return stream.id


async def sent_at_once(
    service: GiftService, requests: list[GiftRequest]
) -> list[GiftResult | LedgerError]:
    """Every request sent at the same moment; each one's result, or the business error it was
    refused with (anything else fails the test)."""

    async def one(request: GiftRequest) -> GiftResult | LedgerError:
        try:
            return await service.send_gift(request)
        except LedgerError as refused:
            return refused

    return list(await asyncio.gather(*(one(r) for r in requests)))
