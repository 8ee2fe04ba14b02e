"""What a GraphQL request may ask for, over HTTP through the real ASGI app: no suggestions of
names in production, the depth limit over introspection too, and the query cost (refused over
the limit before anything runs, reported in every response's ``extensions``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query, parse
from sqlalchemy.engine import URL

from api.settings import Settings
from schema import build_schema
from schema.limits import operation_cost
from tests.conftest import GraphQLClient
from tests.graphql.test_docs_examples import GUIDE, examples
from tests.graphql.test_token_keys import http_to, production

PRODUCTION_SECRET = "a-production-signing-key-of-more-than-256-bits"


async def post(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def messages(reply: dict[str, Any]) -> list[str]:
    return [error["message"] for error in reply["errors"]]


# --- suggestions ----------------------------------------------------------------------------------

MISSPELT: list[tuple[str, str, dict[str, Any], str, str]] = [
    (
        "field",
        "query { walet { coins } }",
        {},
        "Cannot query field 'walet' on type 'Query'.",
        "'wallet'",
    ),
    (
        "argument",
        "query { transactions(frist: 5) { edges { cursor } } }",
        {},
        "Unknown argument 'frist' on field 'Query.transactions'.",
        "'first'",
    ),
    (
        "type",
        "query($c: Chanel!) { coinPackages(currency: USD, channel: $c) { code } }",
        {},
        "Unknown type 'Chanel'.",
        "'Channel'",
    ),
    (
        "enum value",
        "query { coinPackages(currency: USD, channel: WBE) { code } }",
        {},
        "Value 'WBE' does not exist in 'Channel' enum.",
        "'WEB'",
    ),
    (
        "enum value in a variable",
        "query($c: Channel!) { coinPackages(currency: USD, channel: $c) { code } }",
        {"c": "WBE"},
        "Variable '$c' has invalid value: Value 'WBE' does not exist in 'Channel' enum.",
        "'WEB'",
    ),
    (
        "input field in a variable",
        "mutation($input: PurchaseCoinsInput!) { purchaseCoins(input: $input) { replayed } }",
        {
            "input": {
                "idempotencyKey": "suggest-key-0001",
                "currency": "USD",
                "channel": "WEB",
                "provider": "CARD",
                "paymentToken": "tok_success",
                "packageCod": "coins_350",
            }
        },
        "Expected value of type 'PurchaseCoinsInput' not to include unknown field 'packageCod'.",
        "'packageCode'",
    ),
]


@pytest.mark.parametrize(
    ("query", "variables", "message", "suggested"),
    [case[1:] for case in MISSPELT],
    ids=[case[0] for case in MISSPELT],
)
async def test_production_suggests_no_names(
    db_url: URL, query: str, variables: dict[str, Any], message: str, suggested: str
) -> None:
    settings = production(db_url, jwt_secret=PRODUCTION_SECRET)

    async with http_to(settings, db_url) as http:
        reply = await post(http, query, **variables)

    assert reply["data"] is None
    assert any(message in found for found in messages(reply)), reply
    for found in messages(reply):
        assert "Did you mean" not in found
        assert suggested not in found


@pytest.mark.parametrize(
    ("query", "variables", "suggested"),
    [(case[1], case[2], case[4]) for case in MISSPELT],
    ids=[case[0] for case in MISSPELT],
)
async def test_development_still_suggests(
    gql: GraphQLClient, query: str, variables: dict[str, Any], suggested: str
) -> None:
    reply = await gql(query, variables, user="ana")

    assert any("Did you mean" in found and suggested in found for found in messages(reply)), reply


# --- depth, introspection included ------------------------------------------------------------


def of_type_chain(levels: int) -> str:
    """``__type`` 0, ``fields`` 1, ``type`` 2, each ``ofType`` one deeper, ``kind`` last."""
    chain = "ofType { " * levels + "kind" + " }" * levels
    return f'query Chain {{ __type(name: "Query") {{ fields {{ type {{ {chain} }} }} }} }}'


async def test_introspection_is_held_to_a_depth_limit(gql: GraphQLClient) -> None:
    # kind is at 3 + 11 = 14 with eleven ofType, at 15 with twelve.
    at_limit = await gql(of_type_chain(11))
    too_deep = await gql(of_type_chain(12))

    assert "errors" not in at_limit, at_limit
    assert too_deep == {
        "data": None,
        "errors": [
            {
                "message": "'Chain' exceeds maximum introspection depth of 14",
                "locations": [{"line": 1, "column": 1}],
            }
        ],
    }


async def test_introspection_lists_within_lists_are_refused(gql: GraphQLClient) -> None:
    query = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"

    reply = await gql(query)

    assert reply["data"] is None
    assert set(messages(reply)) == {"Maximum introspection depth exceeded"}


async def test_the_standard_introspection_query_still_answers_in_development(
    gql: GraphQLClient,
) -> None:
    reply = await gql(get_introspection_query(descriptions=True, specified_by_url=True))

    assert "errors" not in reply, messages(reply)
    assert reply["data"]["__schema"]["queryType"] == {"name": "Query", "kind": "OBJECT"}


async def test_the_depth_of_other_fields_is_unchanged(gql: GraphQLClient) -> None:
    nested = "a { " * 11 + "b" + " }" * 11  # 12 levels under wallet
    reply = await gql(f"query Deep {{ wallet {{ {nested} }} }}", user="ana")

    assert "'Deep' exceeds maximum operation depth of 10" in messages(reply)


async def test_a_long_chain_of_fragments_is_answered_not_failed(gql: GraphQLClient) -> None:
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(150))
    query = f"query {{ ...F0 }} {chain} fragment F150 on Query {{ wallet {{ coins }} }}"

    reply = await gql(query, user="ana")

    assert reply == {"data": {"wallet": {"coins": "0"}}}


# --- cost -------------------------------------------------------------------------------------


def aliased_pages(count: int, first: int) -> str:
    page = f"transactions(first: {first}) {{ edges {{ node {{ entryId kind coins }} }} }}"
    return "query { " + " ".join(f"t{i}: {page}" for i in range(count)) + " }"


async def test_fifteen_full_pages_of_transactions_are_too_costly(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    # Each alias: the connection 1, and 100 edges of 1 with their node of 1 (the node's
    # fields are scalars, free): 1 + 100 x 2 = 201. Fifteen: 3,015, over the default 1,000.
    response = await client.post(
        "/graphql",
        json={"query": aliased_pages(15, 100)},
        headers={"Authorization": f"Bearer {token('ana', 'viewer')}"},
    )

    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "The query costs 3015, more than the limit of 1000: ask for fewer "
                "items ('first') or fewer fields, or split it",
                "extensions": {"code": "QUERY_TOO_COSTLY", "cost": 3015, "limit": 1000},
            }
        ],
        "extensions": {"cost": {"requested": 3015, "limit": 1000}},
    }


async def test_the_cost_is_in_the_extensions_of_every_response(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    bearer = {"Authorization": f"Bearer {token('ana', 'viewer')}"}

    async def extensions(query: str, headers: dict[str, str] | None = None) -> Any:
        response = await client.post("/graphql", json={"query": query}, headers=headers or {})
        return response.json().get("extensions")

    # Fifteen pages of 30: 15 x (1 + 30 x 2) = 915, under the limit.
    assert await extensions(aliased_pages(15, 30), bearer) == {
        "cost": {"requested": 915, "limit": 1000}
    }
    # A list that is not a page counts one object: 1. Refused without a token: still 1.
    catalog = "query { coinPackages(currency: USD, channel: WEB) { code } }"
    assert await extensions(catalog) == {"cost": {"requested": 1, "limit": 1000}}
    assert await extensions("query { wallet { coins } }") == {
        "cost": {"requested": 1, "limit": 1000}
    }
    # A document that is not GraphQL has no operation to cost.
    assert await extensions("query {") is None


@pytest.mark.parametrize(
    ("query", "variables", "cost"),
    [
        # The connection 1, 20 edges (the default first) of 1, each with its node 1 and the
        # node's price 1: 1 + 20 x 3 = 61.
        ("query { purchases { edges { node { id price { amount } } } } }", {}, 61),
        # pageInfo counts once: 1 + 5 x 3 + 1 = 17.
        (
            "query($n: Int!) { purchases(first: $n) { edges { node { id price { amount } } } "
            "pageInfo { hasNextPage } } }",
            {"n": 5},
            17,
        ),
        # A variable's default: 1 + 3 x 2 = 7.
        (
            "query($n: Int! = 3) { purchases(first: $n) { edges { node { id } } } }",
            {},
            7,
        ),
        # A fragment costs what it selects: the same 7.
        (
            "query { purchases(first: 3) { ...Page } } "
            "fragment Page on PurchaseConnection { edges { node { id } } }",
            {},
            7,
        ),
        # A leaderboard is a page of 10 objects (of scalars): 10 x 1 = 10.
        ('query { topGifters(streamId: "1", first: 10) { userId } }', {}, 10),
    ],
    ids=["default-first", "page-info-once", "variable-default", "fragment", "leaderboard"],
)
async def test_the_cost_as_documented(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    query: str,
    variables: dict[str, Any],
    cost: int,
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token('ana', 'viewer')}"},
    )

    assert response.json()["extensions"] == {"cost": {"requested": cost, "limit": 1000}}


PURCHASE = (
    'p{i}: purchaseCoins(input: {{idempotencyKey: "cost-key-000{i}", currency: USD, '
    'channel: WEB, provider: CARD, paymentToken: "tok_success", packageCode: "coins_350"}}) '
    "{{ purchase {{ status }} wallet {{ coins }} }}"
)


async def test_a_costly_mutation_runs_nothing_and_the_limit_is_a_setting(
    settings: Settings, db_url: URL, token: Callable[..., str]
) -> None:
    # A mutation is 10, its payload 1, the purchase 1 and the wallet 1: 13 each.
    # Four: 52, over a limit of 50; three: 39.
    limited = settings.model_copy(update={"max_query_cost": 50})
    four = "mutation { " + " ".join(PURCHASE.format(i=i) for i in range(4)) + " }"
    bearer = {"Authorization": f"Bearer {token('ana', 'viewer')}"}

    async with http_to(limited, db_url) as http:
        refused = await http.post("/graphql", json={"query": four}, headers=bearer)
        wallet = await http.post(
            "/graphql", json={"query": "query { wallet { coins } }"}, headers=bearer
        )
        three = "mutation { " + " ".join(PURCHASE.format(i=i) for i in range(3)) + " }"
        accepted = await http.post("/graphql", json={"query": three}, headers=bearer)

    assert refused.json()["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COSTLY",
        "cost": 52,
        "limit": 50,
    }
    assert refused.json()["data"] is None
    assert wallet.json()["data"] == {"wallet": {"coins": "0"}}
    assert accepted.json()["extensions"] == {"cost": {"requested": 39, "limit": 50}}
    assert accepted.json()["data"]["p2"]["wallet"] == {"coins": "1050"}


def test_every_example_in_the_guide_is_under_the_default_limit_but_the_refused_one() -> None:
    schema = build_schema()._schema
    costs = {
        example.line: operation_cost(schema, parse(example.query), None, example.variables)
        for example in examples(GUIDE.read_text())
        if "QUERY_TOO_COSTLY" not in example.reply_text
    }
    refused = [e for e in examples(GUIDE.read_text()) if "QUERY_TOO_COSTLY" in e.reply_text]

    assert all(cost is not None and cost <= 1000 for cost in costs.values()), costs
    assert [operation_cost(schema, parse(e.query), None, {}) for e in refused] == [1005]
