"""What creators earned and viewers gave: diamonds by state, earnings over time, per stream
totals and leaderboards, gifts sent. Read from the books and the gift records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting import chart
from accounting.errors import InvalidAmount, StreamNotFound
from accounting.history import Page, newest_first
from accounting.tables import AccountRow, GiftRow, StreamRow

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_BUCKETS = 24 * 31
MAX_LEADERBOARD = 100


@dataclass(frozen=True, slots=True)
class CreatorBalances:
    creator_id: str
    diamonds_pending: int
    diamonds_available: int
    diamonds_reserved: int
    payable_micros: int
    """Cash owed for the diamonds in every state."""
    currency: str

    @property
    def diamonds(self) -> int:
        return self.diamonds_pending + self.diamonds_available + self.diamonds_reserved

    def cash_value_micros(self, diamonds: int) -> int:
        """The cash value of ``diamonds`` at the creator's weighted average per diamond."""
        if not self.diamonds:
            return 0
        return round(Fraction(self.payable_micros * diamonds, self.diamonds))


async def creator_balances(
    session: AsyncSession, creator_id: str, functional_currency: str
) -> CreatorBalances:
    """All four balances in one statement, so a hold release committing meanwhile can neither
    count the same diamonds twice nor miss them."""
    accounts = {
        chart.creator_diamonds(creator_id, state).code: state
        for state in chart.CREATOR_DIAMOND_STATES
    }
    payable_code = chart.creator_payable(creator_id, functional_currency).code
    rows = (
        await session.execute(
            select(AccountRow.code, AccountRow.balance * AccountRow.normal_sign).where(
                AccountRow.code.in_([*accounts, payable_code])
            )
        )
    ).all()
    found = {code: int(balance) for code, balance in rows}
    states = {state: found.get(code, 0) for code, state in accounts.items()}
    return CreatorBalances(
        creator_id=creator_id,
        diamonds_pending=states["pending"],
        diamonds_available=states["available"],
        diamonds_reserved=states["reserved"],
        payable_micros=found.get(payable_code, 0),
        currency=functional_currency,
    )


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
