"""The ASGI application: GraphQL at /graphql, provider webhooks at /webhooks/{provider}, the
probes /livez and /readyz (api/health.py); in development, GraphiQL at /graphql with its
scripts and styles under /graphiql/static (api/graphiql.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import strawberry
import structlog
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage

from accounting.breakage.rules import BreakagePolicy
from accounting.close import service as close_service
from accounting.ledger import chart
from accounting.reads import period_totals
from accounting.refunds.service import RefundPolicy
from api.auth import InvalidToken, principal_from_header, token_keyring
from api.database import (
    create_engine,
    gift_service,
    libpq_url,
    payout_service,
    purchase_service,
    read_session_factory,
    session_factory,
    store_purchases,
)
from api.exports import export_routes
from api.gift_feed import FeedLimits, PostgresGiftFeed
from api.graphiql import asset_routes, offline_page
from api.health import health_routes
from api.logs import configure_logging, log_format_of, route_through_logging
from api.metrics import KeyFileFigures, Metrics
from api.operations import observed
from api.replicas import WAL_POSITION_HEADER, ReplicaFigures, ReplicaSet, read_routing
from api.settings import Settings, get_settings
from api.webhooks import webhook_endpoint
from schema import Limits, build_schema
from schema.context import Context, Services

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
WELL_FORMED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,64}")
MAX_REQUEST_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a GraphQL request body may have."""
MAX_SUBSCRIPTIONS_PER_CONNECTION = 10
CONNECTION_INIT_TIMEOUT = timedelta(seconds=10)
REFUSED = 4403
"""graphql-transport-ws close code for a refused ``connection_init``."""
MAX_CLOSE_REASON_BYTES = 123


class RequestIdMiddleware:
    """Gives every HTTP request an id (the caller's X-Request-ID when well-formed, else a new
    one), echoed back and bound to every log line written while the request is served."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(REQUEST_ID_HEADER.encode(), b"").decode()
        well_formed = WELL_FORMED_REQUEST_ID.fullmatch(given)
        request_id = given if well_formed else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


class _BodyTooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes ``MAX_REQUEST_BYTES``."""


class RequestSizeLimit:
    """Refuses request bodies larger than ``MAX_REQUEST_BYTES``: at once when Content-Length says
    so, and while reading when the body comes without one (chunked), so neither gets past."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "errors": [
                    {
                        "message": "Request body too large",
                        "extensions": {"code": "REQUEST_TOO_LARGE"},
                    }
                ]
            },
            status_code=413,
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
            await self._refuse(scope, receive, send)
            return
        received_bytes = 0
        response_started = False

        async def counted_receive() -> Message:
            nonlocal received_bytes
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > MAX_REQUEST_BYTES:
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            if response_started:
                raise
            await self._refuse(scope, receive, send)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether ``body`` nests arrays and objects deeper than ``limit`` (brackets inside JSON
    strings aside): read without parsing, so a body nested 20,000 deep costs one pass."""
    depth = 0
    for bracket in _JSON_STRING.sub(b"", body).translate(None, _NOT_A_BRACKET):
        depth += 1 if bracket in b"[{" else -1
        if depth > limit:
            return True
    return False


