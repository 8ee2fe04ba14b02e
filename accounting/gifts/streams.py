"""Live streams: a creator has at most one live at a time."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.errors import (
    InvalidStreamTitle,
    NotStreamCreator,
    StreamAlreadyLive,
    StreamNotFound,
    StreamNotLive,
)
from accounting.gifts.tables import StreamRow
from accounting.ledger.chart import check_user_id
from accounting.ledger.pages import Page, page_size
from accounting.ledger.posting import in_transaction


async def go_live(
    sessions: async_sessionmaker[AsyncSession], creator_id: str, title: str
) -> StreamRow:
    """Start a creator's stream, in a transaction of its own."""
    return await in_transaction(sessions, lambda session: start_stream(session, creator_id, title))


async def end_live_stream(
    sessions: async_sessionmaker[AsyncSession], creator_id: str, stream_id: int
) -> StreamRow:
    """End one of a creator's live streams, in a transaction of its own."""
    return await in_transaction(
        sessions, lambda session: end_stream(session, creator_id, stream_id)
    )


async def start_stream(session: AsyncSession, creator_id: str, title: str) -> StreamRow:
    check_user_id(creator_id, field="creatorId")
    title = title.strip()
    if not 1 <= len(title) <= 200:
        raise InvalidStreamTitle("A stream title is 1-200 characters", field="title")
    live = await live_stream_of(session, creator_id)
    if live is not None:
        raise StreamAlreadyLive(
            f"Stream {live.id} is still live: end it first", field="title", stream_id=live.id
        )
    stream = StreamRow(creator_id=creator_id, title=title)
    session.add(stream)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent start won: the partial unique index refused ours
        raise StreamAlreadyLive("Another stream of yours just went live", field="title") from None
    await session.refresh(stream)
    return stream


async def end_stream(session: AsyncSession, creator_id: str, stream_id: int) -> StreamRow:
    stream = await session.get(StreamRow, stream_id, with_for_update=True)
    if stream is None:
        raise StreamNotFound(f"No stream {stream_id}", field="streamId")
    if stream.creator_id != creator_id:
        raise NotStreamCreator("Only its creator ends a stream", field="streamId")
    if stream.status != "live":
        raise StreamNotLive(f"Stream {stream_id} has already ended", field="streamId")
    # Read the time before changing the row: the read would flush a status of "ended" with no
    # end time, which the table refuses (ck_stream_ended).
    ended_at = await session.scalar(select(func.now()))
    stream.status = "ended"
    stream.ended_at = ended_at
    await session.flush()
    return stream


async def live_stream_of(session: AsyncSession, creator_id: str) -> StreamRow | None:
    found: StreamRow | None = await session.scalar(
        select(StreamRow).where(StreamRow.creator_id == creator_id, StreamRow.status == "live")
    )
    return found


async def live_streams(
    session: AsyncSession, *, first: int = 20, before_id: int | None = None
) -> Page[StreamRow]:
    """Streams live now, newest first. Only live rows are read: the partial index of live
    streams holds them, however many streams have ended."""
    size = page_size(first)
    statement = (
        select(StreamRow)
        .where(StreamRow.status == "live")
        .order_by(StreamRow.id.desc())
        .limit(size + 1)
    )
    if before_id is not None:
        statement = statement.where(StreamRow.id < before_id)
    rows = list((await session.scalars(statement)).all())
    return Page(rows[:size], len(rows) > size)


async def streams_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, StreamRow]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.scalars(select(StreamRow).where(StreamRow.id.in_(wanted)))
    return {row.id: row for row in rows}
