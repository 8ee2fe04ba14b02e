"""Gifts through GraphQL over HTTP: the real service (a subprocess) driven with ``sendGift``
mutations over keep-alive connections, one sender per connection, by the low-cost client of
bench/rawhttp.py. The senders are funded and the creators live before the clock starts."""

from __future__ import annotations

import asyncio
import random
import uuid
from urllib.parse import urlsplit

from accounting.policy.access import Role
from api.auth import issue_token
from api.settings import Settings
from bench.gifts import GIFTS, GiftingSetup
from bench.load import LoadResult, NotAcknowledged, drive
from bench.over_http import ServiceProcess, sample_memory
from bench.rawhttp import Connection, graphql_body, graphql_data, post_request, request_head

SEND_GIFT = """
mutation Send($input: SendGiftInput!) {
  sendGift(input: $input) {
    gift { id coins diamonds }
    wallet { coins }
    replayed
    errors { code message }
  }
}
"""
KEY_MARK = "K" * 32
"""Stands for the idempotency key in a pre-serialised body: a key is 32 hex digits."""


def gift_bodies(streams: list[int]) -> dict[tuple[int, str], tuple[bytes, bytes]]:
    """For every (stream, gift): the request body before and after its idempotency key."""
    found: dict[tuple[int, str], tuple[bytes, bytes]] = {}
    for stream in streams:
        for gift in GIFTS:
            body = graphql_body(
                SEND_GIFT,
                {
                    "input": {
                        "streamId": str(stream),
                        "giftCode": gift,
                        "quantity": 1,
                        "idempotencyKey": KEY_MARK,
                    }
                },
            )
            before, after = body.split(KEY_MARK.encode())
            found[stream, gift] = before, after
    return found


def gift_acknowledged(status: int, body: bytes) -> None:
    """Raise unless the reply says a new gift was sent."""
    payload = graphql_data(status, body, "sendGift")
    if payload.get("errors") or payload.get("replayed") or not payload.get("gift"):
        raise NotAcknowledged(f"not a new gift: {payload}")


async def drive_http_gifts(
    service: ServiceProcess,
    settings: Settings,
    setup: GiftingSetup,
    *,
    clients: int,
    seconds: float,
    warmup: float,
) -> LoadResult:
    """``clients`` connections, connection ``i`` sending as sender ``i % senders`` (with that
    sender's bearer token), each gift into a stream picked uniformly at random; the service's
    memory is sampled meanwhile."""
    host = urlsplit(service.base_url)
    assert host.hostname is not None and host.port is not None
    heads = [
        request_head(
            f"{host.hostname}:{host.port}",
            "/graphql",
            issue_token(settings, setup.senders[i % len(setup.senders)], [Role("viewer")]),
        )
        for i in range(clients)
    ]
    bodies = gift_bodies(setup.streams)
    picks = random.Random(20261127)
    connections = [Connection(host.hostname, host.port) for _ in range(clients)]
    await asyncio.gather(*(connection.open() for connection in connections))

    async def attempt(client: int, sequence: int) -> None:
        before, after = bodies[picks.choice(setup.streams), GIFTS[sequence % len(GIFTS)]]
        key = uuid.uuid4().hex.encode()
        status, reply = await connections[client].exchange(
            post_request(heads[client], before + key + after)
        )
        gift_acknowledged(status, reply)

    try:
        async with sample_memory(service):
            return await drive(clients, seconds, warmup, attempt)
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
