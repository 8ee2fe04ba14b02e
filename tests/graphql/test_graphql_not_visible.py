"""An object a caller may not see answers exactly as one that does not exist, over HTTP through
the real ASGI app: for every lookup by id or key of something a user owns, the whole reply for
someone else's object equals the whole reply for an id nobody holds (with the id itself written
the same way in both), so no caller learns by asking what exists.

The world: Ana buys 7,000 coins and sends Bo, who is live, four Galaxies (stream 1, purchase 1)
and a Rose under a key of her own; Bo, verified and with a second factor, requests a payout
(payout 1). Eve (a viewer) and Cy (another creator) ask about them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from schema.nodes import decode_global_id, global_id
from tests.conftest import GraphQLClient
from tests.gifts.streaming import gift_sent
from tests.graphql.test_graphql_payouts import ready_bo, request

ANAS_GIFT_KEY = "ana-rose-for-bo-0001"
MISSING_ID = "987654"
MISSING_USER = "nobody-here"
ANAS_PURCHASE = global_id("Purchase", 1)
BOS_PAYOUT = global_id("Payout", 1)

STATEMENT = (
    'accountStatement(accountCode: $id, from: "2020-01-01T00:00:00Z", '
    'to: "2030-01-01T00:00:00Z") { closing { amount } }'
)

LOOKUPS: list[tuple[str, str, str, str]] = [
    # (name, the query's root selection with $id, the id's type, someone else's id)
    ("purchase", "purchase(id: $id) { id status }", "ID!", "1"),
    ("refundCheck", "refundCheck(purchaseId: $id) { refundable }", "ID!", "1"),
    ("payout", "payout(id: $id) { id status }", "ID!", "1"),
    ("streamGifts", "streamGifts(streamId: $id) { edges { cursor } }", "ID!", "1"),
    ("streamTotals", "streamTotals(streamId: $id) { giftCount }", "ID!", "1"),
    ("giftByKey", "giftByKey(idempotencyKey: $id) { id }", "String!", ANAS_GIFT_KEY),
    ("accountStatement", STATEMENT, "String!", "user:ana:coins"),
    ("wallet", "wallet(userId: $id) { coins }", "String", "ana"),
    ("transactions", "transactions(userId: $id) { edges { cursor } }", "String", "ana"),
    ("purchases", "purchases(userId: $id) { edges { cursor } }", "String", "ana"),
    ("giftsSent", "giftsSent(userId: $id) { edges { cursor } }", "String", "ana"),
    ("creatorEarnings", "creatorEarnings(creatorId: $id) { diamonds }", "String", "bo"),
    ("earningsOverTime", "earningsOverTime(creatorId: $id) { giftCount }", "String", "bo"),
    ("payouts", "payouts(creatorId: $id) { edges { cursor } }", "String", "bo"),
    ("payoutMethods", "payoutMethods(creatorId: $id) { id }", "String", "bo"),
    ("payoutControls", "payoutControls(creatorId: $id) { kycVerified }", "String", "bo"),
    ("chargebacks", "chargebacks(userId: $id) { edges { cursor } }", "String", "ana"),
    ("node", "node(id: $id) { id }", "ID!", ANAS_PURCHASE),
    ("node", "node(id: $id) { id }", "ID!", BOS_PAYOUT),
    ("nodes", "nodes(ids: [$id]) { id }", "ID!", ANAS_PURCHASE),
    ("nodes", "nodes(ids: [$id]) { id }", "ID!", BOS_PAYOUT),
    ("purchase", "purchase(id: $id) { id status }", "ID!", ANAS_PURCHASE),
    ("payout", "payout(id: $id) { id status }", "ID!", BOS_PAYOUT),
]
CALLERS = [("eve", ("viewer",)), ("cy", ("creator",))]


def missing(someone_elses: str) -> str:
    """An id or key of the same shape that nobody holds."""
    if someone_elses.startswith("user:"):
        return f"user:{MISSING_USER}:coins"
    if someone_elses.isdigit():
        return MISSING_ID
    if (decoded := decode_global_id(someone_elses)) is not None:
        return global_id(decoded[0], int(MISSING_ID))
    if someone_elses == ANAS_GIFT_KEY:
        return "nobody-ever-sent-this-1"
    return MISSING_USER


def normalized(reply: Any, id: str) -> Any:
    """The reply with the asked-for id, where a string names it, written as ``<ID>``."""
    if isinstance(reply, dict):
        return {name: normalized(value, id) for name, value in reply.items()}
    if isinstance(reply, list):
        return [normalized(value, id) for value in reply]
    if isinstance(reply, str):
        return re.sub(rf"(?<![\w:-]){re.escape(id)}(?![\w:-])", "<ID>", reply)
    return reply


async def the_world(gql: GraphQLClient) -> None:
    secret, method_id = await ready_bo(gql)
    assert (await request(gql, secret, method_id))["errors"] == []
    await gift_sent(gql, "1", "rose", user="ana", key=ANAS_GIFT_KEY)


@pytest.mark.parametrize(("caller", "roles"), CALLERS, ids=[c for c, _ in CALLERS])
async def test_what_a_caller_may_not_see_answers_as_what_does_not_exist(
    gql: GraphQLClient, caller: str, roles: tuple[str, ...]
) -> None:
    await the_world(gql)
    for name, selection, id_type, someone_elses in LOOKUPS:
        document = f"query($id: {id_type}) {{ {selection} }}"
        theirs = await gql(document, {"id": someone_elses}, user=caller, roles=roles)
        nobodys = await gql(document, {"id": missing(someone_elses)}, user=caller, roles=roles)

        assert normalized(theirs, someone_elses) == normalized(nobodys, missing(someone_elses)), (
            name
        )
        assert "errors" in theirs or theirs["data"][name] in (None, [None]), (name, theirs)


async def test_the_owner_and_staff_still_see_them(gql: GraphQLClient) -> None:
    """The same lookups answer with the object for whoever may see it: Ana her purchase and
    gift, Bo his payout and stream, support anything; node and nodes as the type's lookup."""
    await the_world(gql)
    seen = {
        "purchase": ("ana", ("viewer",)),
        "refundCheck": ("ana", ("viewer",)),
        "payout": ("bo", ("creator",)),
        "streamGifts": ("bo", ("creator",)),
        "streamTotals": ("bo", ("creator",)),
        "giftByKey": ("ana", ("viewer",)),
        "node": ("ana", ("viewer",)),
        "nodes": ("ana", ("viewer",)),
    }
    for name, selection, id_type, someone_elses in LOOKUPS:
        if name not in seen:
            continue
        user, roles = ("bo", ("creator",)) if someone_elses == BOS_PAYOUT else seen[name]
        document = f"query($id: {id_type}) {{ {selection} }}"
        reply = await gql(document, {"id": someone_elses}, user=user, roles=roles)
        assert "errors" not in reply and reply["data"][name] not in (None, [None]), (name, reply)
        if name != "giftByKey":
            by_support = await gql(document, {"id": someone_elses}, user="sue", roles=("support",))
            assert by_support == reply, name


