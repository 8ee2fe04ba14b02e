"""Who may call the API and what an abusive or broken request gets back: authentication,
roles, scalars at the edge, query limits, masked failures, production hardening and the request
size limit, all through the real ASGI app over HTTP."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy.engine import URL

from accounting.ledger import balances
from accounting.policy.access import Role
from api.app import MAX_REQUEST_BYTES, create_app
from api.auth import issue_token
from api.settings import Settings
from tests.conftest import GraphQLClient, without_cost

PRODUCTION_SECRET = "a-production-signing-key-that-is-not-the-development-one"
PRODUCTION_SECRETS_KEY = "YS1wcm9kdWN0aW9uLXNlY3JldHMta2V5LW9mLWl0cy0="
"""32 bytes of its own (``a-production-secrets-key-of-its-``): production refuses the default."""

PURCHASE_COINS = """
mutation PurchaseCoins($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) {
    purchase { status coins bonusCoins }
    wallet { coins }
    errors { code field }
  }
}
"""

WALLET = "query { wallet { coins } }"

PROTECTED: list[tuple[str, str, dict[str, Any]]] = [
    ("wallet", WALLET, {}),
    ("transactions", "query { transactions { edges { cursor } } }", {}),
    ("purchases", "query { purchases { edges { cursor } } }", {}),
    ("purchase", 'query { purchase(id: "1") { id } }', {}),
    ("trialBalance", "query { trialBalance { balanced } }", {}),
    ("integrityReport", "query { integrityReport { ok } }", {}),
    ("accountBalance", 'query { accountBalance(code: "platform:coins:issued") { balance } }', {}),
    (
        "purchaseCoins",
        PURCHASE_COINS,
        {
            "input": {
                "idempotencyKey": "security-key-0001",
                "currency": "USD",
                "channel": "WEB",
                "provider": "CARD",
                "paymentToken": "tok_success",
                "packageCode": "coins_350",
            }
        },
    ),
]


def the_only_error(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["data"] is None, reply
    assert len(reply["errors"]) == 1, reply
    error: dict[str, Any] = reply["errors"][0]
    return error


def custom_coins_input(key: str, custom_coins: Any) -> dict[str, Any]:
    return {
        "input": {
            "idempotencyKey": key,
            "currency": "USD",
            "channel": "WEB",
            "provider": "CARD",
            "paymentToken": "tok_success",
            "customCoins": custom_coins,
        }
    }


async def coins_of(gql: GraphQLClient, user: str = "ana") -> str:
    reply = await gql(WALLET, user=user)
    assert "errors" not in reply, reply
    coins: str = reply["data"]["wallet"]["coins"]
    return coins


def settings_for(db_url: URL, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db_url.render_as_string(hide_password=False),
        **overrides,
    )


@asynccontextmanager
async def http_to(settings: Settings, db_url: URL) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to an app built with these settings."""
    app = create_app(settings, db_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test") as http:
        yield http
    await app.state.engine.dispose()


async def post_graphql(
    http: httpx.AsyncClient, query: str, token: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return without_cost(body)


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "query", "variables"), PROTECTED, ids=[p[0] for p in PROTECTED])
async def test_without_a_token_every_protected_operation_is_unauthenticated(
    gql: GraphQLClient, field: str, query: str, variables: dict[str, Any]
) -> None:
    reply = await gql(query, variables)

    assert reply["data"] in (None, {field: None})  # a nullable lookup answers null beside it
    [error] = reply["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert error["message"] == "Sign in: send 'Authorization: Bearer <token>' with this request"
    assert error["path"] == [field]


async def test_the_coin_package_catalog_is_public(gql: GraphQLClient) -> None:
    reply = await gql("query { coinPackages(currency: USD, channel: WEB) { code } }")

    assert "errors" not in reply, reply
    assert len(reply["data"]["coinPackages"]) == 7


def claims(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    found = {
        "sub": "ana",
        "roles": ["viewer"],
        "iss": "coinbooks",
        "aud": "coinbooks",
        "iat": now,
        "exp": now + timedelta(hours=1),
    }
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


def signed(secret: str, **changes: Any) -> str:
    return jwt.encode(claims(**changes), secret, algorithm="HS256")


BAD_AUTHORIZATIONS: list[tuple[str, Callable[[Settings], str], str]] = [
    ("not a jwt", lambda s: "Bearer not-a-token", "The token is not valid: Not enough segments"),
    (
        "wrong scheme",
        lambda s: "Basic YW5hOnNlY3JldA==",
        "Send the token as 'Authorization: Bearer",
    ),
    ("scheme only", lambda s: "Bearer", "Send the token as 'Authorization: Bearer <token>'"),
    (
        "expired",
        lambda s: "Bearer " + issue_token(s, "ana", [Role.VIEWER], ttl=timedelta(seconds=-1)),
        "The token has expired",
    ),
    (
        "wrong key",
        lambda s: "Bearer " + signed("another-key-that-did-not-sign-for-coinbooks"),
        "The token is not valid: Signature verification failed",
    ),
    (
        "wrong audience",
        lambda s: "Bearer " + signed(s.jwt_secret, aud="another-service"),
        "The token is not valid: Audience doesn't match",
    ),
    (
        "wrong issuer",
        lambda s: "Bearer " + signed(s.jwt_secret, iss="someone-else"),
        "The token is not valid: Invalid issuer",
    ),
    (
        "unsigned",
        lambda s: "Bearer " + jwt.encode(claims(), "", algorithm="none"),
        "The token is not valid: The specified alg value is not allowed",
    ),
    (
        "no subject",
        lambda s: "Bearer " + signed(s.jwt_secret, sub=None),
        'The token is not valid: Token is missing the "sub" claim',
    ),
    (
        "unknown role",
        lambda s: "Bearer " + signed(s.jwt_secret, roles=["emperor"]),
        "The token's subject or roles are not valid",
    ),
    (
        "malformed subject",
        lambda s: "Bearer " + signed(s.jwt_secret, sub="ana; DROP TABLE"),
        "The token's subject or roles are not valid",
    ),
]


@pytest.mark.parametrize(
    ("authorization", "message"),
    [(make, message) for _, make, message in BAD_AUTHORIZATIONS],
    ids=[name for name, *_ in BAD_AUTHORIZATIONS],
)
async def test_a_bad_token_is_unauthenticated_and_says_why(
    gql: GraphQLClient,
    settings: Settings,
    authorization: Callable[[Settings], str],
    message: str,
) -> None:
    reply = await gql(WALLET, headers={"Authorization": authorization(settings)})

    error = the_only_error(reply)
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert error["message"].startswith(message), error["message"]


async def test_a_purchase_with_an_expired_token_buys_nothing(
    gql: GraphQLClient, settings: Settings
) -> None:
    expired = issue_token(settings, "ana", [Role.VIEWER], ttl=timedelta(seconds=-1))
    _, query, variables = PROTECTED[-1]

    reply = await gql(query, variables, headers={"Authorization": f"Bearer {expired}"})

    assert the_only_error(reply)["extensions"] == {"code": "UNAUTHENTICATED"}
    assert await coins_of(gql) == "0"


async def test_a_signed_token_is_accepted_whatever_the_case_of_bearer(
    gql: GraphQLClient, settings: Settings
) -> None:
    token = signed(settings.jwt_secret)

    reply = await gql(WALLET, headers={"Authorization": f"bearer {token}"})

    assert reply == {"data": {"wallet": {"coins": "0"}}}


# --- roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "field", "query", "message"),
    [
        (
            ("support",),
            "purchaseCoins",
            PROTECTED[-1][1],
            "buy coins without the viewer or creator",
        ),
        (
            ("finance",),
            "purchaseCoins",
            PROTECTED[-1][1],
            "buy coins without the viewer or creator",
        ),
        (("admin",), "wallet", WALLET, "hold a wallet without the viewer or creator role"),
        ((), "wallet", WALLET, "hold a wallet without the viewer or creator role"),
        (("viewer",), "trialBalance", PROTECTED[4][1], "read the books without the finance role"),
        (("support",), "integrityReport", PROTECTED[5][1], "read the books without the finance"),
    ],
)
async def test_a_token_without_the_role_for_it_is_forbidden(
    gql: GraphQLClient,
    settings: Settings,
    roles: tuple[str, ...],
    field: str,
    query: str,
    message: str,
) -> None:
    variables = PROTECTED[-1][2] if field == "purchaseCoins" else {}
    bearer = issue_token(settings, "ana", [Role(role) for role in roles])

    reply = await gql(query, variables, headers={"Authorization": f"Bearer {bearer}"})

    error = the_only_error(reply)
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert error["message"].startswith(f"You may not {message}")
    assert error["path"] == [field]


# --- scalars at the edge: BigInt ------------------------------------------------------------


async def test_counts_are_sent_as_strings_of_digits(gql: GraphQLClient) -> None:
    reply = await gql(PURCHASE_COINS, custom_coins_input("bigint-out-0001", "100"), user="ana")

    payload = reply["data"]["purchaseCoins"]
    assert payload["purchase"] == {"status": "COMPLETED", "coins": "100", "bonusCoins": "0"}
    assert payload["wallet"] == {"coins": "100"}
    report = await gql(
        "query { integrityReport { entries postings accounts } }", user="fin", roles=("finance",)
    )
    assert "errors" not in report, report
    assert all(
        isinstance(v, str) and v.isdigit() for v in report["data"]["integrityReport"].values()
    )


@pytest.mark.parametrize("custom_coins", ["100", 100, " 100 "], ids=["string", "int", "padded"])
async def test_a_big_int_variable_accepts_a_string_or_an_int(
    gql: GraphQLClient, custom_coins: Any
) -> None:
    reply = await gql(
        PURCHASE_COINS, custom_coins_input("bigint-in-00001", custom_coins), user="ana"
    )

    assert "errors" not in reply, reply
    assert reply["data"]["purchaseCoins"]["purchase"]["coins"] == "100"
    assert await coins_of(gql) == "100"


@pytest.mark.parametrize("literal", ['"100"', "100"], ids=["string", "int"])
async def test_a_big_int_literal_accepts_a_string_or_an_int(
    gql: GraphQLClient, literal: str
) -> None:
    query = (
        'mutation { purchaseCoins(input: {idempotencyKey: "bigint-lit-0001", currency: USD, '
        f'channel: WEB, provider: CARD, paymentToken: "tok_success", customCoins: {literal}}}) '
        "{ purchase { coins } errors { code } } }"
    )

    reply = await gql(query, user="ana")

    assert reply == {"data": {"purchaseCoins": {"purchase": {"coins": "100"}, "errors": []}}}


@pytest.mark.parametrize(
    ("custom_coins", "message_part"),
    [
        ("12.5", "BigInt expects an integer or a string of digits"),
        (12.5, "BigInt expects an integer or a string of digits"),
        ("a hundred", "BigInt expects an integer or a string of digits"),
        (True, "BigInt is an integer, not a boolean"),
        ("99999999999999999999", "BigInt is out of range"),
    ],
)
async def test_a_bad_big_int_variable_is_refused_plainly_and_buys_nothing(
    gql: GraphQLClient, custom_coins: Any, message_part: str
) -> None:
    reply = await gql(
        PURCHASE_COINS, custom_coins_input("bigint-bad-0001", custom_coins), user="ana"
    )

    error = the_only_error(reply)
    assert error["message"].startswith("Variable '$input' has invalid value")
    assert message_part in error["message"]
    assert "extensions" not in error  # a request error, not a masked INTERNAL_ERROR
    assert await coins_of(gql) == "0"


@pytest.mark.parametrize(
    ("literal", "message_part"),
    [
        ("12.5", "BigInt expects an integer or a string of digits"),
        ("true", "BigInt is an integer, not a boolean"),
        ('"99999999999999999999"', "BigInt is out of range"),
    ],
)
async def test_a_bad_big_int_literal_is_refused_plainly_and_buys_nothing(
    gql: GraphQLClient, literal: str, message_part: str
) -> None:
    query = (
        'mutation { purchaseCoins(input: {idempotencyKey: "bigint-lit-0002", currency: USD, '
        f'channel: WEB, provider: CARD, paymentToken: "tok_success", customCoins: {literal}}}) '
        "{ purchase { coins } } }"
    )

    reply = await gql(query, user="ana")

    error = the_only_error(reply)
    assert message_part in error["message"]
    assert "extensions" not in error
    assert await coins_of(gql) == "0"


@pytest.mark.parametrize(
    ("query", "variables", "message_part"),
    [
        (
            "query($first: Int!) { purchases(first: $first) { edges { cursor } } }",
            {"first": "ten"},
            "Int cannot represent non-integer value",
        ),
        (
            "query($asOf: DateTime) { wallet(asOf: $asOf) { coins } }",
            {"asOf": "last tuesday"},
            "Value cannot represent a DateTime",
        ),
        (
            "query($c: Channel!) { coinPackages(currency: USD, channel: $c) { code } }",
            {"c": "TV"},
            "does not exist in 'Channel' enum",
        ),
    ],
    ids=["Int", "DateTime", "enum"],
)
async def test_a_variable_of_the_wrong_type_is_refused_plainly_not_masked(
    gql: GraphQLClient, query: str, variables: dict[str, Any], message_part: str
) -> None:
    reply = await gql(query, variables, user="ana")

    error = the_only_error(reply)
    assert error["message"].startswith("Variable '$")
    assert message_part in error["message"]
    assert "extensions" not in error


# --- query limits --------------------------------------------------------------------------------


async def test_a_query_deeper_than_the_limit_is_refused(
    gql: GraphQLClient,
) -> None:
    nested = "a { " * 11 + "b" + " }" * 11  # 12 levels: deeper than the default 10
    reply = await gql(f"query Deep {{ wallet {{ {nested} }} }}", user="ana")

    assert reply["data"] is None
    assert "'Deep' exceeds maximum operation depth of 10" in [e["message"] for e in reply["errors"]]


async def test_the_depth_limit_is_a_setting_and_refuses_even_valid_fields(
    db_url: URL, token: Callable[..., str]
) -> None:
    # Depth counts from 0 at the root field: purchases 0, edges 1, node 2, id 3.
    at_limit = "query AtLimit { purchases { edges { node { id } } } }"
    too_deep = "query TooDeep { purchases { edges { node { price { amount } } } } }"

    async with http_to(settings_for(db_url, max_query_depth=3), db_url) as http:
        allowed = await post_graphql(http, at_limit, token("ana", "viewer"))
        refused = await post_graphql(http, too_deep, token("ana", "viewer"))

    assert allowed == {"data": {"purchases": {"edges": []}}}
    error = the_only_error(refused)
    assert error["message"] == "'TooDeep' exceeds maximum operation depth of 3"
    assert "extensions" not in error


async def test_more_than_fifteen_aliases_are_refused(gql: GraphQLClient) -> None:
    fifteen = " ".join(f"w{i}: wallet {{ coins }}" for i in range(15))
    sixteen = fifteen + " w15: wallet { coins }"

    allowed = await gql(f"query {{ {fifteen} }}", user="ana")
    refused = await gql(f"query {{ {sixteen} }}", user="ana")

    assert "errors" not in allowed, allowed
    assert len(allowed["data"]) == 15
    error = the_only_error(refused)
    assert error["message"] == "16 aliases found. Allowed: 15"
    assert "extensions" not in error


async def test_a_document_of_more_than_2000_tokens_is_refused_before_parsing(
    gql: GraphQLClient,
) -> None:
    too_long = "query { wallet { " + "coins " * 2000 + "} }"

    reply = await gql(too_long, user="ana")

    error = the_only_error(reply)
    assert error["message"] == (
        "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    )
    assert "extensions" not in error


async def test_the_token_limit_is_a_setting_counted_exactly(
    db_url: URL, token: Callable[..., str]
) -> None:
    # "query { wallet {" and "} }" are 6 tokens: 14 fields make 20 tokens, 15 make 21.
    at_limit = "query { wallet { " + "coins " * 14 + "} }"
    over = "query { wallet { " + "coins " * 15 + "} }"

    async with http_to(settings_for(db_url, max_query_tokens=20), db_url) as http:
        allowed = await post_graphql(http, at_limit, token("ana", "viewer"))
        refused = await post_graphql(http, over, token("ana", "viewer"))

    assert allowed == {"data": {"wallet": {"coins": "0"}}}
    error = the_only_error(refused)
    assert error["message"] == (
        "Syntax Error: Document contains more than 20 tokens. Parsing aborted."
    )


# --- unexpected failures are masked --------------------------------------------------------------


async def test_an_unexpected_failure_is_masked_with_the_request_id_of_the_response(
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken_wallet(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("connection to 10.0.0.7 refused: password for ledger_rw wrong")

    monkeypatch.setattr(balances, "wallet", broken_wallet)

    with caplog.at_level(logging.ERROR, logger="coinbooks.graphql"):
        response = await client.post(
            "/graphql",
            json={"query": "query { wallet { coins } }"},
            headers={"Authorization": f"Bearer {token('ana', 'viewer')}"},
        )

    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    body = response.json()
    error = the_only_error(body)
    assert error["message"] == f"Unexpected error. Request id: {request_id}"
    assert error["extensions"] == {"code": "INTERNAL_ERROR", "requestId": request_id}
    assert error["path"] == ["wallet"]
    assert "10.0.0.7" not in response.text and "RuntimeError" not in response.text
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None and "10.0.0.7" in str(logged[0].exc_info[1])


async def test_a_request_id_sent_by_the_caller_is_echoed_and_names_the_masked_error(
    client: httpx.AsyncClient, token: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_wallet(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(balances, "wallet", broken_wallet)

    response = await client.post(
        "/graphql",
        json={"query": "query { wallet { coins } }"},
        headers={
            "Authorization": f"Bearer {token('ana', 'viewer')}",
            "X-Request-ID": "frontend-trace-42",
        },
    )

    assert response.headers["x-request-id"] == "frontend-trace-42"
    error = the_only_error(response.json())
    assert error["message"] == "Unexpected error. Request id: frontend-trace-42"
    assert error["extensions"]["code"] == "INTERNAL_ERROR"


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    first = await client.post("/graphql", json={"query": WALLET})
    second = await client.post("/graphql", json={"query": WALLET})

    assert first.headers["x-request-id"] != second.headers["x-request-id"]


# --- production and development -----------------------------------------------------------------


async def test_production_refuses_introspection_and_serves_no_graphiql(
    db_url: URL, token: Callable[..., str]
) -> None:
    production = settings_for(
        db_url,
        environment="production",
        jwt_secret=PRODUCTION_SECRET,
        secrets_key=PRODUCTION_SECRETS_KEY,
    )
    production_token = issue_token(production, "ana", [Role.VIEWER])

    async with http_to(production, db_url) as http:
        schema = await post_graphql(http, "query { __schema { queryType { name } } }")
        a_type = await post_graphql(http, 'query { __type(name: "Wallet") { name } }')
        ide = await http.get("/graphql", headers={"Accept": "text/html"})
        ide_script = await http.get("/graphiql/static/graphiql@3.8.3/graphiql.min.js")
        wallet = await post_graphql(http, WALLET, production_token)
        dev_signed = await post_graphql(http, WALLET, token("ana", "viewer"))

    # One error per introspection field asked for: __schema and its queryType; __type.
    assert schema["data"] is None and a_type["data"] is None
    assert [e["message"] for e in schema["errors"] + a_type["errors"]] == [
        "GraphQL introspection has been disabled, but the requested query contained the field "
        f"'{field}'."
        for field in ("__schema", "queryType", "__type")
    ]
    assert ide.status_code == 404
    assert "graphiql" not in ide.text.lower()
    assert ide_script.status_code == 404
    assert wallet == {"data": {"wallet": {"coins": "0"}}}
    error = the_only_error(dev_signed)
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert "Signature verification failed" in error["message"]


async def test_development_serves_graphiql_and_answers_introspection(
    client: httpx.AsyncClient,
) -> None:
    ide = await client.get("/graphql", headers={"Accept": "text/html"})
    schema = await client.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})

    assert ide.status_code == 200
    assert ide.headers["content-type"].startswith("text/html")
    assert "graphiql" in ide.text.lower()
    assert without_cost(schema.json()) == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


async def test_queries_are_not_taken_over_get(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql", params={"query": "{ coinPackages(currency: USD, channel: WEB) { code } }"}
    )

    assert response.status_code == 400
    assert response.text == "queries are not allowed when using GET"


# --- request size ------------------------------------------------------------------------------


def padded_body(size: int) -> bytes:
    """A valid GraphQL request of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    body = json.dumps({"query": "{ coinPackages(currency: USD, channel: WEB) { code } }"})
    return body.encode() + b" " * (size - len(body))


async def test_a_body_of_exactly_64_kib_is_served(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=padded_body(MAX_REQUEST_BYTES),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 200
    assert len(response.json()["data"]["coinPackages"]) == 7


async def test_a_body_over_64_kib_is_refused_with_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=padded_body(MAX_REQUEST_BYTES + 1),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json() == {
        "errors": [
            {"message": "Request body too large", "extensions": {"code": "REQUEST_TOO_LARGE"}}
        ]
    }


async def test_a_chunked_body_over_64_kib_without_a_length_is_refused_with_413(
    client: httpx.AsyncClient,
) -> None:
    body = padded_body(MAX_REQUEST_BYTES + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = await client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"] == {"code": "REQUEST_TOO_LARGE"}
