"""Live streams: creators start and end them; gifts are sent to a stream while it is live."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from accounting.gifts import streams
from accounting.gifts.errors import (
    InvalidStreamTitle,
    NotStreamCreator,
    StreamAlreadyLive,
    StreamNotFound,
    StreamNotLive,
)
from accounting.gifts.tables import StreamRow
from accounting.policy.access import may_stream
from schema.authorization import STREAMS, look_up
from schema.context import Info
from schema.errors import (
    NOT_FOUND,
    ClientError,
    MutationError,
    error_type,
    errors_in_payload,
    require_principal,
    require_role,
)
from schema.nodes import Node, global_id, pk_of
from schema.pagination import Connection, connection, page_start
from schema.payloads import null_on_error


@strawberry.enum
class StreamStatus(Enum):
    LIVE = "live"
    ENDED = "ended"


@strawberry.type(description="A live stream of a creator: gifts are sent to it while it is live.")
class Stream(Node):
    creator_id: str
    title: str
    status: StreamStatus
    started_at: datetime
    ended_at: datetime | None


def stream_of(row: StreamRow) -> Stream:
    return Stream(
        id=global_id("Stream", row.id),
        creator_id=row.creator_id,
        title=row.title,
        status=StreamStatus(row.status),
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


async def load_stream(info: Info, pk: int) -> Stream | None:
    """Stream ``pk``, live or ended, for any signed-in caller; None when there is none."""
    STREAMS.caller(info)
    async with info.context.services.sessions() as session:
        found = await streams.streams_by_id(session, [pk])
    return stream_of(found[pk]) if pk in found else None


def stream_id_of(id: strawberry.ID) -> int:
    """The stream an ID names, as a query argument: ``NOT_FOUND`` when it cannot name one."""
    parsed = pk_of(id, "Stream")
    if parsed is None:
        raise ClientError(NOT_FOUND, f"No stream {id}")
    return parsed


def require_streamer(info: Info) -> str:
    return require_role(info, may_stream, "stream without the creator role").user_id


@error_type(StreamAlreadyLive, InvalidStreamTitle)
class StartStreamError(MutationError): ...


@strawberry.type
class StartStreamPayload:
    stream: Stream | None = null_on_error("The new live stream; null on error.")
    errors: list[StartStreamError]


@strawberry.input
class StartStreamInput:
    title: str = strawberry.field(description="1-200 characters (spaces around are dropped).")


@error_type(StreamNotFound, StreamNotLive, NotStreamCreator)
class EndStreamError(MutationError): ...


@strawberry.type
class EndStreamPayload:
    stream: Stream | None = null_on_error("The ended stream; null on error.")
    errors: list[EndStreamError]


@strawberry.input
class EndStreamInput:
    stream_id: strawberry.ID


@strawberry.type
class StreamMutations:
    @strawberry.mutation(
        description="Go live (creator role). A creator has one live stream at a time."
    )
    @errors_in_payload(StartStreamPayload, StartStreamError)
    async def start_stream(self, info: Info, input: StartStreamInput) -> StartStreamPayload:
        creator_id = require_streamer(info)
        row = await streams.go_live(info.context.services.sessions, creator_id, input.title)
        return StartStreamPayload(stream=stream_of(row), errors=[])

    @strawberry.mutation(
        description="End one of your live streams (creator role). Gifts to it stop at once."
    )
    @errors_in_payload(EndStreamPayload, EndStreamError)
    async def end_stream(self, info: Info, input: EndStreamInput) -> EndStreamPayload:
        creator_id = require_streamer(info)
        stream_id = pk_of(input.stream_id, "Stream")
        if stream_id is None:
            raise StreamNotFound(f"No stream {input.stream_id}", field="streamId")
        sessions = info.context.services.sessions
        row = await streams.end_live_stream(sessions, creator_id, stream_id)
        return EndStreamPayload(stream=stream_of(row), errors=[])


@strawberry.type
class StreamQueries:
    @strawberry.field(
        description="One stream, live or ended (any signed-in caller); null when there is none."
    )
    async def stream(self, info: Info, id: strawberry.ID) -> Stream | None:
        return await look_up(info, id, "Stream", load_stream)

    @strawberry.field(description="Streams live now, newest first (any signed-in caller).")
    async def live_streams(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[Stream]:
        require_principal(info)
        before = page_start("stream", first, after)
        async with info.context.services.sessions() as session:
            page = await streams.live_streams(session, first=first, before_id=before)
        return connection("stream", [(r.id, stream_of(r)) for r in page.items], page.has_next)
