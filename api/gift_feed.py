"""The live gift feed of one process: one PostgreSQL connection LISTENing on the gift channel,
fanning committed gifts out to the subscriptions of their stream.

Why it is right across processes and never early: the ``gift_notify`` trigger NOTIFYs inside the
inserting transaction, and PostgreSQL delivers a notice to every listening connection, in every
process, only when that transaction commits (never when it rolls back), in commit order.

What a subscription is promised, and what it is not:

- Every gift committed in its stream from the moment :meth:`LiveGiftSubscription.open` returns
  until it ends, in commit order, each once. It may also see a gift committed a moment before it
  opened (dedupe by gift id).
- It ends (iteration stops) when the stream ends: a check every ``stream_check_seconds`` finds
  streams that ended, and their subscriptions complete one check later, so that gifts committed
  just before the end are delivered first.
- Otherwise it ends with :class:`LiveFeedEnded`, never with a silent gap:

  * ``FELL_BEHIND`` (backpressure): fan-out never waits for a subscriber. Each has a bounded
    queue of ``queue_size`` gifts; a subscriber that lets it fill is ended, after the gifts
    already queued for it, rather than made to skip gifts or hold the others up. Its client
    subscribes again and finds what it missed in the books (``streamGifts``, ``giftByKey``).
  * ``FEED_INTERRUPTED``: the listening connection was lost (gifts committed meanwhile were not
    heard), so every open subscription ends. The feed reconnects with capped exponential
    backoff and jitter (``reconnect_min_seconds`` doubling up to ``reconnect_max_seconds``,
    for as long as the process lives); subscribing waits for it at most
    ``listen_timeout_seconds``.
  * ``FEED_STOPPED``: the process is shutting down.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from enum import Enum
from typing import Any, Self

import asyncpg

from accounting.gifts.events import GIFT_CHANNEL, GiftEvent, MalformedGiftNotice, parse_gift_notice
from schema.context import FeedEnd, LiveFeedEnded

log = logging.getLogger(__name__)

ENDED_STREAMS = "SELECT id FROM stream WHERE id = any($1::bigint[]) AND status <> 'live'"


@dataclass(frozen=True, slots=True)
class FeedLimits:
    queue_size: int = 256
    """Gifts that may wait for one subscriber before it is ended as too slow."""
    stream_check_seconds: float = 2.0
    """How often ended streams are looked for; also the connection's health check."""
    connect_timeout_seconds: float = 10.0
    query_timeout_seconds: float = 10.0
    listen_timeout_seconds: float = 10.0
    """How long subscribing waits for the feed to be listening."""
    reconnect_min_seconds: float = 0.1
    reconnect_max_seconds: float = 10.0

    def __post_init__(self) -> None:
        assert self.queue_size >= 1, self.queue_size
        assert self.stream_check_seconds > 0, self.stream_check_seconds
        assert 0 < self.reconnect_min_seconds <= self.reconnect_max_seconds


@dataclass(frozen=True, slots=True)
class _Ending:
    """The last item of a subscription's queue: why it ends (``None``: the stream ended)."""

    reason: FeedEnd | None
    message: str


