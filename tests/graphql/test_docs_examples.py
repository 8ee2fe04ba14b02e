"""docs/graphql.md cannot drift from the API: every example in it is run here, in order, in one
fresh database, over HTTP through the real ASGI app, and must give the documented reply.

An example in the guide is a marker line naming the caller, then three fenced blocks:

    <!-- as: ana viewer -->          (user, then roles; "<!-- as: anonymous -->" sends no token)
    ```graphql                        the operation
    ```json                           its variables ({} when none)
    ```json                           the reply

Normalisation, applied to both the documented and the real reply before comparing: values that
the server's clock or the payment provider choose are replaced by a placeholder, provided they
have the expected form. That is the fields ``createdAt``, ``settledAt``, ``postedAt``,
``checkedAt``, ``asOf``, ``startedAt``, ``endedAt``, ``releaseAt``, ``updatedAt``, ``changedAt``,
``refundableUntil`` and ``start`` (an earnings bucket's) when they hold an ISO 8601 instant
with an offset, and ``providerReference`` (a sandbox reference ``sbx_<provider>_<hex>``). Nulls
stay null, and everything else (ids, cursors, amounts, messages, error locations) is compared
exactly: ids come from sequences, which a fresh database and a fixed order make deterministic.

A second factor's secret is random and its codes change every 30 seconds, so the guide cannot
hold them: a ``provisioningUri`` in a reply (``otpauth://totp/Coinbooks:<user>?secret=...``) is
replaced by a placeholder, and its secret kept for that user; an example whose ``input`` has a
``totpCode`` is sent with a code of that user's secret, in place of the documented digits: a
code of a time step of its own, since a code serves once (``tests/payouts/clock.py``).

An example's variables may name a purchase's reference at the payment provider as
"{{providerReference of purchase 7}}" (a settlement report does): it is sent with the real one;
and "{{endCursor above}}" is sent as the ``endCursor`` of the reply before it (a cursor of a
list walked by time holds an instant, which is compared as an instant is: not at all).

Provider webhooks are not GraphQL, but the guide shows them in the same way, and they run in
the same order: a marker line naming the provider, then the event as the provider sends it
and the webhook's answer:

    <!-- webhook: card -->           the provider (the delivery is signed with its secret)
    ```json                           the event; "{{providerReference of purchase 7}}" stands for
    ```json                           that purchase's reference at the provider

To refresh the replies after a deliberate API change, run
``COINBOOKS_WRITE_DOCS=1 .venv/bin/pytest -q tests/graphql/test_docs_examples.py``: it rewrites each
reply block from the real reply (and skips). Review the diff before committing it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from graphql import OperationDefinitionNode, OperationType, build_schema, parse

from accounting.chargebacks.provider_events import sign
from api.settings import DEVELOPMENT_WEBHOOK_SECRET
from schema import sdl
from tests.conftest import GraphQLClient
from tests.payouts.clock import TOTP_CLOCK

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "graphql.md"

EXAMPLE = re.compile(
    r"^<!-- as: (?P<who>[^>]+?) -->\n"
    r"```graphql\n(?P<query>.*?)\n```\n"
    r"```json\n(?P<variables>.*?)\n```\n"
    r"```json\n(?P<reply>.*?)\n```$",
    re.MULTILINE | re.DOTALL,
)
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)
WEBHOOK = re.compile(
    r"^<!-- webhook: (?P<provider>[a-z_]+)(?P<unsigned>, unsigned)? -->\n"
    r"```json\n(?P<event>.*?)\n```\n"
    r"```json\n(?P<reply>.*?)\n```$",
    re.MULTILINE | re.DOTALL,
)
REFERENCE = re.compile(r"\{\{providerReference of purchase (\d+)\}\}")
END_CURSOR = "{{endCursor above}}"
"""In an example's variables: the ``endCursor`` of the example before it."""

CLOCK_FIELDS = frozenset(
    {
        "createdAt",
        "settledAt",
        "postedAt",
        "checkedAt",
        "asOf",
        "startedAt",
        "endedAt",
        "releaseAt",
        "updatedAt",
        "changedAt",
        "refundableUntil",
        "start",
    }
)
PROVIDER_REFERENCE = re.compile(r"^sbx_[a-z_]+_[0-9a-f]{16}$")
PROVISIONING_URI = re.compile(
    r"^otpauth://totp/Coinbooks:[A-Za-z0-9_.-]+\?secret=[A-Z2-7]+&issuer=Coinbooks$"
)


@dataclass(frozen=True)
class Example:
    number: int
    heading: str
    line: int
    user: str | None
    roles: tuple[str, ...]
    query: str
    variables: dict[str, Any]
    reply_text: str
    reply_span: tuple[int, int]

    def __str__(self) -> str:
        who = f"{self.user} {' '.join(self.roles)}" if self.user else "anonymous"
        return f"example {self.number} ({self.heading!r}, line {self.line}, as {who})"


