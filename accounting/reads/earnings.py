"""What creators earned and viewers gave: diamonds by state, earnings over time, per stream
totals and leaderboards, gifts sent. Read from the books and the gift records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.gifts.errors import StreamNotFound
from accounting.gifts.tables import GiftRow, StreamRow
from accounting.ledger.errors import InvalidAmount
from accounting.ledger.pages import Page, newest_first

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


MAX_BUCKETS = 24 * 31


MAX_LEADERBOARD = 100


@dataclass(frozen=True, slots=True)
class EarningsBucket:
    start: datetime
    diamonds: int
    cash_value_micros: int
    gift_count: int


async def earnings_over_time(
    session: AsyncSession, creator_id: str, *, start: datetime, end: datetime, bucket: str
) -> list[EarningsBucket]:
    """Diamonds, their cash value and gift count per hour or day (UTC) in [start, end)."""
    if bucket not in BUCKETS:
        raise InvalidAmount("bucket is hour or day", field="bucket")
    if end <= start:
        raise InvalidAmount("'to' must be after 'from'", field="to")
    if (end - start) / BUCKETS[bucket] > MAX_BUCKETS:
        raise InvalidAmount(f"At most {MAX_BUCKETS} buckets per request", field="to")
    slot = func.date_trunc(bucket, GiftRow.created_at, "UTC")
    rows = (
        await session.execute(
            select(
                slot.label("slot"),
                func.sum(GiftRow.diamonds),
                func.sum(GiftRow.payable_micros),
                func.count(),
            )
            .where(
                GiftRow.creator_id == creator_id,
                GiftRow.created_at >= start,
                GiftRow.created_at < end,
            )
            .group_by("slot")
            .order_by("slot")
        )
    ).all()
    return [EarningsBucket(s, int(d), int(v), int(n)) for s, d, v, n in rows]


@dataclass(frozen=True, slots=True)
class StreamTotals:
    stream: StreamRow
    gift_count: int
    coins: int
    diamonds: int
    cash_value_micros: int
    gifters: int


async def stream_totals(session: AsyncSession, stream_id: int) -> StreamTotals:
    stream = await session.get(StreamRow, stream_id)
    if stream is None:
        raise StreamNotFound(f"No stream {stream_id}", field="streamId")
    count, coins, diamonds, value, gifters = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(GiftRow.coins), 0),
                func.coalesce(func.sum(GiftRow.diamonds), 0),
                func.coalesce(func.sum(GiftRow.payable_micros), 0),
                func.count(func.distinct(GiftRow.sender_id)),
            ).where(GiftRow.stream_id == stream_id)
        )
    ).one()
    return StreamTotals(stream, int(count), int(coins), int(diamonds), int(value), int(gifters))


@dataclass(frozen=True, slots=True)
class Gifter:
    rank: int
    user_id: str
    coins: int
    gift_count: int


async def top_gifters(session: AsyncSession, stream_id: int, *, first: int = 10) -> list[Gifter]:
    """The stream's leaderboard: senders by coins given, ties to who reached it first."""
    if await session.get(StreamRow, stream_id) is None:
        raise StreamNotFound(f"No stream {stream_id}", field="streamId")
    rows = (
        await session.execute(
            select(GiftRow.sender_id, func.sum(GiftRow.coins), func.count(), func.max(GiftRow.id))
            .where(GiftRow.stream_id == stream_id)
            .group_by(GiftRow.sender_id)
            .order_by(func.sum(GiftRow.coins).desc(), func.max(GiftRow.id))
            .limit(max(1, min(first, MAX_LEADERBOARD)))
        )
    ).all()
    return [
        Gifter(rank, user, int(coins), int(n))
        for rank, (user, coins, n, _) in enumerate(rows, start=1)
    ]


async def gifts_sent(
    session: AsyncSession, sender_id: str, *, first: int = 20, before_id: int | None = None
) -> Page[GiftRow]:
    return await newest_first(
        session, GiftRow, GiftRow.sender_id == sender_id, first=first, before_id=before_id
    )


async def gifts_in_stream(
    session: AsyncSession, stream_id: int, *, first: int = 20, before_id: int | None = None
) -> Page[GiftRow]:
    return await newest_first(
        session, GiftRow, GiftRow.stream_id == stream_id, first=first, before_id=before_id
    )
