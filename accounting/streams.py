"""Live streams: a creator has at most one live at a time."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.chart import check_user_id
from accounting.errors import (
    InvalidStreamTitle,
    NotStreamCreator,
    StreamAlreadyLive,
    StreamNotFound,
    StreamNotLive,
)
from accounting.tables import StreamRow


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
    stream.status = "ended"
    stream.ended_at = await session.scalar(select(func.now()))
    await session.flush()
    return stream


async def live_stream_of(session: AsyncSession, creator_id: str) -> StreamRow | None:
    found: StreamRow | None = await session.scalar(
        select(StreamRow).where(StreamRow.creator_id == creator_id, StreamRow.status == "live")
    )
    return found