def examples(text: str) -> list[Example]:
    found = []
    for number, match in enumerate(EXAMPLE.finditer(text), start=1):
        who = match["who"].split()
        headings = [h for h in HEADING.finditer(text) if h.start() < match.start()]
        found.append(
            Example(
                number=number,
                heading=headings[-1][1] if headings else "",
                line=text.count("\n", 0, match.start()) + 1,
                user=None if who == ["anonymous"] else who[0],
                roles=tuple(who[1:]),
                query=match["query"],
                variables=json.loads(match["variables"]),
                reply_text=match["reply"],
                reply_span=match.span("reply"),
            )
        )
    return found


@dataclass(frozen=True)
class Delivery:
    """A signed webhook delivery shown in the guide."""

    start: int
    line: int
    provider: str
    signed: bool
    event: str
    reply_text: str
    reply_span: tuple[int, int]

    def __str__(self) -> str:
        return f"webhook delivery to {self.provider} (line {self.line})"


def deliveries(text: str) -> list[Delivery]:
    return [
        Delivery(
            start=match.start(),
            line=text.count("\n", 0, match.start()) + 1,
            provider=match["provider"],
            signed=match["unsigned"] is None,
            event=match["event"],
            reply_text=match["reply"],
            reply_span=match.span("reply"),
        )
        for match in WEBHOOK.finditer(text)
    ]


def end_cursor(reply: Any) -> str | None:
    """The ``endCursor`` of a reply's page, wherever it is in the reply."""
    if isinstance(reply, dict):
        info = reply.get("pageInfo")
        if isinstance(info, dict) and isinstance(info.get("endCursor"), str):
            return str(info["endCursor"])
        reply = list(reply.values())
    if isinstance(reply, list):
        return next((c for c in map(end_cursor, reply) if c is not None), None)
    return None


def instant_cursor(value: str) -> str | None:
    """A cursor of a list walked by time ("kind:microseconds:number", base64) with its instant
    left out, as an instant is: what the rest of it names does not depend on the clock."""
    try:
        kind, micros, number = base64.urlsafe_b64decode(value.encode()).decode().split(":")
    except ValueError:
        return None
    return f"<{kind} cursor at an instant, {number}>" if micros.isdigit() else None


async def with_references(gql: GraphQLClient, text: str, where: object) -> str:
    """``text`` with each "{{providerReference of purchase N}}" replaced by that reference."""
    for number in set(REFERENCE.findall(text)):
        found = await gql(
            "query P($id: ID!) { purchase(id: $id) { providerReference } }",
            {"id": number},
            user="sue",
            roles=("support",),
        )
        assert found.get("data") and found["data"]["purchase"], f"{where}: no purchase {number}"
        reference = found["data"]["purchase"]["providerReference"]
        text = text.replace(f"{{{{providerReference of purchase {number}}}}}", reference)
    return text


async def deliver(gql: GraphQLClient, delivery: Delivery) -> dict[str, Any]:
    """Send the delivery's event to its webhook, signed now, with references filled in."""
    event = await with_references(gql, delivery.event, delivery)
    body = json.dumps(json.loads(event)).encode()
    secret = DEVELOPMENT_WEBHOOK_SECRET.format(provider=delivery.provider)
    signature = sign(secret, int(time.time()), body) if delivery.signed else None
    response = await gql.http.post(
        f"/webhooks/{delivery.provider}",
        content=body,
        headers={"coinbooks-signature": signature} if signature else {},
    )
    answer: dict[str, Any] = response.json()
    return answer


