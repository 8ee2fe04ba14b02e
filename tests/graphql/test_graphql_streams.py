"""Live streams over GraphQL: creators start and end them (startStream, endStream), anyone signed
in looks them up (stream, liveStreams), through the real ASGI app over HTTP. Every payload's error
count and code is asserted, and every refused mutation is shown to change nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from schema.nodes import pk_of
from tests.conftest import GraphQLClient
from tests.gifts.streaming import (
    CREATOR,
    END_STREAM,
    FINANCE,
    START_STREAM,
    data,
    end_stream,
    error_code,
    start_stream,
    the_only_payload_error,
)

STREAM = "query Stream($id: ID!) { stream(id: $id) { id creatorId title status endedAt } }"

LIVE_STREAMS = """
query LiveStreams($first: Int!, $after: String) {
  liveStreams(first: $first, after: $after) {
    edges { cursor node { id creatorId title status } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def live_streams(gql: GraphQLClient, first: int = 100) -> list[dict[str, Any]]:
    reply = await gql(LIVE_STREAMS, {"first": first}, user="ana")
    return [edge["node"] for edge in data(reply, "liveStreams")["edges"]]


async def start(gql: GraphQLClient, title: str, creator: str = "bo") -> dict[str, Any]:
    reply = await gql(START_STREAM, {"input": {"title": title}}, user=creator, roles=CREATOR)
    payload: dict[str, Any] = data(reply, "startStream")
    return payload


# --- startStream --------------------------------------------------------------------------------


async def test_bo_goes_live_and_his_stream_is_live_until_he_ends_it(gql: GraphQLClient) -> None:
    payload = await start(gql, "  Cooking with Bo  ")

    assert payload["errors"] == []
    stream = payload["stream"]
    assert stream["creatorId"] == "bo"
    assert stream["title"] == "Cooking with Bo"  # spaces around are dropped
    assert stream["status"] == "LIVE"
    assert stream["endedAt"] is None
    assert datetime.fromisoformat(stream["startedAt"]).tzinfo is not None
    assert await live_streams(gql) == [
        {"id": stream["id"], "creatorId": "bo", "title": "Cooking with Bo", "status": "LIVE"}
    ]

    ended = await end_stream(gql, stream["id"])

    assert ended["errors"] == []
    assert ended["stream"]["id"] == stream["id"]
    assert ended["stream"]["status"] == "ENDED"
    ended_at = datetime.fromisoformat(ended["stream"]["endedAt"])
    assert ended_at >= datetime.fromisoformat(stream["startedAt"])
    assert await live_streams(gql) == []
    reply = await gql(STREAM, {"id": stream["id"]}, user="ana")
    assert data(reply, "stream")["status"] == "ENDED"


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
async def test_a_title_that_is_empty_or_longer_than_200_characters_is_refused(
    gql: GraphQLClient, title: str
) -> None:
    payload = await start(gql, title)

    assert payload["stream"] is None
    error = the_only_payload_error(payload)
    assert (error["code"], error["field"]) == ("INVALID_STREAM_TITLE", "title")
    assert error["message"] == "A stream title is 1-200 characters"
    assert await live_streams(gql) == []


async def test_a_200_character_title_is_accepted(gql: GraphQLClient) -> None:
    payload = await start(gql, "x" * 200)

    assert payload["errors"] == []
    assert payload["stream"]["title"] == "x" * 200


async def test_a_creator_has_one_live_stream_at_a_time(gql: GraphQLClient) -> None:
    first = await start_stream(gql, "bo", "First")

    payload = await start(gql, "Second")

    assert payload["stream"] is None
    error = the_only_payload_error(payload)
    assert error["code"] == "STREAM_ALREADY_LIVE"
    assert error["message"] == f"Stream {pk_of(first, 'Stream')} is still live: end it first"
    assert [s["id"] for s in await live_streams(gql)] == [first]

    assert (await end_stream(gql, first))["errors"] == []
    second = await start_stream(gql, "bo", "Second")
    assert [s["id"] for s in await live_streams(gql)] == [second]


async def test_concurrent_starts_by_one_creator_leave_exactly_one_stream_live(
    gql: GraphQLClient,
) -> None:
    payloads = await asyncio.gather(*(start(gql, f"Take {n}") for n in range(8)))

    started = [p for p in payloads if p["errors"] == []]
    refused = [p for p in payloads if p["errors"] != []]
    assert len(started) == 1
    assert len(refused) == 7
    assert {the_only_payload_error(p)["code"] for p in refused} == {"STREAM_ALREADY_LIVE"}
    assert [s["id"] for s in await live_streams(gql)] == [started[0]["stream"]["id"]]


@pytest.mark.parametrize("roles", [("viewer",), FINANCE, ("support",), ("admin",)])
async def test_only_a_creator_may_go_live(gql: GraphQLClient, roles: tuple[str, ...]) -> None:
    reply = await gql(START_STREAM, {"input": {"title": "Mine"}}, user="ana", roles=roles)

    assert error_code(reply) == "FORBIDDEN"
    assert reply["errors"][0]["message"] == "You may not stream without the creator role"
    assert await live_streams(gql) == []


async def test_going_live_needs_a_token(gql: GraphQLClient) -> None:
    reply = await gql(START_STREAM, {"input": {"title": "Mine"}})

    assert error_code(reply) == "UNAUTHENTICATED"
    assert await live_streams(gql) == []


# --- endStream ----------------------------------------------------------------------------------


async def test_a_stream_ends_once(gql: GraphQLClient) -> None:
    stream_id = await start_stream(gql)
    assert (await end_stream(gql, stream_id))["errors"] == []

    payload = await end_stream(gql, stream_id)

    assert payload["stream"] is None
    error = the_only_payload_error(payload)
    assert (error["code"], error["field"]) == ("STREAM_NOT_LIVE", "streamId")
    assert error["message"] == f"Stream {pk_of(stream_id, 'Stream')} has already ended"


async def test_only_its_creator_ends_a_stream(gql: GraphQLClient) -> None:
    stream_id = await start_stream(gql, "bo")

    payload = await end_stream(gql, stream_id, creator="cy")

    assert payload["stream"] is None
    error = the_only_payload_error(payload)
    assert (error["code"], error["field"]) == ("NOT_STREAM_CREATOR", "streamId")
    assert [s["id"] for s in await live_streams(gql)] == [stream_id]


@pytest.mark.parametrize("stream_id", ["9999", "abc", "-1", "0", str(2**63)])
async def test_ending_a_stream_that_does_not_exist_is_stream_not_found(
    gql: GraphQLClient, stream_id: str
) -> None:
    live = await start_stream(gql)

    payload = await end_stream(gql, stream_id)

    assert payload["stream"] is None
    error = the_only_payload_error(payload)
    assert (error["code"], error["field"]) == ("STREAM_NOT_FOUND", "streamId")
    assert error["message"] == f"No stream {stream_id}"
    assert [s["id"] for s in await live_streams(gql)] == [live]


async def test_a_viewer_may_not_end_a_stream(gql: GraphQLClient) -> None:
    stream_id = await start_stream(gql)

    reply = await gql(END_STREAM, {"input": {"streamId": stream_id}}, user="bo")

    assert error_code(reply) == "FORBIDDEN"
    assert [s["id"] for s in await live_streams(gql)] == [stream_id]


# --- stream, liveStreams ------------------------------------------------------------------------


async def test_anyone_signed_in_looks_a_stream_up(gql: GraphQLClient) -> None:
    stream_id = await start_stream(gql, "bo", "Bo live")

    for user, roles in [("ana", ("viewer",)), ("cy", CREATOR), ("fin", FINANCE)]:
        reply = await gql(STREAM, {"id": stream_id}, user=user, roles=roles)
        assert data(reply, "stream") == {
            "id": stream_id,
            "creatorId": "bo",
            "title": "Bo live",
            "status": "LIVE",
            "endedAt": None,
        }
    assert error_code(await gql(STREAM, {"id": stream_id})) == "UNAUTHENTICATED"


@pytest.mark.parametrize("stream_id", ["9999", "abc", "", str(2**63)])
async def test_a_stream_that_does_not_exist_is_null(gql: GraphQLClient, stream_id: str) -> None:
    reply = await gql(STREAM, {"id": stream_id}, user="ana")

    assert reply == {"data": {"stream": None}}


async def test_live_streams_are_listed_newest_first_in_pages(gql: GraphQLClient) -> None:
    ids = [await start_stream(gql, creator, f"{creator} live") for creator in ("bo", "cy", "di")]
    ended = await start_stream(gql, "ed", "over")
    assert (await end_stream(gql, ended, creator="ed"))["errors"] == []

    first = data(await gql(LIVE_STREAMS, {"first": 2}, user="ana"), "liveStreams")
    after = first["pageInfo"]["endCursor"]
    second = data(await gql(LIVE_STREAMS, {"first": 2, "after": after}, user="ana"), "liveStreams")

    assert [e["node"]["id"] for e in first["edges"]] == [ids[2], ids[1]]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["id"] for e in second["edges"]] == [ids[0]]
    assert second["pageInfo"]["hasNextPage"] is False
    assert [e["node"]["creatorId"] for e in first["edges"] + second["edges"]] == ["di", "cy", "bo"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 0}, "'first' is 1 to 100"),
        ({"first": 101}, "'first' is 1 to 100"),
        ({"first": 2, "after": "bm90LWEtY3Vyc29y"}, "'after' is not a cursor from this list"),
        ({"first": 2, "after": "cHVyY2hhc2U6Nw=="}, "'after' is not a cursor from this list"),
    ],
)
async def test_live_streams_refuses_a_bad_page_size_or_cursor(
    gql: GraphQLClient, variables: dict[str, Any], message: str
) -> None:
    reply = await gql(LIVE_STREAMS, variables, user="ana")

    error = reply["errors"][0]
    assert (error["extensions"]["code"], error["message"]) == ("BAD_USER_INPUT", message)


async def test_live_streams_needs_a_token(gql: GraphQLClient) -> None:
    assert error_code(await gql(LIVE_STREAMS, {"first": 5})) == "UNAUTHENTICATED"