def body_refusal(body: bytes) -> str | None:
    """Why a GraphQL request body is refused before it is parsed, or ``None``."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"The body is not UTF-8 (byte {error.start})"
    if json_depth_exceeds(body, MAX_JSON_DEPTH):
        return f"The body nests deeper than {MAX_JSON_DEPTH} arrays and objects"
    return None


class RequestBodyGuard:
    """Reads a GraphQL request's body (already bounded by :class:`RequestSizeLimit`) and
    refuses with 400, before any JSON parser sees it, one that is not UTF-8 or nests too
    deep; otherwise hands the same body on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refusal = body_refusal(body)
        if refusal is not None:
            error = {"message": refusal, "extensions": {"code": "MALFORMED_REQUEST"}}
            await JSONResponse({"errors": [error]}, status_code=400)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def refusal_of_connection(
    settings: Settings, context: Context, params: dict[str, object]
) -> str | None:
    """Signs a websocket in from its ``connection_init`` payload, ``{"Authorization": "Bearer
    <token>"}`` (what browsers can send), or else the handshake's Authorization header. Returns
    why the connection is refused, or ``None`` when the caller is signed in."""
    given = params.get("Authorization", params.get("authorization"))
    if given is not None:
        if not isinstance(given, str):
            return 'Send the token as {"Authorization": "Bearer <token>"} in connection_init'
        try:
            context.principal = principal_from_header(settings, given)
            context.auth_error = None
        except InvalidToken as error:
            return error.reason
    elif context.auth_error is not None:
        return context.auth_error
    if context.principal is None:
        return 'Sign in: send {"Authorization": "Bearer <token>"} in connection_init'
    return None


def close_reason(text: str) -> str:
    """``text`` cut to what a websocket close frame carries (123 bytes of UTF-8)."""
    return text.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


class CoinbooksTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws as strawberry speaks it, except that only a signed-in caller is
    acknowledged, and a refused ``connection_init`` is closed with 4403 and the reason ("The
    token has expired"), where strawberry's ``on_ws_connect`` rejection says only "Forbidden"."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        params = message.get("payload", {})
        first = not (self.connection_init_received or self.connection_timed_out)
        if first and isinstance(params, dict):
            assert isinstance(self.view, CoinbooksGraphQL)
            refusal = refusal_of_connection(self.view.settings, self.context, params)
            if refusal is not None:
                self.connection_init_received = True
                if self.connection_init_timeout_task is not None:
                    self.connection_init_timeout_task.cancel()
                await self.websocket.close(code=REFUSED, reason=close_reason(refusal))
                return
        await super().handle_connection_init(message)


class CoinbooksGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = CoinbooksTransportWSHandler

    def __init__(
        self,
        services: Services,
        settings: Settings,
        metrics: Metrics | None = None,
        replicas: ReplicaSet | None = None,
    ) -> None:
        super().__init__(
            build_schema(
                production=not settings.development,
                limits=Limits(
                    max_depth=settings.max_query_depth,
                    max_tokens=settings.max_query_tokens,
                    max_aliases=settings.max_query_aliases,
                    max_cost=settings.max_query_cost,
                    cache_size=settings.graphql_cache_size,
                ),
            ),
            graphql_ide="graphiql" if settings.development else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=CONNECTION_INIT_TIMEOUT,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
            allowed_origins=settings.websocket_allowed_origins,
        )
        self.services = services
        self.settings = settings
        self.ide_page = offline_page(self.graphql_ide_html) if self.graphql_ide else ""
        assert isinstance(self.schema, strawberry.Schema)
        if metrics is not None:
            self.schema.extensions = (*self.schema.extensions, observed(metrics))
        if replicas is not None:
            self.schema.extensions = (*self.schema.extensions, read_routing(replicas))

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        """Strawberry's GraphiQL page, loading nothing beyond this service."""
        return HTMLResponse(self.ide_page)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        request_id = str(request.scope.get("state", {}).get("request_id", uuid.uuid4().hex))
        try:
            principal = principal_from_header(self.settings, request.headers.get("authorization"))
            auth_error = None
        except InvalidToken as error:
            principal, auth_error = None, error.reason
        return Context(
            services=self.services,
            request_id=request_id,
            principal=principal,
            auth_error=auth_error,
            wal_position=request.headers.get(WAL_POSITION_HEADER),
            set_header=response.headers.__setitem__ if isinstance(response, Response) else None,
        )


async def keep_totals_current(
    sessions: async_sessionmaker[AsyncSession], every_seconds: float
) -> None:
    """Summarize the postings' totals every ``every_seconds``, so that the finance reports read
    few raw postings (``accounting/reads/period_totals.py``), and seal the entries posted since
    (``accounting/close/service.py``), so that the chain stays close behind the journal. Safe
    beside other instances doing the same; a failure is logged and the next round tries again."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            async with sessions() as session:
                await period_totals.summarize(session)
        except Exception:
            log.exception("summarizing the postings' totals failed; trying again next round")
        try:
            async with sessions() as session:
                await close_service.seal_journal(session)
        except Exception:
            log.exception("sealing the journal failed; trying again next round")


def create_app(settings: Settings, database_url: str | URL) -> Starlette:
    keyring = token_keyring(settings)  # weak or unusable keys refuse the start (TokenKeyError)
    chart.configure_platform_shards(settings.platform_shards)
    route_through_logging()
    engine = create_engine(
        database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
    )
    sessions = session_factory(engine)
    gift_feed = PostgresGiftFeed(
        libpq_url(database_url),
        FeedLimits(
            queue_size=settings.gift_feed_queue_size,
            stream_check_seconds=settings.gift_feed_stream_check_seconds,
        ),
    )
    purchases = purchase_service(settings, sessions)
    stores = store_purchases(settings, sessions, purchases)
    services = Services(
        sessions=sessions,
        reads=read_session_factory(engine),
        purchases=purchases,
        gifts=gift_service(settings, sessions),
        payouts=payout_service(settings, sessions),
        functional_currency=settings.functional_currency,
        gift_feed=gift_feed,
        refund_policy=RefundPolicy(window=timedelta(days=settings.refund_window_days)),
        breakage_policy=BreakagePolicy(after_days=settings.breakage_after_days),
        store_purchases=stores,
        account_tokens=stores.account_tokens,
    )
    metrics = Metrics(settings.metrics_token)
    metrics.watch(engine, services.gifts.batches)
    if keyring.source is not None:  # a JWKS file, read again when it changes
        metrics.watch_also(KeyFileFigures(keyring))
    replicas = replica_set(settings, engine, services, metrics)
    graphql = CoinbooksGraphQL(services, settings, metrics, replicas)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gift_feed.start()
        every = settings.posting_totals_every_seconds
        totals = asyncio.create_task(keep_totals_current(sessions, every)) if every else None
        checks = asyncio.create_task(replicas.keep_checking()) if replicas else None
        try:
            yield
        finally:
            for task in (totals, checks):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await gift_feed.stop()
            if replicas is not None:
                await replicas.dispose()
            await engine.dispose()

    app = Starlette(
        routes=[
            Route("/graphql", RequestBodyGuard(graphql)),
            WebSocketRoute("/graphql", graphql),
            *health_routes(engine, replicas),
            Route("/metrics", metrics.endpoint),
            Route(
                "/webhooks/{provider}",
                webhook_endpoint(settings, sessions, metrics.webhook_delivered),
                methods=["POST"],
            ),
            *export_routes(settings, sessions),
            *(asset_routes() if settings.development else []),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(RequestSizeLimit)
    app.add_middleware(RequestIdMiddleware)
    app.state.services = services
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.gift_feed = gift_feed
    app.state.replicas = replicas
    return app


def replica_set(
    settings: Settings, engine: AsyncEngine, services: Services, metrics: Metrics
) -> ReplicaSet | None:
    """The read replicas configured (``COINBOOKS_READ_REPLICA_URLS``), watched in /metrics;
    None when there are none."""
    if not settings.read_replica_urls:
        return None
    replicas = ReplicaSet.of(
        engine,
        services,
        settings.read_replica_urls,
        max_lag_seconds=settings.read_replica_max_lag_seconds,
        check_seconds=settings.read_replica_check_seconds,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    replicas.reads_served = metrics.read_served
    metrics.watch_also(ReplicaFigures(replicas))
    return replicas


def app_from_environment() -> Starlette:
    """Factory for uvicorn: settings and ``DATABASE_URL`` from the environment."""
    settings = get_settings()
    configure_logging(log_format_of(settings.log_format, settings.development))
    url: Any = settings.database_url or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set; start the service with `coinbooks serve`")
    return create_app(settings, make_url(url))
