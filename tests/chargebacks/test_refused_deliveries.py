"""A flood of junk webhook deliveries writes a bounded number of rows: each refused delivery is
counted into the row of its source, reason and minute, and finance still reads what came, how
many, when the first and last came, and a sample. Over HTTP, through the real ASGI app."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.tables import WebhookRefusalRow
from tests.chargebacks.deliveries import deliver, dispute
from tests.conftest import GraphQLClient

JUNK = 1_000
REFUSED = """
query R($first: Int!) {
  refusedDeliveries(first: $first) { edges { node {
    source provider reason windowStart deliveries totalBytes firstSeenAt lastSeenAt
    detail bodySha256 bodyBytes client receivedAt
  } } }
}
"""


async def junk(client: httpx.AsyncClient, n: int) -> httpx.Response:
    """The ``n``-th junk delivery: in turn unsigned, signed with a made-up secret, signed an
    hour ago, or sent to an address naming a provider that does not exist (a new name each
    time)."""
    event = dispute(f"ch_junk_{n}", amount=499)
    kind = n % 4
    if kind == 0:
        return await deliver(client, "card", event, signature="")
    if kind == 1:
        return await deliver(client, "paypal", event, key=f"whsec_guess_{n}")
    if kind == 2:
        return await deliver(client, "google", event, at=int(time.time()) - 3600)
    return await deliver(client, f"provider-{n}", event)


async def test_a_thousand_junk_deliveries_write_a_bounded_number_of_rows(
    client: httpx.AsyncClient,
    gql: GraphQLClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    started = time.time()
    statuses = [(await junk(client, n)).status_code for n in range(JUNK)]
    minutes = int(time.time() // 60 - started // 60) + 1

    assert sorted(set(statuses)) == [401, 404]
    async with sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(WebhookRefusalRow))
        counted = await session.scalar(select(func.sum(WebhookRefusalRow.deliveries)))
    # four kinds of junk, each one source and reason: (card, MISSING_SIGNATURE), (paypal,
    # BAD_SIGNATURE), (google, STALE_TIMESTAMP), (unknown, UNKNOWN_PROVIDER); one row each per
    # minute the flood lasted, where one row a delivery would have been 1,000
    assert rows is not None and rows <= 4 * minutes
    assert counted == JUNK

    reply = await gql(REFUSED, {"first": 20}, user="fin", roles=("finance",))
    nodes: list[dict[str, Any]] = [e["node"] for e in reply["data"]["refusedDeliveries"]["edges"]]
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for node in nodes:
        by_key.setdefault((node["source"], node["reason"]), []).append(node)
    assert sorted(by_key) == [
        ("card", "MISSING_SIGNATURE"),
        ("google", "STALE_TIMESTAMP"),
        ("paypal", "BAD_SIGNATURE"),
        ("unknown", "UNKNOWN_PROVIDER"),
    ]
    for kind_rows in by_key.values():  # 250 deliveries of each kind
        assert sum(int(node["deliveries"]) for node in kind_rows) == JUNK // 4
    unknown = min(by_key[("unknown", "UNKNOWN_PROVIDER")], key=lambda node: node["firstSeenAt"])
    assert unknown["provider"] == "provider-3"  # the first junk address, kept as the sample
    assert unknown["detail"] == "No provider 'provider-3'"
    assert unknown["receivedAt"] == unknown["firstSeenAt"] <= unknown["lastSeenAt"]
    assert len(unknown["bodySha256"]) == 64
    for node in nodes:
        assert int(node["totalBytes"]) >= int(node["deliveries"]) * int(node["bodyBytes"]) // 2
        assert node["windowStart"] <= node["firstSeenAt"] <= node["lastSeenAt"]


async def test_refusals_of_one_source_and_reason_in_a_minute_are_one_row(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    sizes = [len((await junk(client, 0)).request.content) for _ in range(3)]

    async with sessions() as session:
        (row,) = (await session.scalars(select(WebhookRefusalRow))).all()
    assert (row.source, row.reason, row.deliveries) == ("card", "MISSING_SIGNATURE", 3)
    assert row.body_bytes == sum(sizes)
    assert row.sample_body_bytes == sizes[0]
    assert row.window_start.second == 0 and row.window_start.microsecond == 0
    assert row.window_start <= row.first_seen_at <= row.last_seen_at