def is_instant(value: str) -> bool:
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def normalised(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: normalised(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    if key in CLOCK_FIELDS and isinstance(value, str) and is_instant(value):
        return "<instant>"
    if key in {"cursor", "endCursor"} and isinstance(value, str) and instant_cursor(value):
        return instant_cursor(value)
    if key == "providerReference" and isinstance(value, str) and PROVIDER_REFERENCE.match(value):
        return "<provider reference>"
    if key == "provisioningUri" and isinstance(value, str) and PROVISIONING_URI.match(value):
        return "<provisioning uri>"
    return value


def provisioning_uris(value: Any) -> list[str]:
    """Every provisioning URI anywhere in a reply."""
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "provisioningUri" and isinstance(v, str)]
        return found + [uri for v in value.values() for uri in provisioning_uris(v)]
    if isinstance(value, list):
        return [uri for v in value for uri in provisioning_uris(v)]
    return []


def with_current_code(variables: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """The variables, with a fresh code of ``secret`` as the input's ``totpCode``."""
    given = variables.get("input")
    if secret is None or not isinstance(given, dict) or "totpCode" not in given:
        return variables
    return {**variables, "input": {**given, "totpCode": TOTP_CLOCK.next_code(secret)}}


def root_fields(query: str) -> set[tuple[str, str]]:
    """(operation type, field) of every root field an operation selects."""
    found = set()
    for definition in parse(query).definitions:
        assert isinstance(definition, OperationDefinitionNode)
        for selection in definition.selection_set.selections:
            name = getattr(selection, "name", None)
            if name is not None and not name.value.startswith("__"):
                found.add((definition.operation.value, name.value))
    return found


def pretty(value: Any, indent: int = 0, used: int = 0) -> str:
    """JSON as the guide prints it: anything that fits in 96 columns stays on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or not value or indent + used + len(flat) <= 96:
        return flat
    inner = " " * (indent + 2)
    if isinstance(value, dict):
        items = [
            f"{inner}{json.dumps(k)}: {pretty(v, indent + 2, len(json.dumps(k)) + 2)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [inner + pretty(v, indent + 2) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def test_every_graphql_block_in_the_guide_is_a_checked_example() -> None:
    text = GUIDE.read_text()

    found = examples(text)

    assert len(found) >= 20
    assert text.count("```graphql\n") == len(found), "a graphql block that is not an example"
    assert text.count("<!-- as:") == len(found), "a marker not followed by its three blocks"


def test_the_guide_has_an_example_of_every_query_and_mutation() -> None:
    schema = build_schema(sdl())
    assert schema.query_type is not None and schema.mutation_type is not None
    operations = {(OperationType.QUERY.value, name) for name in schema.query_type.fields} | {
        (OperationType.MUTATION.value, name) for name in schema.mutation_type.fields
    }

    shown = set().union(*(root_fields(e.query) for e in examples(GUIDE.read_text())))

    assert operations - shown == set()


async def test_every_example_in_the_guide_gives_the_documented_reply(gql: GraphQLClient) -> None:
    text = GUIDE.read_text()
    replies: list[tuple[Example | Delivery, dict[str, Any]]] = []
    secrets: dict[str | None, str] = {}
    steps: list[Example | Delivery] = [*examples(text), *deliveries(text)]

    for step in sorted(steps, key=lambda step: step.reply_span[0]):
        if isinstance(step, Delivery):
            replies.append((step, await deliver(gql, step)))
            continue
        example = step
        variables = with_current_code(example.variables, secrets.get(example.user))
        given = json.dumps(variables)
        if END_CURSOR in given:
            given = given.replace(END_CURSOR, end_cursor(replies[-1][1]) or "")
        variables = json.loads(await with_references(gql, given, example))
        reply = await gql(example.query, variables, user=example.user, roles=example.roles)
        replies.append((example, reply))
        for uri in provisioning_uris(reply):
            secrets[example.user] = pyotp.parse_uri(uri).secret

    if os.environ.get("COINBOOKS_WRITE_DOCS") == "1":
        for example, reply in reversed(replies):
            start, end = example.reply_span
            text = text[:start] + pretty(reply) + text[end:]
        GUIDE.write_text(text)
        pytest.skip(f"rewrote {len(replies)} replies in {GUIDE}")

    drifted = [
        f"{example}:\n  documented {json.dumps(normalised(json.loads(example.reply_text)))}\n"
        f"  real       {json.dumps(normalised(reply))}"
        for example, reply in replies
        if normalised(json.loads(example.reply_text)) != normalised(reply)
    ]
    assert not drifted, "docs/graphql.md drifted from the API:\n" + "\n".join(drifted)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"createdAt": "2026-11-25T15:51:45.087112+00:00"}, {"createdAt": "<instant>"}),
        ({"settledAt": None}, {"settledAt": None}),
        ({"createdAt": "yesterday"}, {"createdAt": "yesterday"}),
        (
            {"cursor": "bW92ZW1lbnQ6MTc5NjQ3NTg4NDU0NDA2MTo0"},  # movement:1796475884544061:4
            {"cursor": "<movement cursor at an instant, 4>"},
        ),
        ({"endCursor": "cHVyY2hhc2U6Mw=="}, {"endCursor": "cHVyY2hhc2U6Mw=="}),  # purchase:3
        ({"asOf": "2026-01-01T00:00:00"}, {"asOf": "2026-01-01T00:00:00"}),  # no offset: kept
        (
            {"providerReference": "sbx_card_0fba33a50d45a7eb"},
            {"providerReference": "<provider reference>"},
        ),
        ({"providerReference": "ch_live_123"}, {"providerReference": "ch_live_123"}),
        (
            {"id": "7", "coins": "350", "cursor": "cHVyY2hhc2U6Nw=="},
            {"id": "7", "coins": "350", "cursor": "cHVyY2hhc2U6Nw=="},
        ),
        ([{"postedAt": "2026-11-25T15:51:45+00:00"}], [{"postedAt": "<instant>"}]),
        (
            {"releaseAt": "2026-12-02T15:51:45+00:00", "endedAt": None},
            {"releaseAt": "<instant>", "endedAt": None},
        ),
        ({"start": "2026-11-25T00:00:00+00:00"}, {"start": "<instant>"}),
        ({"start": "Cooking with Bo"}, {"start": "Cooking with Bo"}),
        (
            {
                "provisioningUri": "otpauth://totp/Coinbooks:bo?secret=JBSWY3DPEHPK3PXP&issuer=Coinbooks"
            },
            {"provisioningUri": "<provisioning uri>"},
        ),
        ({"provisioningUri": "https://example.com"}, {"provisioningUri": "https://example.com"}),
    ],
)
def test_normalisation_hides_only_clock_and_provider_values_of_the_expected_form(
    value: Any, expected: Any
) -> None:
    assert normalised(value) == expected