class _State(Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


MISSED = "missed gifts are in the books: streamGifts, giftByKey"
END_MESSAGES = {
    FeedEnd.FELL_BEHIND: f"You fell behind the live gifts: subscribe again ({MISSED})",
    FeedEnd.FEED_INTERRUPTED: f"Live gifts were interrupted: subscribe again ({MISSED})",
    FeedEnd.FEED_STOPPED: "The service is restarting: subscribe again",
}


class LiveGiftSubscription:
    """One subscriber's gifts of one stream: an async iterator and an async context manager."""

    def __init__(self, feed: PostgresGiftFeed, stream_id: int, capacity: int) -> None:
        self.stream_id = stream_id
        self._feed = feed
        self._capacity = capacity
        # One place more than the capacity: there is always room for the _Ending.
        self._queue: asyncio.Queue[GiftEvent | _Ending] = asyncio.Queue(maxsize=capacity + 1)
        self._state = _State.NEW
        self._ending: _Ending | None = None

    async def open(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError(f"subscription to stream {self.stream_id} was already opened")
        await self._feed._add(self)
        self._state = _State.OPEN
        return self

    async def aclose(self) -> None:
        self._state = _State.CLOSED
        self._feed._discard(self)

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[GiftEvent]:
        return self

    async def __anext__(self) -> GiftEvent:
        if self._state is _State.CLOSED:
            raise StopAsyncIteration
        if self._state is _State.NEW:
            raise RuntimeError("open the subscription before reading it")
        item = await self._queue.get()
        if isinstance(item, GiftEvent):
            assert item.stream_id == self.stream_id, (item, self.stream_id)
            return item
        await self.aclose()
        if item.reason is None:
            raise StopAsyncIteration
        raise LiveFeedEnded(item.reason, item.message)

    @property
    def backlog(self) -> int:
        """Gifts waiting to be read."""
        return self._queue.qsize()

    def _offer(self, event: GiftEvent) -> bool:
        """Queue a gift without ever waiting; ``False`` when the subscriber has ended or fell
        behind now (it is then ended, after the gifts already queued for it)."""
        if self._ending is not None:
            return False
        if self._queue.qsize() >= self._capacity:
            log.info(
                "a subscriber to stream %d fell behind (%d gifts queued) and was ended",
                self.stream_id,
                self._capacity,
            )
            self._end(FeedEnd.FELL_BEHIND)
            return False
        self._queue.put_nowait(event)
        return True

    def _end(self, reason: FeedEnd | None, message: str = "") -> None:
        if self._ending is None:
            self._ending = _Ending(reason, message or (END_MESSAGES[reason] if reason else ""))
            self._queue.put_nowait(self._ending)


class PostgresGiftFeed:
    """Committed gifts for this process's subscriptions, heard on one dedicated connection.

    ``start()`` in the app's lifespan (subscribing starts it too, for apps run without one),
    ``await stop()`` on shutdown."""

    def __init__(self, dsn: str, limits: FeedLimits | None = None) -> None:
        self._dsn = dsn
        self.limits = limits or FeedLimits()
        self._subscribers: dict[int, set[LiveGiftSubscription]] = {}
        self._ended_streams: set[int] = set()
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.connections_made = 0
        """How many times the feed connected and listened: 1 when it never lost a connection."""
        self.backend_pid: int | None = None
        """The PostgreSQL backend the feed listens on, while it does."""

    # --- subscribing -----------------------------------------------------------------------

    def subscribe(self, stream_id: int) -> LiveGiftSubscription:
        """Gifts in ``stream_id`` from the moment the subscription is opened."""
        return LiveGiftSubscription(self, stream_id, self.limits.queue_size)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def subscriber_count(self, stream_id: int | None = None) -> int:
        if stream_id is not None:
            return len(self._subscribers.get(stream_id, ()))
        return sum(len(found) for found in self._subscribers.values())

    async def _add(self, subscription: LiveGiftSubscription) -> None:
        if self._stopped:
            raise LiveFeedEnded(FeedEnd.FEED_STOPPED, END_MESSAGES[FeedEnd.FEED_STOPPED])
        self.start()
        try:
            await asyncio.wait_for(self._listening.wait(), self.limits.listen_timeout_seconds)
        except TimeoutError:
            raise LiveFeedEnded(
                FeedEnd.FEED_INTERRUPTED, "Live gifts are unavailable right now: try again shortly"
            ) from None
        # Added with no await since the feed was seen listening: were the connection lost
        # since, _listen would end this subscription with the others when it notices.
        self._subscribers.setdefault(subscription.stream_id, set()).add(subscription)

    def _discard(self, subscription: LiveGiftSubscription) -> None:
        found = self._subscribers.get(subscription.stream_id)
        if found is not None:
            found.discard(subscription)
            if not found:
                del self._subscribers[subscription.stream_id]

    def _end_stream(self, stream_id: int, reason: FeedEnd | None) -> None:
        for subscription in self._subscribers.pop(stream_id, set()):
            subscription._end(reason)

    def _end_all(self, reason: FeedEnd) -> None:
        for stream_id in list(self._subscribers):
            self._end_stream(stream_id, reason)

    # --- fan-out ---------------------------------------------------------------------------

    def _on_notice(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        """asyncpg's listener callback: runs on the event loop, never waits."""
        try:
            event = parse_gift_notice(payload)
        except MalformedGiftNotice as error:
            log.error("ignored a malformed notice on %s from backend %d: %s", channel, pid, error)
            return
        for subscription in tuple(self._subscribers.get(event.stream_id, ())):
            if not subscription._offer(event):
                self._discard(subscription)

    # --- the connection --------------------------------------------------------------------

    def start(self) -> None:
        """Start listening in the background (idempotent)."""
        if self._stopped:
            raise RuntimeError("the gift feed was stopped")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="gift-feed")

    async def wait_listening(self, timeout_seconds: float) -> None:
        self.start()
        await asyncio.wait_for(self._listening.wait(), timeout_seconds)

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        self._end_all(FeedEnd.FEED_STOPPED)

    async def _run(self) -> None:
        """Listen; when the connection is lost, end every subscription and listen again after a
        capped, jittered, exponential backoff (reset once a connection has worked)."""
        backoff_seconds = self.limits.reconnect_min_seconds
        while True:
            worked = False
            try:
                async for _ in self._listen():
                    worked = True
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if worked:
                    backoff_seconds = self.limits.reconnect_min_seconds
                log.warning(
                    "gift feed connection failed (%s: %s); reconnecting in up to %.1f s",
                    type(error).__name__,
                    error,
                    backoff_seconds,
                )
            await asyncio.sleep(backoff_seconds * random.uniform(0.5, 1.0))
            backoff_seconds = min(backoff_seconds * 2, self.limits.reconnect_max_seconds)

    async def _listen(self) -> AsyncIterator[None]:
        """One connection's life: yields after each successful check; raises when it is lost."""
        connection: Any = None
        lost = asyncio.Event()
        try:
            connection = await asyncpg.connect(
                self._dsn,
                timeout=self.limits.connect_timeout_seconds,
                server_settings={"application_name": "coinbooks-gift-feed"},
            )
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(GIFT_CHANNEL, self._on_notice)
            self.connections_made += 1
            self.backend_pid = connection.get_server_pid()
            self._listening.set()
            log.info("gift feed listening on %s (backend %d)", GIFT_CHANNEL, self.backend_pid)
            while True:
                await self._check_streams(connection, lost)
                yield
        finally:
            self._listening.clear()
            self.backend_pid = None
            self._ended_streams.clear()
            self._end_all(FeedEnd.FEED_STOPPED if self._stopped else FeedEnd.FEED_INTERRUPTED)
            if connection is not None:
                connection.terminate()

    async def _check_streams(self, connection: Any, lost: asyncio.Event) -> None:
        """Wait one interval, then end the subscriptions of streams seen ended one check ago
        (their last gifts were heard in between) and look for streams that ended since."""
        with suppress(TimeoutError):
            await asyncio.wait_for(lost.wait(), self.limits.stream_check_seconds)
        if lost.is_set():
            raise ConnectionError("the listening connection was closed")
        for stream_id in self._ended_streams:
            self._end_stream(stream_id, None)
        watched = list(self._subscribers)
        rows = await connection.fetch(
            ENDED_STREAMS, watched, timeout=self.limits.query_timeout_seconds
        )
        self._ended_streams = {row["id"] for row in rows}
