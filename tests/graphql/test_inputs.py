"""Every input gets a typed error or a 4xx, never an internal one: strings with control
characters in every String argument of the committed SDL (literal and variable, at any depth of
an input), instants out of range or without an offset, bodies that are not UTF-8 or nest too
deep. None of them leaves a traceback in the error log. All through the real ASGI app."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    get_named_type,
    is_leaf_type,
)
from graphql import (
    build_schema as schema_from_sdl,
)

from api.app import MAX_JSON_DEPTH
from schema import SDL_PATH
from tests.conftest import GraphQLClient

ALL_ROLES = ("viewer", "creator", "support", "finance", "admin")
NUL = "a\u0000b"

SDL: GraphQLSchema = schema_from_sdl(SDL_PATH.read_text())

SAMPLE_SCALARS: dict[str, Any] = {
    "String": "sample-0001",
    "ID": "1",
    "Int": 1,
    "Float": 1.0,
    "Boolean": True,
    "BigInt": "1",
    "DateTime": "2026-01-01T00:00:00Z",
    "Date": "2026-01-01",
    "JSON": {},
}


def sample(type_: GraphQLInputType, nul_at: tuple[str, ...] | None = None) -> Any:
    """A value of ``type_`` that passes coercion, with ``NUL`` at the input path ``nul_at``
    (``()``: this value itself; ``None``: nowhere)."""
    if isinstance(type_, GraphQLNonNull):
        return sample(type_.of_type, nul_at)
    if isinstance(type_, GraphQLList):
        return [sample(type_.of_type, nul_at)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLScalarType):
        return NUL if nul_at == () else SAMPLE_SCALARS[type_.name]
    assert isinstance(type_, GraphQLInputObjectType)
    value: dict[str, Any] = {}
    for name, field in type_.fields.items():
        if nul_at and nul_at[0] == name:
            value[name] = sample(field.type, nul_at[1:])
        elif isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined:
            value[name] = sample(field.type)
    return value


def string_paths(
    type_: GraphQLInputType, seen: frozenset[str] = frozenset()
) -> Iterator[tuple[str, ...]]:
    """The paths to every String inside an argument of ``type_`` (() when it is one)."""
    named = get_named_type(type_)
    if isinstance(named, GraphQLScalarType) and named.name == "String":
        yield ()
    elif isinstance(named, GraphQLInputObjectType) and named.name not in seen:
        for name, field in named.fields.items():
            for path in string_paths(field.type, seen | {named.name}):
                yield (name, *path)


@dataclass(frozen=True)
class StringArgument:
    operation: str
    field: str
    path: tuple[str, ...]
    query: str
    variables: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.field}({'.'.join(self.path)})"


def _request(
    operation: str, name: str, field: GraphQLField, target: str, path: tuple[str, ...]
) -> StringArgument:
    chosen: dict[str, GraphQLArgument] = {
        arg_name: arg
        for arg_name, arg in field.args.items()
        if arg_name == target
        or (isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined)
    }
    declared = ", ".join(f"${a}: {arg.type}" for a, arg in chosen.items())
    passed = ", ".join(f"{a}: ${a}" for a in chosen)
    selection = "" if is_leaf_type(get_named_type(field.type)) else " { __typename }"
    query = f"{operation}({declared}) {{ {name}({passed}){selection} }}"
    variables = {
        a: sample(arg.type, path[1:] if a == target else None) for a, arg in chosen.items()
    }
    return StringArgument(operation, name, path, query, variables)


def every_string_argument() -> list[StringArgument]:
    found: list[StringArgument] = []
    roots: list[tuple[str, GraphQLObjectType | None]] = [
        ("query", SDL.query_type),
        ("mutation", SDL.mutation_type),
    ]
    for operation, root in roots:
        assert root is not None
        for name, field in root.fields.items():
            for arg_name, arg in field.args.items():
                for path in string_paths(arg.type):
                    found.append(_request(operation, name, field, arg_name, (arg_name, *path)))
    return found


STRING_ARGUMENTS = every_string_argument()


def test_the_table_covers_the_strings_the_review_named() -> None:
    named = {argument.id for argument in STRING_ARGUMENTS}
    assert {
        "accountBalance(code)",
        "setKycVerified(input.reason)",
        "markPayoutPaid(input.providerReference)",
    } <= named
    assert len(STRING_ARGUMENTS) >= 12


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert logged == [], [r.getMessage() for r in logged]


def bad_input_error(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["data"] is None, reply
    (error,) = reply["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    return dict(error)


async def test_a_nul_byte_in_any_string_argument_is_bad_user_input_naming_the_field(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    """One request per String argument of the SDL (one database for them all: none of them
    may change anything), as the only fault in a request that is otherwise valid."""
    caplog.set_level(logging.INFO)
    wrong: dict[str, Any] = {}

    for argument in STRING_ARGUMENTS:
        reply = await gql(argument.query, argument.variables, user="ana", roles=ALL_ROLES)
        errors = reply.get("errors") or [{}]
        extensions = errors[0].get("extensions", {})
        refused = (
            reply.get("data") is None and len(errors) == 1 and "U+0000" in errors[0]["message"]
        )
        if not refused or extensions != {
            "code": "BAD_USER_INPUT",
            "field": ".".join(argument.path),
        }:
            wrong[argument.id] = reply

    assert wrong == {}
    no_tracebacks(caplog)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ('query { accountBalance(code: "a\\u0000b") { balance } }', "code"),
        (
            'mutation { setKycVerified(input: {userId: "bo", verified: true, '
            'reason: "checked\\u0007"}) { errors { code } } }',
            "input.reason",
        ),
        (
            'mutation { markPayoutPaid(input: {payoutId: "1", idempotencyKey: "paid-key-0001", '
            'providerReference: "ref\\u001b[0m"}) { errors { code } } }',
            "input.providerReference",
        ),
    ],
    ids=["NUL", "bell", "escape"],
)
async def test_a_literal_string_with_a_control_character_is_refused_naming_the_field(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture, query: str, field: str
) -> None:
    reply = await gql(query, user="ana", roles=ALL_ROLES)

    assert bad_input_error(reply)["extensions"]["field"] == field
    no_tracebacks(caplog)


async def test_a_lone_surrogate_in_a_variable_is_refused_naming_the_field(
    client: httpx.AsyncClient, token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "query": "mutation($i: SetKycVerifiedInput!) "
        "{ setKycVerified(input: $i) { errors { code } } }",
        "variables": {"i": {"userId": "bo", "verified": True, "reason": "checked \ud800"}},
    }
    response = await raw_post(client, token, *ALL_ROLES)(json.dumps(body).encode())  # \\ud800

    assert response.status_code == 200
    assert bad_input_error(response.json())["extensions"]["field"] == "input.reason"
    no_tracebacks(caplog)


async def test_a_reason_over_several_lines_is_a_clean_string(gql: GraphQLClient) -> None:
    reply = await gql(
        "query($c: String!) { accountBalance(code: $c) { balance } }",
        {"c": "no such\taccount\r\n"},
        user="ana",
        roles=("finance",),
    )

    assert reply == {"data": {"accountBalance": None}}  # taken as is, and no such account


# --- instants ------------------------------------------------------------------------------------

OUT_OF_RANGE = "Instants run from 1970-01-01T00:00:00Z to before 3000-01-01"


@pytest.mark.parametrize(
    ("query", "variables", "message_part"),
    [
        (
            'query { trialBalance(asOf: "0001-01-01T00:00:00+14:00") { balanced } }',
            {},
            OUT_OF_RANGE,
        ),
        (
            "query($t: DateTime) { wallet(asOf: $t) { coins } }",
            {"t": "9999-12-31T23:59:59-14:00"},
            OUT_OF_RANGE,
        ),
        (
            "query($t: DateTime) { earningsOverTime(to: $t) { start } }",
            {"t": "0001-01-01T00:00:00Z"},
            OUT_OF_RANGE,
        ),
        (
            "query($t: DateTime) { trialBalance(asOf: $t) { balanced } }",
            {"t": "1969-12-31T23:59:59.999999Z"},
            OUT_OF_RANGE,
        ),
        (
            "query($t: DateTime) { trialBalance(asOf: $t) { balanced } }",
            {"t": "3000-01-01T00:00:00Z"},
            OUT_OF_RANGE,
        ),
        (
            "query($t: DateTime) { trialBalance(asOf: $t) { balanced } }",
            {"t": "2026-12-05T09:00:00"},
            "Give its offset",
        ),
        (
            'mutation { recogniseBreakage(input: {asOf: "0001-01-01", idempotencyKey: '
            '"breakage-key-0001"}) { errors { code } } }',
            {},
            "Dates run from 1970-01-01 to 2999-12-31",
        ),
    ],
    ids=[
        "year 1 +14",
        "year 9999 -14",
        "earnings to year 1",
        "before 1970",
        "3000",
        "no offset",
        "date",
    ],
)
async def test_an_instant_out_of_range_or_without_offset_is_refused_plainly(
    gql: GraphQLClient,
    caplog: pytest.LogCaptureFixture,
    query: str,
    variables: dict[str, Any],
    message_part: str,
) -> None:
    reply = await gql(query, variables, user="ana", roles=ALL_ROLES)

    assert reply["data"] is None, reply
    (error,) = reply["errors"]
    assert message_part in error["message"]
    assert error.get("extensions", {}).get("code") != "INTERNAL_ERROR"
    no_tracebacks(caplog)


async def test_the_range_includes_its_first_and_last_instants(gql: GraphQLClient) -> None:
    query = "query($t: DateTime) { trialBalance(asOf: $t) { balanced } }"
    for instant in (
        "1970-01-01T00:00:00Z",
        "2999-12-31T23:59:59.999999Z",
        "1970-01-01T01:00:00+01:00",
    ):
        reply = await gql(query, {"t": instant}, user="ana", roles=("finance",))
        assert reply["data"] == {"trialBalance": {"balanced": True}}, (instant, reply)


# --- the request body ----------------------------------------------------------------------------


def raw_post(
    client: httpx.AsyncClient, token: Callable[..., str], *roles: str
) -> Callable[[bytes], Any]:
    headers = {
        "Authorization": f"Bearer {token('ana', *roles)}",
        "Content-Type": "application/json",
    }
    return lambda body: client.post("/graphql", content=body, headers=headers)


async def test_a_body_that_is_not_utf8_is_refused_with_400(
    client: httpx.AsyncClient, token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    response = await raw_post(client, token)(b'{"query": "{ wallet { coins } }", "x": "\xff"}')

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "MALFORMED_REQUEST"
    no_tracebacks(caplog)


async def test_a_body_nested_20000_deep_is_refused_with_400(
    client: httpx.AsyncClient, token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    deep = b"[" * 20_000 + b"]" * 20_000
    response = await raw_post(client, token)(
        b'{"query": "{ wallet { coins } }", "x": ' + deep + b"}"
    )

    assert response.status_code == 400
    assert "deeper than 32" in response.json()["errors"][0]["message"]
    no_tracebacks(caplog)


async def test_a_body_at_the_depth_limit_is_served(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    inner = MAX_JSON_DEPTH - 2  # the body's object and "variables" are two levels
    nested = "[" * inner + "]" * inner
    body = f'{{"query": "{{ wallet {{ coins }} }}", "variables": {{"x": {nested}}}}}'
    brackets_in_a_string = '"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["'
    body = body.replace('"x"', f'{brackets_in_a_string}: 1, "x"')

    response = await raw_post(client, token)(body.encode())

    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"wallet": {"coins": "0"}}
