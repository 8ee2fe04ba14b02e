"""A fuzz run of the committed SDL: schemathesis generates queries and mutations of every root
field (valid ones, and ones the schema refuses), each sent over HTTP to the real ASGI app
without a token, as each role and as all of them. Whatever comes, the answer is never a 5xx and
never an ``INTERNAL_ERROR``: every input gets a typed error or a 4xx.

The run is seeded (derandomized: the same cases every run) and bounded: ``EXAMPLES_PER_FIELD``
cases for each root field, about a minute against one database."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta, timezone
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as run_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.graphql import nodes
from sqlalchemy.engine import URL

from accounting.policy.access import Role
from api.app import create_app
from api.auth import issue_token
from api.settings import Settings
from schema import SDL_PATH

EXAMPLES_PER_FIELD = 8
"""Cases for each root field, valid and refused together."""
CALLERS: tuple[tuple[Role, ...], ...] = (
    (),
    *((role,) for role in Role),
    tuple(Role),
)
"""No token, each role alone, and every role at once."""

NASTY_STRINGS = ("a\u0000b", "ref\ud800", "\u001b[0m", "two\nlines", "", "x" * 300, "1" * 30)
"""Beside any text: a NUL byte, a lone surrogate, an escape, a line break, nothing, long ones."""
NASTY_INSTANTS = (
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "1969-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
    "2026-12-05T09:00:00",
    "not an instant",
)


def _instant(moment: Any, hours: int) -> str:
    return str(moment.replace(tzinfo=timezone(timedelta(hours=hours))).isoformat())


# Sharper values than schemathesis' own for the scalars that reached the database or failed
# inside the server: the extremes of text and of the calendar, with any offset.
schemathesis.graphql.scalar(
    "String", st.one_of(st.text(max_size=40), st.sampled_from(NASTY_STRINGS)).map(nodes.String)
)
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(
        st.builds(_instant, st.datetimes(), st.integers(min_value=-14, max_value=14)),
        st.sampled_from(NASTY_INSTANTS),
    ).map(nodes.String),
)
schemathesis.graphql.scalar(
    "Date",
    st.one_of(st.dates().map(str), st.sampled_from(("0001-01-01", "9999-12-31", "2026-13-01"))).map(
        nodes.String
    ),
)
schemathesis.graphql.scalar(
    "BigInt",
    st.one_of(st.integers().map(str), st.sampled_from(NASTY_STRINGS)).map(nodes.String),
)

SDL = schemathesis.graphql.from_path(SDL_PATH)
ROOT_FIELDS = [result.ok() for result in SDL.get_all_operations() if isinstance(result, Ok)]


def internal_errors(reply: Any) -> list[Any]:
    errors = reply.get("errors") if isinstance(reply, dict) else None
    return [
        error
        for error in errors or []
        if isinstance(error, dict)
        and (error.get("extensions") or {}).get("code") == "INTERNAL_ERROR"
    ]


def test_fuzzed_requests_never_fail_inside_the_server(settings: Settings, db_url: URL) -> None:
    app = create_app(settings, db_url)
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test")
    tokens = {
        roles: issue_token(settings, "fuzz", list(roles)) if roles else None for roles in CALLERS
    }
    seen: list[int] = []

    with asyncio.Runner() as runner:

        async def send(document: Any, roles: tuple[Role, ...]) -> httpx.Response:
            token = tokens[roles]
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            body = json.dumps({"query": document})  # ASCII: a lone surrogate as \ud800
            return await http.post("/graphql", content=body, headers=headers)

        @run_settings(
            max_examples=EXAMPLES_PER_FIELD,
            derandomize=True,
            database=None,
            deadline=None,
            phases=(Phase.explicit, Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data(), roles=st.sampled_from(CALLERS))
        def answer_is_never_internal(data: st.DataObject, roles: tuple[Role, ...]) -> None:
            case = data.draw(cases)
            response = runner.run(send(case.body, roles))
            seen.append(response.status_code)
            assert response.status_code < 500, (case.body, response.text)
            json_reply = response.headers.get("content-type", "").startswith("application/json")
            reply = response.json() if json_reply else None
            assert internal_errors(reply) == [], (case.body, reply)

        try:
            for field in ROOT_FIELDS:
                cases = st.one_of(
                    field.as_strategy(GenerationMode.POSITIVE),
                    field.as_strategy(GenerationMode.NEGATIVE),
                )
                answer_is_never_internal()
        finally:
            runner.run(http.aclose())
            runner.run(app.state.engine.dispose())

    root_types = (SDL.client_schema.query_type, SDL.client_schema.mutation_type)
    assert len(ROOT_FIELDS) == sum(len(root.fields) for root in root_types if root is not None)
    assert len(seen) >= len(ROOT_FIELDS) * EXAMPLES_PER_FIELD // 2
    assert set(seen) <= {200, 400}, sorted(set(seen))
