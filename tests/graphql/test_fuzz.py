"""A fuzz run of the committed SDL: schemathesis generates queries and mutations of every root
field (valid ones, and ones the schema refuses), each sent over HTTP to the real ASGI app
without a token, as each role and as all of them. Whatever comes, the answer is never a 5xx and
never an ``INTERNAL_ERROR``: every input gets a typed error or a 4xx.

The run is seeded (derandomized: the same cases every run) and bounded: ``EXAMPLES_PER_FIELD``
cases for each root field, about a minute against one database."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as run_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
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
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await http.post("/graphql", json={"query": document}, headers=headers)

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

    assert len(ROOT_FIELDS) >= 70
    assert len(seen) >= len(ROOT_FIELDS) * EXAMPLES_PER_FIELD // 2
    assert set(seen) <= {200, 400}, sorted(set(seen))