ONE_OBJECT_LOOKUPS: list[tuple[str, str, str]] = [
    # (name, the query's root selection with $id, the id's type): every lookup of one object
    ("purchase", "purchase(id: $id) { id }", "ID!"),
    ("refundCheck", "refundCheck(purchaseId: $id) { refundable }", "ID!"),
    ("stream", "stream(id: $id) { id }", "ID!"),
    ("streamTotals", "streamTotals(streamId: $id) { giftCount }", "ID!"),
    ("payout", "payout(id: $id) { id }", "ID!"),
    ("settlementReport", "settlementReport(id: $id) { id }", "ID!"),
    ("journalEntry", "journalEntry(id: $id) { id }", "ID!"),
    ("accountBalance", "accountBalance(code: $id) { balance }", "String!"),
    ("giftByKey", "giftByKey(idempotencyKey: $id) { id }", "String!"),
]


@pytest.mark.parametrize("id", ["987654", "abc", "-1", "99999999999999999999"])
@pytest.mark.parametrize(
    ("name", "selection", "id_type"), ONE_OBJECT_LOOKUPS, ids=[n for n, _, _ in ONE_OBJECT_LOOKUPS]
)
async def test_every_lookup_of_one_object_answers_null_when_there_is_none(
    gql: GraphQLClient, name: str, selection: str, id_type: str, id: str
) -> None:
    """One not-found behaviour: null in data, no error, whatever the lookup and the id."""
    document = f"query($id: {id_type}) {{ {selection} }}"
    key = id if id_type == "ID!" else f"nothing-{id}"

    reply = await gql(document, {"id": key}, user="fin", roles=("finance", "support", "viewer"))

    assert reply == {"data": {name: None}}
