"""A closed-loop load driver: N clients, each doing one thing after another for a fixed time,
with throughput and latency taken over a measurement window that follows a warm-up."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

MAX_ERRORS = 50
"""Stop the run early after this many errors: the figures would mean nothing anyway."""


class NotAcknowledged(Exception):
    """The request came back, but not as a completed purchase."""


Attempt = Callable[[int, int], Awaitable[None]]
"""``attempt(client, sequence)``: one request; returns when it is acknowledged, raises if not."""


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list; ``None`` for an empty one."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(slots=True)
class LoadResult:
    clients: int
    window_seconds: float
    """Length of the measurement window (the warm-up before it is not counted)."""
    completed: int
    """Acknowledged requests that finished inside the window: the throughput figure."""
    acknowledged: int
    """Every acknowledged request, warm-up and stragglers included: what the books must hold."""
    errors: int
    error_examples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    """Latency of each request counted in ``completed``, ascending."""

    @property
    def per_second(self) -> float:
        return self.completed / self.window_seconds if self.window_seconds > 0 else 0.0

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.latencies_ms, 50)

    @property
    def p99_ms(self) -> float | None:
        return percentile(self.latencies_ms, 99)

    @property
    def mean_ms(self) -> float | None:
        if not self.latencies_ms:
            return None
        return sum(self.latencies_ms) / len(self.latencies_ms)


async def drive(clients: int, seconds: float, warmup: float, attempt: Attempt) -> LoadResult:
    """Run ``clients`` concurrent loops of ``attempt`` for ``warmup + seconds``.

    Requests in flight when the time is up are waited for (they count as acknowledged, for the
    books, but not towards the throughput); no new ones start after it.
    """
    if clients < 1 or seconds <= 0 or warmup < 0:
        raise ValueError("need at least one client and a positive duration")
    started = time.monotonic()
    window_start = started + warmup
    window_end = window_start + seconds
    latencies: list[float] = []
    acknowledged = 0
    errors: list[str] = []
    error_count = 0
    stop = asyncio.Event()

    async def client(index: int) -> None:
        nonlocal acknowledged, error_count
        sequence = 0
        while not stop.is_set() and time.monotonic() < window_end:
            sequence += 1
            began = time.monotonic()
            try:
                await attempt(index, sequence)
            except Exception as error:  # every failure is counted and reported
                error_count += 1
                if len(errors) < 5:
                    errors.append(f"{type(error).__name__}: {error}"[:500])
                if error_count >= MAX_ERRORS:
                    stop.set()
                continue
            finished = time.monotonic()
            acknowledged += 1
            if window_start <= finished <= window_end:
                latencies.append((finished - began) * 1000)

    await asyncio.gather(*(client(i) for i in range(clients)))
    latencies.sort()
    return LoadResult(
        clients=clients,
        window_seconds=seconds,
        completed=len(latencies),
        acknowledged=acknowledged,
        errors=error_count,
        error_examples=errors,
        latencies_ms=latencies,
    )
