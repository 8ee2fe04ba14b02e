"""The service's logs as an operator reads them: JSON lines, one per GraphQL operation with its
name, caller, duration and outcome, every line of a request carrying its request id (uvicorn's
access line too, through a real uvicorn), and the request id's round trip."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.engine import URL

from api.app import create_app
from api.logs import handler, log_format_of
from api.settings import Settings
from tests.conftest import GraphQLClient
from tests.graphql.conftest import Lines
from tests.serving import served_in_process

WALLET = "query MyWallet { wallet { coins } }"


async def test_one_json_line_per_operation_with_request_id_caller_duration_and_outcome(
    gql: GraphQLClient, json_lines: Lines
) -> None:
    await gql(WALLET, user="ana", roles=("viewer", "creator"), headers={"X-Request-Id": "r-1"})
    await gql(WALLET, headers={"X-Request-Id": "r-2"})  # signed out

    ok, refused = json_lines.of("graphql operation")

    assert ok["request_id"] == "r-1"
    assert (ok["operation"], ok["operation_type"]) == ("MyWallet", "query")
    assert (ok["user_id"], ok["roles"]) == ("ana", ["creator", "viewer"])
    assert (ok["outcome"], ok["error_codes"]) == ("ok", [])
    assert isinstance(ok["duration_ms"], float) and ok["duration_ms"] > 0
    assert (ok["level"], ok["logger"]) == ("info", "coinbooks.graphql")
    assert ok["timestamp"].endswith("Z")
    assert refused["request_id"] == "r-2"
    assert (refused["user_id"], refused["roles"]) == (None, [])
    assert refused["outcome"] == "UNAUTHENTICATED"
    assert refused["error_codes"] == ["UNAUTHENTICATED"]


async def test_a_document_that_does_not_parse_is_logged_with_its_outcome(
    client: httpx.AsyncClient, json_lines: Lines
) -> None:
    response = await client.post("/graphql", json={"query": "query {"})

    assert response.status_code == 200
    (line,) = json_lines.of("graphql operation")
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["operation"], line["operation_type"]) == (None, None)
    assert line["outcome"] == "GRAPHQL_VALIDATION_FAILED"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("frontend-trace-42", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("has space", False),
        ('quote"d', False),
        ("", False),
    ],
)
async def test_a_well_formed_request_id_is_echoed_and_any_other_is_replaced(
    client: httpx.AsyncClient, json_lines: Lines, sent: str, kept: bool
) -> None:
    response = await client.post("/graphql", json={"query": WALLET}, headers={"X-Request-Id": sent})

    echoed = response.headers["x-request-id"]
    if kept:
        assert echoed == sent
    else:
        assert len(echoed) == 32 and int(echoed, 16) >= 0
    (line,) = json_lines.of("graphql operation")
    assert line["request_id"] == echoed


@pytest.fixture
async def served(settings: Settings, db_url: URL) -> AsyncIterator[str]:
    """The app under a real uvicorn, its loggers left to ours as ``coinbooks serve`` does."""
    app = create_app(settings, db_url)
    try:
        async with served_in_process(app, lifespan="off", log_level="info") as port:
            yield f"http://127.0.0.1:{port}"
    finally:
        await app.state.engine.dispose()


async def test_the_access_log_carries_the_request_id(served: str, json_lines: Lines) -> None:
    async with httpx.AsyncClient(base_url=served) as http:
        response = await http.get("/metrics", headers={"X-Request-Id": "scrape-9"})
    assert response.status_code == 200

    (access,) = json_lines.of_logger("uvicorn.access")
    assert access["request_id"] == "scrape-9"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/metrics", 200)
    assert access["level"] == "info"
    assert "GET /metrics" in access["event"]


def test_the_format_is_json_in_production_and_readable_in_development() -> None:
    assert log_format_of(None, development=False) == "json"
    assert log_format_of(None, development=True) == "console"
    assert log_format_of("json", development=True) == "json"
    assert log_format_of("console", development=False) == "console"


async def test_development_lines_are_readable_and_carry_the_request_id(
    gql: GraphQLClient,
) -> None:
    stream = io.StringIO()
    writer = handler("console", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(writer)
    root.setLevel(logging.INFO)
    try:
        await gql(WALLET, user="ana", headers={"X-Request-Id": "dev-3"})
    finally:
        root.removeHandler(writer)
        root.setLevel(level)

    (line,) = [line for line in stream.getvalue().splitlines() if "graphql operation" in line]
    assert "\x1b[" not in line  # no colours where the stream is not a terminal
    assert "[info" in line and "[coinbooks.graphql]" in line
    for field in ("request_id=dev-3", "operation=MyWallet", "user_id=ana", "outcome=ok"):
        assert field in line
