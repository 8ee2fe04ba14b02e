"""Global object identification over HTTP: every Node's id is a global id that node(id:) and
nodes(ids:) fetch again as the type's own lookup answers it; lookups and inputs take the global
id and, for this release, the row id; nodes is bounded and counted in the query's cost.

The world: Ana buys 350 coins (purchase 1, journal entry 1); Bo goes live (stream 1)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from graphql import GraphQLInterfaceType
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.purchases.service import PurchaseService
from schema import build_schema
from schema.authorization import NODES as NODE_RULES
from schema.node_queries import LOADERS, MAX_NODES
from schema.nodes import decode_global_id, global_id
from tests.chargebacks.deliveries import deliver, dispute, reference_of
from tests.conftest import GraphQLClient
from tests.graphql.test_graphql_corrections import PROPOSE, REJECT, as_finance, fee_input
from tests.graphql.test_graphql_payouts import bo_earns_4000_diamonds, ready_bo, request
from tests.graphql.test_graphql_refunds import buy
from tests.settlement.test_graphql_settlement import IMPORT, RESOLVE, book
from tests.settlement.test_graphql_settlement import as_finance as as_settlement_finance

BUY = """
mutation Buy($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) { purchase { id entryId } errors { code } }
}
"""
GO_LIVE = """
mutation Live($input: StartStreamInput!) {
  startStream(input: $input) { stream { id } errors { code } }
}
"""
REFUND = """
mutation Refund($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) { refund { id } errors { code } }
}
"""
CHARGEBACKS = "{ chargebacks { edges { node { id } } } }"
NODE = "query($id: ID!) { node(id: $id) { __typename id } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def the_world(gql: GraphQLClient) -> dict[str, Any]:
    bought = await gql(
        BUY,
        {
            "input": {
                "idempotencyKey": "node-ana-0001",
                "currency": "USD",
                "channel": "WEB",
                "provider": "CARD",
                "paymentToken": "tok_success",
                "packageCode": "coins_350",
            }
        },
        user="ana",
    )
    live = await gql(GO_LIVE, {"input": {"title": "Bo live"}}, user="bo", roles=("creator",))
    assert bought["data"]["purchaseCoins"]["errors"] == [], bought
    assert live["data"]["startStream"]["errors"] == [], live
    return {
        "purchase": bought["data"]["purchaseCoins"]["purchase"],
        "stream": live["data"]["startStream"]["stream"],
    }


async def test_ids_are_global_and_node_fetches_each_type_again(gql: GraphQLClient) -> None:
    world = await the_world(gql)
    purchase, stream = world["purchase"]["id"], world["stream"]["id"]

    assert (purchase, stream) == (encoded("Purchase:1"), encoded("Stream:1"))
    assert await gql(NODE, {"id": purchase}, user="ana") == {
        "data": {"node": {"__typename": "Purchase", "id": purchase}}
    }
    assert await gql(NODE, {"id": stream}, user="ana") == {
        "data": {"node": {"__typename": "Stream", "id": stream}}
    }
    entry = encoded(f"JournalEntry:{world['purchase']['entryId']}")
    assert await gql(NODE, {"id": entry}, user="fin", roles=("finance",)) == {
        "data": {"node": {"__typename": "JournalEntry", "id": entry}}
    }


async def test_lookups_take_the_global_id_and_the_row_id_alike(gql: GraphQLClient) -> None:
    await the_world(gql)
    query = "query($id: ID!) { purchase(id: $id) { id } stream(id: $id) { id } }"

    by_global = await gql(
        "query($p: ID!, $s: ID!) { purchase(id: $p) { id } stream(id: $s) { id } }",
        {"p": encoded("Purchase:1"), "s": encoded("Stream:1")},
        user="ana",
    )
    by_row = await gql(query, {"id": "1"}, user="ana")

    expected = {"purchase": {"id": encoded("Purchase:1")}, "stream": {"id": encoded("Stream:1")}}
    assert by_global == {"data": expected}
    assert by_row == {"data": expected}


async def test_a_global_id_of_another_type_names_nothing(gql: GraphQLClient) -> None:
    """Stream 1 and purchase 1 both exist: the purchase lookup given the stream's global id
    answers null, as does node for a type that is not a Node or an id that is not global."""
    await the_world(gql)

    wrong_type = await gql(
        "query($id: ID!) { purchase(id: $id) { id } }", {"id": encoded("Stream:1")}, user="ana"
    )
    assert wrong_type == {"data": {"purchase": None}}
    for id in ("1", encoded("Wallet:1"), encoded("Purchase:x"), encoded("Purchase"), "%%%"):
        assert await gql(NODE, {"id": id}, user="ana") == {"data": {"node": None}}, id


async def test_node_keeps_the_types_roles_a_journal_entry_is_finances(gql: GraphQLClient) -> None:
    await the_world(gql)

    reply = await gql(NODE, {"id": encoded("JournalEntry:1")}, user="ana")

    assert reply["data"] == {"node": None}
    assert [e["extensions"]["code"] for e in reply["errors"]] == ["FORBIDDEN"]
    unsigned = await gql(NODE, {"id": encoded("Purchase:1")})
    assert [e["extensions"]["code"] for e in unsigned["errors"]] == ["UNAUTHENTICATED"]


async def test_nodes_answers_in_the_order_asked_with_null_where_node_does(
    gql: GraphQLClient,
) -> None:
    await the_world(gql)
    ids = [encoded("Stream:1"), encoded("Purchase:9"), encoded("Purchase:1"), "garbage"]

    by_ana = await gql(NODES, {"ids": ids}, user="ana")
    by_bo = await gql(NODES, {"ids": ids}, user="bo")  # Ana's purchase is not Bo's to see

    stream = {"__typename": "Stream", "id": ids[0]}
    purchase = {"__typename": "Purchase", "id": ids[2]}
    assert by_ana == {"data": {"nodes": [stream, None, purchase, None]}}
    assert by_bo == {"data": {"nodes": [stream, None, None, None]}}


async def test_nodes_takes_at_most_a_page_of_ids(gql: GraphQLClient) -> None:
    ids = [encoded(f"Purchase:{n}") for n in range(1, MAX_NODES + 2)]

    at_most = await gql(NODES, {"ids": ids[:MAX_NODES]}, user="ana")
    too_many = await gql(NODES, {"ids": ids}, user="ana")

    assert at_most == {"data": {"nodes": [None] * MAX_NODES}}
    assert [e["extensions"]["code"] for e in too_many["errors"]] == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("count", [1, 10, 100])
async def test_each_id_of_nodes_counts_in_the_query_cost(
    client: httpx.AsyncClient, token: Callable[..., str], count: int
) -> None:
    """nodes { id } costs 1 per object (nothing below it is an object), so n ids cost n, the
    same written in the document as sent in a variable; with a Money below each, 2 per id."""
    ids = [encoded(f"Purchase:{n}") for n in range(1, count + 1)]
    listed = ", ".join(f'"{id}"' for id in ids)
    bearer = {"Authorization": f"Bearer {token('ana', 'viewer')}"}

    async def cost(query: str, variables: dict[str, Any] | None = None) -> Any:
        body = {"query": query, "variables": variables or {}}
        response = await client.post("/graphql", json=body, headers=bearer)
        return response.json()["extensions"]["cost"]["requested"]

    assert await cost(NODES, {"ids": ids}) == count
    assert await cost(f"query {{ nodes(ids: [{listed}]) {{ id }} }}") == count
    with_money = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Purchase { price { amount } } } }"
    assert await cost(with_money, {"ids": ids}) == 2 * count


async def test_many_pages_of_nodes_are_too_costly(gql: GraphQLClient) -> None:
    """Six aliases of 100 ids with a Money below each: 6 x 100 x 2 = 1,200, over 1,000."""
    ids = [encoded(f"Purchase:{n}") for n in range(1, MAX_NODES + 1)]
    aliases = " ".join(
        f"n{i}: nodes(ids: $ids) {{ ... on Purchase {{ price {{ amount }} }} }}" for i in range(6)
    )

    reply = await gql(f"query($ids: [ID!]!) {{ {aliases} }}", {"ids": ids}, user="ana")

    assert reply["data"] is None
    [error] = reply["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 1200, "limit": 1000}


def test_every_node_type_of_the_schema_has_a_loader_and_a_rule() -> None:
    schema = build_schema()._schema
    node = schema.get_type("Node")
    assert isinstance(node, GraphQLInterfaceType)
    implementing = {t.name for t in schema.get_possible_types(node)}
    assert implementing == set(LOADERS) == set(NODE_RULES)


async def test_nodes_naming_a_type_the_roles_may_not_read_is_refused_whole(
    gql: GraphQLClient,
) -> None:
    """Ana's own purchase beside a journal entry (finance's): FORBIDDEN, as journalEntry is."""
    await the_world(gql)

    reply = await gql(
        NODES, {"ids": [encoded("Purchase:1"), encoded("JournalEntry:1")]}, user="ana"
    )

    assert reply["data"] is None
    assert [e["extensions"]["code"] for e in reply["errors"]] == ["FORBIDDEN"]


async def assert_node_answers_as_its_lookup(
    gql: GraphQLClient,
    id: str,
    owner: tuple[str, tuple[str, ...]],
    stranger: tuple[str, tuple[str, ...]] | None = None,
) -> None:
    """``id`` is a Node the owner fetches with node and nodes, and an id of its type that names
    nothing is null for them; for the stranger, ``id`` answers exactly as that missing id."""
    type_name, _ = decode_global_id(id) or ("", 0)
    nobodys = global_id(type_name, 987654)
    user, roles = owner
    expected = {"__typename": type_name, "id": id}
    assert await gql(NODE, {"id": id}, user=user, roles=roles) == {"data": {"node": expected}}
    assert await gql(NODES, {"ids": [id, nobodys]}, user=user, roles=roles) == {
        "data": {"nodes": [expected, None]}
    }
    if stranger is None:
        return
    user, roles = stranger
    for query, variables, missing in (
        (NODE, {"id": id}, {"id": nobodys}),
        (NODES, {"ids": [id]}, {"ids": [nobodys]}),
    ):
        theirs = await gql(query, variables, user=user, roles=roles)
        assert theirs == await gql(query, missing, user=user, roles=roles)
        assert theirs["data"] in ({"node": None}, {"nodes": [None]}), theirs


async def test_a_refund_is_a_node_for_its_buyer_and_support(gql: GraphQLClient) -> None:
    """Sam in support refunds Ana's purchase 1: refund 1, seen by Ana and support, and by
    nobody else (Bo's node(id:) answers as for refund 987654)."""
    await the_world(gql)
    done = await gql(
        REFUND,
        {"input": {"purchaseId": encoded("Purchase:1"), "idempotencyKey": "node-refund-0001",
                   "reason": "asked"}},
        user="sam",
        roles=("support",),
    )  # fmt: skip
    refund = done["data"]["refundPurchase"]["refund"]["id"]

    assert refund == encoded("Refund:1")
    await assert_node_answers_as_its_lookup(gql, refund, ("ana", ("viewer",)), ("bo", ("viewer",)))
    await assert_node_answers_as_its_lookup(
        gql, refund, ("sam", ("support",)), ("cy", ("creator",))
    )


async def assert_node_refused_to(
    gql: GraphQLClient, id: str, user: str, roles: tuple[str, ...]
) -> None:
    """node and nodes refuse ``id`` to a role that may not read its type, as its list does."""
    for query, variables in ((NODE, {"id": id}), (NODES, {"ids": [id]})):
        reply = await gql(query, variables, user=user, roles=roles)
        assert [e["extensions"]["code"] for e in reply["errors"]] == ["FORBIDDEN"], reply


async def test_a_chargeback_is_a_node_for_support_and_finance(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana's bank disputes her purchase: chargeback 1, read by support and finance alone; Ana
    herself gets the role error that chargebacks(userId:) gives her."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)
    response = await deliver(client, "card", dispute(reference, amount=499, fee=1500))
    assert response.status_code == 200, response.text
    listed = await gql(CHARGEBACKS, user="sam", roles=("support",))
    [edge] = listed["data"]["chargebacks"]["edges"]
    chargeback = edge["node"]["id"]

    assert chargeback == encoded("Chargeback:1")
    for reader in (("sam", ("support",)), ("fin", ("finance",))):
        await assert_node_answers_as_its_lookup(gql, chargeback, reader)
    await assert_node_refused_to(gql, chargeback, "ana", ("viewer",))
    await assert_node_refused_to(gql, encoded("Chargeback:987654"), "ana", ("viewer",))


async def test_an_adjustment_proposal_is_a_node_for_finance(gql: GraphQLClient) -> None:
    """Fin proposes proposal 1 (global id); another finance person fetches it and rejects it
    by that global id; a viewer gets the role error for it and for a missing one alike."""
    proposed = await as_finance(gql, PROPOSE, {"input": fee_input()})
    proposal = proposed["proposal"]["id"]

    assert proposal == encoded("AdjustmentProposal:1")
    await assert_node_answers_as_its_lookup(gql, proposal, ("fin-b", ("finance",)))
    await assert_node_refused_to(gql, proposal, "ana", ("viewer",))
    await assert_node_refused_to(gql, encoded("AdjustmentProposal:987654"), "ana", ("viewer",))
    rejected = await as_finance(
        gql, REJECT, {"input": {"proposalId": proposal, "reason": "booked twice"}}, "fin-b"
    )
    assert (rejected["errors"], rejected["proposal"]["status"]) == ([], "REJECTED")
    other_type = {"input": {"proposalId": encoded("Refund:1"), "reason": "no such proposal"}}
    refused = await as_finance(gql, REJECT, other_type, "fin-b")
    assert [e["code"] for e in refused["errors"]] == ["PROPOSAL_NOT_FOUND"]


async def test_a_reconciliation_exception_is_a_node_for_finance(
    gql: GraphQLClient, purchases: PurchaseService
) -> None:
    """A card report with an unknown charge (ch_ghost) and Ana's and Bo's charges: ch_ghost is
    missing in the ledger. Finance fetches its exception by its global id and accepts it by that
    id; a viewer gets the role error for it and for a missing one alike."""
    imported = await as_settlement_finance(
        gql, IMPORT, {"input": {"report": await book(purchases)}}
    )
    ghost = {x["providerReference"]: x for x in imported["exceptions"]}["ch_ghost"]["id"]

    assert (decode_global_id(ghost) or ("", 0))[0] == "ReconciliationException"
    await assert_node_answers_as_its_lookup(gql, ghost, ("fin", ("finance",)))
    await assert_node_refused_to(gql, ghost, "ana", ("viewer",))
    await assert_node_refused_to(
        gql, global_id("ReconciliationException", 987654), "ana", ("viewer",)
    )
    accept = {"exceptionId": ghost, "action": "ACCEPT", "reason": "a provider test charge",
              "idempotencyKey": "node-accept-ghost-1"}  # fmt: skip
    resolved = await as_settlement_finance(gql, RESOLVE, {"input": accept})
    assert (resolved["errors"], resolved["exception"]["id"]) == ([], ghost)


GIFT = "query($id: ID!) { gift(id: $id) { id senderId creatorId coins } }"
PAYOUT_METHOD = "query($id: ID!) { payoutMethod(id: $id) { id masked } }"


async def test_a_gift_is_a_node_for_its_sender_its_creator_support_and_finance(
    gql: GraphQLClient,
) -> None:
    """Ana sends Bo four Galaxies (one gift of 4 x 1,000 = 4,000 coins): gift 1, seen by Ana
    and Bo, and by nobody else of their roles (Eve's and Cy's node(id:) answer as for gift
    987654); support and finance see it. gift(id:) takes its global id and its row id alike,
    and streamGifts gives Bo the same id."""
    await bo_earns_4000_diamonds(gql)
    sent = await gql(f"{{ giftsSent {EDGES} }}", user="ana")
    [edge] = sent["data"]["giftsSent"]["edges"]
    gift = edge["node"]["id"]

    assert gift == encoded("Gift:1")
    await assert_node_answers_as_its_lookup(gql, gift, ("ana", ("viewer",)), ("eve", ("viewer",)))
    await assert_node_answers_as_its_lookup(gql, gift, ("bo", ("creator",)), ("cy", ("creator",)))
    for reader in (("sue", ("support",)), ("fin", ("finance",))):
        await assert_node_answers_as_its_lookup(gql, gift, reader)
    expected = {"id": gift, "senderId": "ana", "creatorId": "bo", "coins": "4000"}
    for id in (gift, "1"):
        assert await gql(GIFT, {"id": id}, user="bo", roles=("creator",)) == {
            "data": {"gift": expected}
        }
    assert await gql(GIFT, {"id": encoded("Stream:1")}, user="ana") == {"data": {"gift": None}}
    received = await gql(
        f"query($s: ID!) {{ streamGifts(streamId: $s) {EDGES} }}",
        {"s": encoded("Stream:1")},
        user="bo",
        roles=("creator",),
    )
    assert received["data"]["streamGifts"]["edges"] == [{"node": {"id": gift}}]


async def test_a_payout_method_is_a_node_for_its_creator_support_and_finance(
    gql: GraphQLClient,
) -> None:
    """Bo registers his bank account: payout method 1, seen by Bo, support and finance, and
    by nobody else (Cy's node(id:) answers as for method 987654). payoutMethod(id:) and
    requestPayout take its global id and, this release, its row id: two payouts of 2,000 of
    Bo's 4,000 diamonds, one by each."""
    secret, method = await ready_bo(gql)

    assert method == encoded("PayoutMethod:1")
    await assert_node_answers_as_its_lookup(gql, method, ("bo", ("creator",)), ("cy", ("creator",)))
    for reader in (("sue", ("support",)), ("fin", ("finance",))):
        await assert_node_answers_as_its_lookup(gql, method, reader)
    for id in (method, "1"):
        assert await gql(PAYOUT_METHOD, {"id": id}, user="bo", roles=("creator",)) == {
            "data": {"payoutMethod": {"id": method, "masked": "****6789"}}
        }
    by_global = await request(gql, secret, method, "2000", "node-method-global")
    by_row = await request(gql, secret, "1", "2000", "node-method-row")
    for payload in (by_global, by_row):
        assert payload["errors"] == [], payload


# --- one rule per Node type: its own field and node(id:) answer alike --------------------------

Caller = tuple[str, tuple[str, ...]] | None
"""A user and their roles, or None for no token."""

EDGES = "{ edges { node { id } } }"
OWN_FIELDS: dict[str, str] = {
    # each Node type: its own field (aliased found), asked with $id: the object's id, or for a
    # list a filter that holds it; a refund has no lookup of its own and is seen as its purchase
    "Purchase": "query($id: ID!) { found: purchase(id: $id) { id } }",
    "Refund": "query($id: ID!) { found: purchase(id: $id) { id } }",
    "Payout": "query($id: ID!) { found: payout(id: $id) { id } }",
    "PayoutMethod": "query($id: ID!) { found: payoutMethod(id: $id) { id } }",
    "Gift": "query($id: ID!) { found: gift(id: $id) { id } }",
    "Stream": "query($id: ID!) { found: stream(id: $id) { id } }",
    "SettlementReport": "query($id: ID!) { found: settlementReport(id: $id) { id } }",
    "JournalEntry": "query($id: ID!) { found: journalEntry(id: $id) { id } }",
    "Chargeback": f"query($id: String) {{ found: chargebacks(userId: $id) {EDGES} }}",
    "AdjustmentProposal": f"{{ found: adjustmentProposals {EDGES} }}",
    "ReconciliationException": f"{{ found: reconciliationExceptions(status: null) {EDGES} }}",
}
OWNERS: dict[str, Caller] = {
    # whose each object of the world is: its buyer, its creator, or the finance person who made it
    "Purchase": ("ana", ("viewer",)),
    "Refund": ("ana", ("viewer",)),
    "Payout": ("bo", ("creator",)),
    "PayoutMethod": ("bo", ("creator",)),
    "Gift": ("ana", ("viewer",)),
    "Stream": ("bo", ("creator",)),
    "SettlementReport": ("fiona", ("finance",)),
    "JournalEntry": ("ana", ("viewer",)),
    "Chargeback": ("ana", ("viewer",)),
    "AdjustmentProposal": ("fin-a", ("finance",)),
    "ReconciliationException": ("fiona", ("finance",)),
}
ASKERS: dict[str, Caller] = {
    "another viewer": ("eve", ("viewer",)),
    "another creator": ("cy", ("creator",)),
    "support": ("sue", ("support",)),
    "finance": ("fin-c", ("finance",)),
    "signed out": None,
}
PURCHASE = "query($id: ID!) { purchase(id: $id) { entryId } }"
REPORTS = "{ settlementReports { edges { node { id } } } }"


async def every_node(
    gql: GraphQLClient, client: httpx.AsyncClient, world: tuple[PurchaseService, Any]
) -> dict[str, tuple[str, str | None]]:
    """One object of every Node type: its global id, and the $id its own field is asked with.
    Ana buys 7,000 coins and gifts Bo (live) four Galaxies; Bo, verified, requests a payout;
    finance imports a card report (ch_ghost is missing in the ledger) and proposes an adjusting
    entry; Ana buys twice more: support refunds one, her bank disputes the other."""
    purchases, sessions = world
    secret, method = await ready_bo(gql)
    payout = (await request(gql, secret, method))["payout"]["id"]
    live = await gql("{ liveStreams { edges { node { id } } } }", user="bo")
    sent = await gql(f"{{ giftsSent {EDGES} }}", user="ana")
    gift = sent["data"]["giftsSent"]["edges"][0]["node"]["id"]
    imported = await as_settlement_finance(
        gql, IMPORT, {"input": {"report": await book(purchases)}}
    )
    reports = await gql(REPORTS, user="fiona", roles=("finance",))
    proposal = (await as_finance(gql, PROPOSE, {"input": fee_input()}))["proposal"]["id"]
    refunded, disputed = await buy(gql), await buy(gql)
    refund = {"purchaseId": refunded, "idempotencyKey": "parity-1", "reason": "asked"}
    done = await gql(REFUND, {"input": refund}, user="sam", roles=("support",))
    reference = await reference_of(sessions, disputed)
    assert (await deliver(client, "card", dispute(reference, amount=499))).status_code == 200
    listed = await gql(CHARGEBACKS, user="sam", roles=("support",))
    entry = (await gql(PURCHASE, {"id": disputed}, user="ana"))["data"]["purchase"]["entryId"]
    stream = live["data"]["liveStreams"]["edges"][0]["node"]["id"]
    report = reports["data"]["settlementReports"]["edges"][0]["node"]["id"]
    return {
        "Purchase": (disputed, disputed),
        "Refund": (done["data"]["refundPurchase"]["refund"]["id"], refunded),
        "Payout": (payout, payout),
        "PayoutMethod": (method, method),
        "Gift": (gift, gift),
        "Stream": (stream, stream),
        "SettlementReport": (report, report),
        "JournalEntry": (global_id("JournalEntry", int(entry)), entry),
        "Chargeback": (listed["data"]["chargebacks"]["edges"][0]["node"]["id"], "ana"),
        "AdjustmentProposal": (proposal, None),
        "ReconciliationException": (
            {x["providerReference"]: x for x in imported["exceptions"]}["ch_ghost"]["id"],
            None,
        ),
    }


def answer(reply: dict[str, Any], name: str, id: str) -> tuple[bool, list[str]]:
    """Whether a reply holds the object ``id`` (a list: among its nodes), and its error codes."""
    found = (reply.get("data") or {}).get(name)
    if isinstance(found, dict) and "edges" in found:
        found = [edge for edge in found["edges"] if edge["node"]["id"] == id] or None
    return found is not None, [error["extensions"]["code"] for error in reply.get("errors", [])]


@pytest.mark.parametrize("type_name", sorted(LOADERS))
async def test_a_nodes_own_field_and_node_answer_every_caller_alike(
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    purchases: PurchaseService,
    sessions: async_sessionmaker[AsyncSession],
    type_name: str,
) -> None:
    """For each Node type, one object asked through its own field and through node(id:) by its
    owner, another viewer and creator, support, finance and no one signed in: the same answer
    (the object or none, the same error codes). A Node type without a field here fails."""
    world = await every_node(gql, client, (purchases, sessions))
    id, field_id = world[type_name]
    field = OWN_FIELDS[type_name]
    variables = {} if field_id is None else {"id": field_id}
    answers = {}
    for asker, caller in {"owner": OWNERS[type_name], **ASKERS}.items():
        user, roles = caller or (None, ("viewer",))
        by_field = answer(await gql(field, variables, user=user, roles=roles), "found", id)
        by_node = answer(await gql(NODE, {"id": id}, user=user, roles=roles), "node", id)
        assert by_node == by_field, (type_name, asker, by_node, by_field)
        answers[asker] = by_node
    assert (answers["finance"], answers["signed out"]) == ((True, []), (False, ["UNAUTHENTICATED"]))


LOOKUPS = [
    "purchase",
    "payout",
    "payoutMethod",
    "gift",
    "stream",
    "settlementReport",
    "journalEntry",
]


@pytest.mark.parametrize("id", ["abc", encoded("Wallet:1"), encoded("Refund:1"), "987654"])
@pytest.mark.parametrize("lookup", LOOKUPS)
async def test_a_lookup_by_id_refuses_no_token_as_node_does_whatever_the_id(
    gql: GraphQLClient, lookup: str, id: str
) -> None:
    """Signed out, a lookup by id is UNAUTHENTICATED as node(id:) is, before the id is read: an
    id that names nothing of the type (not an id, another type's global id) was answered null."""
    by_field = await gql(f"query($id: ID!) {{ {lookup}(id: $id) {{ id }} }}", {"id": id})
    by_node = await gql(NODE, {"id": id})

    def refusals(reply: dict[str, Any]) -> list[tuple[str, str]]:
        return [(e["extensions"]["code"], e["message"]) for e in reply.get("errors", [])]

    assert [code for code, _ in refusals(by_node)] == ["UNAUTHENTICATED"]
    assert refusals(by_field) == refusals(by_node)
    assert by_field["data"] == {lookup: None}
