"""Who may call what, generated from the committed SDL: every query, mutation and subscription,
called with no token and as each role (alone, then all of them at once), over HTTP or the
websocket, held to the one table of schema/authorization.py. Arguments are built from the SDL's
types with placeholder values that pass input validation; whatever the call then does (NOT_FOUND,
a payload error, a result) is the field's business: the test asks only whether the gate let the
caller through. The docs' Roles section is checked against the same table."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    is_leaf_type,
    is_required_argument,
    is_required_input_field,
)
from sqlalchemy.engine import URL
from websockets.exceptions import ConnectionClosed

from accounting.policy.access import Role
from api.settings import Settings
from schema import SDL_PATH
from schema.authorization import (
    DOCS_BEGIN,
    DOCS_END,
    ROLES,
    SOMEONE_ELSE,
    WHO_MAY,
    Access,
    Kind,
    roles_markdown,
)
from tests.conftest import GraphQLClient
from tests.gifts.test_live_gifts import Served, Viewer, serving, websocket

DOCS = Path(__file__).parents[2] / "docs" / "graphql.md"
SDL: GraphQLSchema = build_schema(SDL_PATH.read_text())
REFUSALS = {"FORBIDDEN", "UNAUTHENTICATED", "INTERNAL_ERROR"}

_keys = itertools.count(1)

Caller = tuple[str, tuple[str, ...]] | None
"""A user and their roles, or None for no token."""


def callers() -> Iterator[tuple[str, Caller]]:
    """No token, each role alone, then every role in one token."""
    yield "no token", None
    for role in ROLES:
        yield role.value, (f"{role.value}-1", (role.value,))
    yield "every role", ("every-1", tuple(role.value for role in ROLES))


def expected_through(access: Access, caller: Caller, *, naming_another: bool) -> bool:
    """Whether the table lets this caller through (for one's own, or naming another user)."""
    if caller is None:
        return access.admits(None)
    roles = [Role(role) for role in caller[1]]
    if naming_another:
        return any(access.admits_for_another(role) for role in roles)
    return any(access.admits(role) for role in roles)


# --- placeholder arguments from the SDL ------------------------------------------------------

STRINGS = {
    "currency": "USD",
    "code": "platform:coins:issued",
    "month": "2026-01",
    "totpCode": "000000",
    "paymentToken": "tok_placeholder",
    "userId": SOMEONE_ELSE,
    "report": "placeholder",
}
INSTANTS = {"from": "2026-01-01T00:00:00+00:00", "to": "2026-02-01T00:00:00+00:00"}


def placeholder(name: str, of_type: GraphQLInputType) -> Any:
    """A value of ``of_type`` for an argument or input field called ``name``."""
    if isinstance(of_type, GraphQLNonNull):
        return placeholder(name, of_type.of_type)
    if isinstance(of_type, GraphQLList):
        return [placeholder(name, of_type.of_type)]
    if isinstance(of_type, GraphQLEnumType):
        return next(iter(of_type.values))
    if isinstance(of_type, GraphQLInputObjectType):
        fields = of_type.fields.items()
        return {n: placeholder(n, f.type) for n, f in fields if is_required_input_field(f)}
    scalar = of_type.name
    if name == "idempotencyKey":
        return f"authorization-key-{next(_keys):06d}"
    if scalar == "String":
        return STRINGS.get(name, "placeholder")
    if scalar == "DateTime":
        return INSTANTS.get(name, "2026-01-01T00:00:00+00:00")
    return {"Int": 1, "BigInt": "1", "ID": "1", "Boolean": False, "Date": "2026-01-01"}[scalar]


def subject_value(argument: str, user: str) -> str:
    return f"user:{user}:coins" if argument == "accountCode" else user


def request_for(
    type_name: str, name: str, field: GraphQLField, subject: str | None
) -> tuple[str, dict[str, Any]]:
    """A document calling ``name`` with its required arguments (and the WHOSE argument naming
    ``subject``, when given), and its variables."""
    argument = WHO_MAY[type_name][name].argument
    variables: dict[str, Any] = {}
    declared: list[str] = []
    for arg_name, arg in field.args.items():
        if arg_name == argument and subject is not None:
            variables[arg_name] = subject_value(arg_name, subject)
        elif is_required_argument(arg):
            variables[arg_name] = placeholder(arg_name, arg.type)
        else:
            continue
        declared.append(f"${arg_name}: {arg.type}")
    operation = {"Query": "query", "Mutation": "mutation", "Subscription": "subscription"}
    header = f"({', '.join(declared)})" if declared else ""
    call = ", ".join(f"{n}: ${n}" for n in variables)
    selection = field.type
    while isinstance(selection, GraphQLNonNull | GraphQLList):
        selection = selection.of_type
    body = "" if is_leaf_type(selection) else " { __typename }"
    called = f"{name}({call})" if call else name
    return f"{operation[type_name]} Call{header} {{ {called}{body} }}", variables


def calls(type_name: str) -> Iterator[tuple[str, Access, Caller, bool, str, dict[str, Any]]]:
    """Every cell of one root type: field, its access, the caller, whether the call names
    another user, and the request."""
    root = SDL.get_type(type_name)
    assert isinstance(root, GraphQLObjectType)
    for name, field in root.fields.items():
        access = WHO_MAY[type_name][name]
        for _, caller in callers():
            own = caller[0] if caller is not None and access.argument == "accountCode" else None
            yield name, access, caller, False, *request_for(type_name, name, field, own)
            if access.kind is Kind.WHOSE and caller is not None:
                yield name, access, caller, True, *request_for(type_name, name, field, SOMEONE_ELSE)


def verdict(
    errors: list[dict[str, Any]], name: str, access: Access, caller: Caller, naming: bool
) -> str | None:
    """What is wrong with a reply, if anything."""
    codes = [error.get("extensions", {}).get("code") for error in errors]
    if expected_through(access, caller, naming_another=naming):
        refused = [code for code in codes if code in REFUSALS]
        return f"let through by the table, answered {refused}" if refused else None
    wanted = "UNAUTHENTICATED" if caller is None else "FORBIDDEN"
    if codes != [wanted] or errors[0].get("path") not in ([name], None):
        return f"refused by the table ({wanted}), answered {codes}"
    return None


def who(caller: Caller, naming: bool) -> str:
    if caller is None:
        return "no token"
    return "+".join(caller[1]) + (" naming another user" if naming else "")


async def check_root(gql: GraphQLClient, type_name: str) -> tuple[int, list[str]]:
    wrong: list[str] = []
    count = 0
    for name, access, caller, naming, query, variables in calls(type_name):
        user, roles = caller if caller is not None else (None, ("viewer",))
        reply = await gql(query, variables, user=user, roles=roles)
        count += 1
        problem = verdict(reply.get("errors", []), name, access, caller, naming)
        if problem:
            wrong.append(f"{name} as {who(caller, naming)}: {problem}: {reply.get('errors')}")
    return count, wrong


# --- the table covers the schema --------------------------------------------------------------


def test_every_root_field_of_the_committed_schema_is_in_the_table() -> None:
    for type_name, fields in WHO_MAY.items():
        root = SDL.get_type(type_name)
        assert isinstance(root, GraphQLObjectType), type_name
        assert set(root.fields) - set(fields) == set(), f"{type_name} fields not in the table"
        assert set(fields) - set(root.fields) == set(), f"{type_name} table rows not in the SDL"
    assert {SDL.query_type, SDL.mutation_type, SDL.subscription_type} == {
        SDL.get_type(name) for name in WHO_MAY
    }


def test_the_table_names_only_arguments_the_fields_have() -> None:
    for type_name, fields in WHO_MAY.items():
        root = SDL.get_type(type_name)
        assert isinstance(root, GraphQLObjectType)
        for name, access in fields.items():
            if access.kind is Kind.WHOSE:
                assert access.argument in root.fields[name].args, name


# --- every field, every role, over HTTP --------------------------------------------------------


async def test_every_query_answers_every_role_as_the_table_says(gql: GraphQLClient) -> None:
    count, wrong = await check_root(gql, "Query")

    assert wrong == [], "\n".join(wrong)
    assert count == 7 * len(WHO_MAY["Query"]) + 6 * sum(
        a.kind is Kind.WHOSE for a in WHO_MAY["Query"].values()
    )


async def test_every_mutation_answers_every_role_as_the_table_says(gql: GraphQLClient) -> None:
    count, wrong = await check_root(gql, "Mutation")

    assert wrong == [], "\n".join(wrong)
    assert count == 7 * len(WHO_MAY["Mutation"])


async def subscribe(
    served: Served,
    caller: Caller,
    query: str,
    variables: dict[str, Any],
    token: Callable[..., str],
) -> list[dict[str, Any]]:
    """The errors a subscription's first answer carries. A websocket without a token is closed
    at connection_init (4403), before any subscription: that is its UNAUTHENTICATED."""
    async with websocket(served) as ws:
        client = Viewer(ws)
        auth = {} if caller is None else {"Authorization": f"Bearer {token(caller[0], *caller[1])}"}
        await client.send({"type": "connection_init", "payload": auth})
        try:
            assert await client.receive() == {"type": "connection_ack"}
        except ConnectionClosed as closed:
            assert caller is None and closed.rcvd is not None and closed.rcvd.code == 4403
            return [{"extensions": {"code": "UNAUTHENTICATED"}}]
        payload = {"query": query, "variables": variables}
        await client.send({"id": "1", "type": "subscribe", "payload": payload})
        message = await client.receive()
    payload = message["payload"]
    errors: list[dict[str, Any]] = (
        payload if message["type"] == "error" else payload.get("errors", [])
    )
    return errors


async def test_every_subscription_answers_every_role_as_the_table_says(
    settings: Settings, db_url: URL, token: Callable[..., str]
) -> None:
    wrong: list[str] = []
    async with serving(settings, db_url) as served:
        for name, access, caller, naming, query, variables in calls("Subscription"):
            errors = await subscribe(served, caller, query, variables, token)
            problem = verdict(errors, name, access, caller, naming)
            if problem:
                wrong.append(f"{name} as {who(caller, naming)}: {problem}: {errors}")

    assert wrong == [], "\n".join(wrong)


# --- objects looked up by id: seen by whom the table says, else as if missing -----------------

OBJECT_LOOKUPS = {
    "purchase": ("purchase", "query Q($id: ID!) { purchase(id: $id) { id } }"),
    "refundCheck": (
        "purchase",
        "query Q($id: ID!) { refundCheck(purchaseId: $id) { refundable } }",
    ),
    "streamGifts": (
        "stream",
        "query Q($id: ID!) { streamGifts(streamId: $id) { edges { cursor } } }",
    ),
    "streamTotals": ("stream", "query Q($id: ID!) { streamTotals(streamId: $id) { giftCount } }"),
}
MISSING_ID = "999999"


async def objects_of_another_user(gql: GraphQLClient) -> dict[str, str]:
    """A purchase and a stream of SOMEONE_ELSE: their ids."""
    bought = await gql(
        "mutation B($input: PurchaseCoinsInput!) { purchaseCoins(input: $input) "
        "{ purchase { id } errors { code } } }",
        {
            "input": {
                "idempotencyKey": "authorization-object-0001",
                "currency": "USD",
                "channel": "WEB",
                "provider": "CARD",
                "paymentToken": "tok_success",
                "packageCode": "coins_350",
            }
        },
        user=SOMEONE_ELSE,
        roles=("viewer",),
    )
    started = await gql(
        "mutation S($input: StartStreamInput!) { startStream(input: $input) "
        "{ stream { id } errors { code } } }",
        {"input": {"title": "a stream of someone else"}},
        user=SOMEONE_ELSE,
        roles=("creator",),
    )
    assert bought["data"]["purchaseCoins"]["errors"] == [], bought
    assert started["data"]["startStream"]["errors"] == [], started
    return {
        "purchase": bought["data"]["purchaseCoins"]["purchase"]["id"],
        "stream": started["data"]["startStream"]["stream"]["id"],
    }


def codes_of(reply: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in reply.get("errors", [])]


async def test_an_object_by_id_is_seen_by_the_roles_the_table_says_and_else_is_missing(
    gql: GraphQLClient,
) -> None:
    ids = await objects_of_another_user(gql)
    # payout, payoutMethod and gift: seen by their owners and others in test_graphql_nodes.py
    assert set(OBJECT_LOOKUPS) == {
        name for name, access in WHO_MAY["Query"].items() if access.kind is Kind.OBJECT
    } - {"payout", "payoutMethod", "gift"}
    wrong: list[str] = []
    for name, (kind, query) in OBJECT_LOOKUPS.items():
        access = WHO_MAY["Query"][name]
        for role in ROLES:
            user, roles = f"{role.value}-1", (role.value,)
            found = await gql(query, {"id": ids[kind]}, user=user, roles=roles)
            missing = await gql(query, {"id": MISSING_ID}, user=user, roles=roles)
            seen = found.get("errors") is None and found["data"][name] is not None
            if access.sees(role) == "any" and not seen:
                wrong.append(f"{name} as {role}: another user's {kind} not seen: {found}")
            if access.sees(role) != "any" and (seen or codes_of(found) != codes_of(missing)):
                wrong.append(f"{name} as {role}: {found} is not answered as {missing}")

    assert wrong == [], "\n".join(wrong)


# --- the docs say the same ---------------------------------------------------------------------


def docs_roles_section() -> str:
    text = DOCS.read_text()
    return text.split("\n## Roles\n", 1)[1].split("\n## ", 1)[0]


def test_the_docs_table_of_who_may_call_what_is_the_generated_one() -> None:
    section = docs_roles_section()
    begin, end = section.index(DOCS_BEGIN), section.index(DOCS_END) + len(DOCS_END)

    assert section[begin:end] == roles_markdown(), (
        "docs/graphql.md's table differs: replace it with `python -m schema.authorization`"
    )


def test_each_field_the_docs_roles_name_is_one_the_role_may_call() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (.*) \|$", docs_roles_section(), re.MULTILINE)
    fields = {name: access for table in WHO_MAY.values() for name, access in table.items()}
    named = 0
    assert {role for role, _ in rows} == {role.value for role in ROLES}
    for role_name, may in rows:
        role = Role(role_name)
        for name in re.findall(r"`(\w+)`", may):
            if name in fields:
                named += 1
                access = fields[name]
                assert access.admits(role) or access.admits_for_another(role), (role, name)
    assert named >= 15
