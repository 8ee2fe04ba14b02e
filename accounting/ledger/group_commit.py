"""Group commit: requests that arrive while a batch is being written wait, and the next batch
takes them all, in one database transaction.

Nothing waits on a timer. A request that finds no batch in flight is written at once (a batch
of one); under load, batches grow to what arrived during the last write, up to ``max_batch``.
Each request is answered only after its batch has committed (or with its own error), so an
acknowledged request is durable, and one request's failure is its own: the writer returns an
outcome per request, a result or an exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")
T = TypeVar("T")

DEFAULT_MAX_BATCH = 256
"""A batch's size is bounded: its transaction holds row locks for as long as it takes."""


class GroupCommit(Generic[R, T]):
    """Batches the requests of one process (one event loop) for ``write_batch``.

    ``key`` names what two requests must not share within one batch (a sender's idempotency
    key): the later one waits for the next batch, where it sees the first one's outcome in the
    database like any retry.
    """

    def __init__(
        self,
        write_batch: Callable[[Sequence[R]], Awaitable[Sequence[T | Exception]]],
        *,
        key: Callable[[R], Hashable],
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError("a batch holds at least one request")
        self._write_batch = write_batch
        self._key = key
        self.max_batch = max_batch
        self._queue: deque[tuple[R, asyncio.Future[T]]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches_written = 0
        self.requests_written = 0
        self.batch_observers: list[Callable[[int], None]] = []
        """Called with each written batch's size (metrics); an observer must not raise."""

    @property
    def queued(self) -> int:
        """Requests waiting for a batch (the one being written not counted)."""
        return len(self._queue)

    async def submit(self, request: R) -> T:
        """Queue ``request`` for the next batch and wait for its outcome."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop: whatever the old one queued is gone
            self._loop, self._queue, self._writer = loop, deque(), None
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((request, future))
        if self._writer is None:
            self._writer = loop.create_task(self._drain())
        return await future

    def _take_batch(self) -> list[tuple[R, asyncio.Future[T]]]:
        batch: list[tuple[R, asyncio.Future[T]]] = []
        keys: set[Hashable] = set()
        held: list[tuple[R, asyncio.Future[T]]] = []
        while self._queue and len(batch) < self.max_batch:
            request, future = self._queue.popleft()
            if future.done():  # its caller gave up before it was written: never written
                continue
            key = self._key(request)
            if key in keys:
                held.append((request, future))
                continue
            keys.add(key)
            batch.append((request, future))
        self._queue.extendleft(reversed(held))
        return batch

    async def _drain(self) -> None:
        batch: list[tuple[R, asyncio.Future[T]]] = []
        try:
            while self._queue:
                batch = self._take_batch()
                if batch:
                    await self._write(batch)
                batch = []
        except asyncio.CancelledError:
            # The process is shutting down: nothing more is written, and every caller hears so.
            for _, future in [*batch, *self._queue]:
                future.cancel()
            self._queue.clear()
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[R, asyncio.Future[T]]]) -> None:
        try:
            outcomes = await self._write_batch([request for request, _ in batch])
            if len(outcomes) != len(batch):
                raise AssertionError(
                    f"a batch of {len(batch)} came back with {len(outcomes)} outcomes"
                )
        except Exception as error:
            log.exception("writing a batch of %d failed", len(batch))
            outcomes = [error] * len(batch)
        self.batches_written += 1
        self.requests_written += len(batch)
        for observe in self.batch_observers:
            observe(len(batch))
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
