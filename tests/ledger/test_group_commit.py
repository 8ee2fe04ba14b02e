"""Group commit on its own, without a database: which requests share a batch, and that each
caller hears its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from accounting.ledger.group_commit import GroupCommit


class Recorder:
    """A batch writer that records its batches; ``gate`` holds a write until it is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, requests: Sequence[str]) -> list[str | Exception]:
        self.batches.append(list(requests))
        await self.gate.wait()
        return [ValueError(r) if r.startswith("bad") else r.upper() for r in requests]


def by_name(request: str) -> str:
    return request.split("#")[0]


async def test_a_lone_request_is_written_at_once_as_a_batch_of_one() -> None:
    recorder = Recorder()
    batches = GroupCommit(recorder.write, key=by_name)
    assert await batches.submit("ana") == "ANA"
    assert recorder.batches == [["ana"]]


async def test_requests_arriving_during_a_write_share_the_next_batch() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = GroupCommit(recorder.write, key=by_name)
    first = asyncio.create_task(batches.submit("ana"))
    await asyncio.sleep(0)  # the first batch is being written, and held
    others = [asyncio.create_task(batches.submit(name)) for name in ("bo", "cy", "di")]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == "ANA"
    assert [await task for task in others] == ["BO", "CY", "DI"]
    assert recorder.batches == [["ana"], ["bo", "cy", "di"]]
    assert (batches.batches_written, batches.requests_written) == (2, 4)


async def test_a_batch_holds_at_most_max_batch_requests_in_arrival_order() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = GroupCommit(recorder.write, key=by_name, max_batch=2)
    tasks = [asyncio.create_task(batches.submit(f"u{i}")) for i in range(5)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await asyncio.gather(*tasks) == ["U0", "U1", "U2", "U3", "U4"]
    assert recorder.batches == [["u0", "u1"], ["u2", "u3"], ["u4"]]


async def test_requests_sharing_a_key_never_share_a_batch() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = GroupCommit(recorder.write, key=by_name)
    tasks = [
        asyncio.create_task(batches.submit(r)) for r in ("ana#1", "ana#2", "bo#1", "ana#3", "cy#1")
    ]
    await asyncio.sleep(0)
    recorder.gate.set()
    await asyncio.gather(*tasks)
    assert recorder.batches == [["ana#1", "bo#1", "cy#1"], ["ana#2"], ["ana#3"]]


async def test_each_caller_hears_its_own_outcome() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = GroupCommit(recorder.write, key=by_name)
    good = asyncio.create_task(batches.submit("ana"))
    bad = asyncio.create_task(batches.submit("bad-bo"))
    also_good = asyncio.create_task(batches.submit("cy"))
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await good == "ANA"
    with pytest.raises(ValueError, match="bad-bo"):
        await bad
    assert await also_good == "CY"
    assert recorder.batches == [["ana", "bad-bo", "cy"]]


async def test_a_writer_that_fails_fails_its_batch_only() -> None:
    calls: list[list[str]] = []

    async def write(requests: Sequence[str]) -> list[str | Exception]:
        calls.append(list(requests))
        if len(calls) == 1:
            raise ConnectionError("the database went away")
        return [r.upper() for r in requests]

    batches = GroupCommit(write, key=by_name)
    with pytest.raises(ConnectionError):
        await batches.submit("ana")
    assert await batches.submit("bo") == "BO"
    assert calls == [["ana"], ["bo"]]


async def test_a_caller_that_gives_up_before_its_batch_is_never_written() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = GroupCommit(recorder.write, key=by_name)
    first = asyncio.create_task(batches.submit("ana"))
    await asyncio.sleep(0)
    gave_up = asyncio.create_task(batches.submit("bo"))
    stayed = asyncio.create_task(batches.submit("cy"))
    await asyncio.sleep(0)
    gave_up.cancel()
    recorder.gate.set()
    assert await first == "ANA"
    assert await stayed == "CY"
    assert gave_up.cancelled()
    assert recorder.batches == [["ana"], ["cy"]]


async def test_a_batch_is_at_least_one_request() -> None:
    recorder = Recorder()
    with pytest.raises(ValueError, match="at least one"):
        GroupCommit(recorder.write, key=by_name, max_batch=0)
