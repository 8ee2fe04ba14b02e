"""Prometheus metrics at ``GET /metrics`` (docs/operations.md lists them).

Counted as they happen: GraphQL operations by name and outcome, their latency, their error
codes, gift batch sizes, webhook deliveries. Read when scraped: the database pool, the gifts
waiting for a batch, and the transactions run again, by reason: a deadlock, a serialization
failure, a lost connection, accounts asked for after a first lock
(``accounting.ledger.posting.RETRIES``), and the reads of the token keys' JWKS file. The
domain knows nothing of Prometheus: it keeps these figures, and this module reads them.

Several worker processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory, the same
for every worker, set before the service starts) the counters and histograms are those of all
workers together; the figures read when scraped are those of the worker that answers.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.requests import Request
from starlette.responses import Response

from accounting.ledger import posting

MAX_OPERATION_NAMES = 200
"""Distinct operation names counted under their own label; later ones count as ``other``
(clients choose the names, and a label's values must stay few)."""
OPERATION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
RETRY_REASONS = {
    "40P01": "deadlock",
    "40001": "serialization_failure",
    posting.CONNECTION_LOST: "connection_lost",
    posting.CONNECTION_LOST_AT_COMMIT: "connection_lost_at_commit",
    posting.LOCK_ORDER: "lock_order",
}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Batches(Protocol):
    """What is read of a group commit (``accounting.ledger.group_commit.GroupCommit``)."""

    @property
    def queued(self) -> int: ...

    @property
    def batch_observers(self) -> list[Callable[[int], None]]: ...


class ReadWhenScraped(Collector):
    """The figures that are state rather than events, read at each scrape."""

    def __init__(self, engine: AsyncEngine, gift_batches: Batches) -> None:
        self.engine = engine
        self.gift_batches = gift_batches

    def collect(self) -> Iterable[Metric]:
        pool = self.engine.sync_engine.pool
        if isinstance(pool, QueuePool):
            yield GaugeMetricFamily(
                "coinbooks_db_pool_size", "Connections the pool keeps open", value=pool.size()
            )
            yield GaugeMetricFamily(
                "coinbooks_db_pool_checked_out",
                "Connections in use by a request",
                value=pool.checkedout(),
            )
            yield GaugeMetricFamily(
                "coinbooks_db_pool_overflow",
                "Connections open beyond the pool's size",
                value=max(pool.overflow(), 0),
            )
        yield GaugeMetricFamily(
            "coinbooks_gift_queue_depth",
            "Gifts waiting for the next group-commit batch",
            value=self.gift_batches.queued,
        )
        retries = CounterMetricFamily(
            "coinbooks_db_transaction_retries",
            "Transactions run again: after a deadlock, a serialization failure, a lost connection"
            " (before or during its commit), or accounts asked for after its first lock",
            labels=["reason"],
        )
        for state, reason in RETRY_REASONS.items():
            retries.add_metric([reason], posting.RETRIES[state])
        yield retries


class KeyFile(Protocol):
    """What is read of the token keys' JWKS file (``api.auth.TokenKeyring``)."""

    @property
    def reloads(self) -> Mapping[str, int]: ...

    @property
    def stale(self) -> bool: ...


class KeyFileFigures(Collector):
    """The JWKS file's reads after the start, by outcome, and whether it is unusable, read at
    each scrape."""

    def __init__(self, key_file: KeyFile) -> None:
        self.key_file = key_file

    def collect(self) -> Iterable[Metric]:
        reloads = CounterMetricFamily(
            "coinbooks_jwt_jwks_reloads",
            "Reads of the changed JWKS file after the start: new keys loaded, the same keys "
            "(unchanged), or a file that cannot be used (failed: the last good keys stay)",
            labels=["outcome"],
        )
        for outcome, count in self.key_file.reloads.items():
            reloads.add_metric([outcome], count)
        yield reloads
        yield GaugeMetricFamily(
            "coinbooks_jwt_jwks_stale",
            "1 while the JWKS file, when last read, could not be used and the last good keys "
            "verify tokens",
            value=1 if self.key_file.stale else 0,
        )


class Metrics:
    """The service's metrics, in a registry of its own (one per application)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        """The bearer token ``GET /metrics`` asks for (``COINBOOKS_METRICS_TOKEN``), if any."""
        self.registry = CollectorRegistry()
        self._names: set[str] = set()
        self._live: list[Collector] = []
        self.requests = Counter(
            "coinbooks_graphql_requests",
            "GraphQL operations by name and outcome (ok, or the first error's code)",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "coinbooks_graphql_errors",
            "Errors GraphQL operations answered with, by code",
            ["operation", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "coinbooks_graphql_request_duration_seconds",
            "Time from a GraphQL operation's parse to its answer",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.gift_batch_size = Histogram(
            "coinbooks_gift_batch_size",
            "Gifts written per group-commit transaction",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.reads = Counter(
            "coinbooks_graphql_reads",
            "Read-only GraphQL queries by the database that answered (primary or a replica)",
            ["database"],
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "coinbooks_webhook_deliveries",
            "Provider webhook deliveries by provider and outcome (accepted, duplicate, or the "
            "refusal's code)",
            ["provider", "outcome"],
            registry=self.registry,
        )

    def watch(self, engine: AsyncEngine, gift_batches: Batches) -> None:
        """Read the pool and the gift queue at each scrape; count each gift batch written."""
        self.watch_also(ReadWhenScraped(engine, gift_batches))
        gift_batches.batch_observers.append(self.gift_batch_size.observe)

    def watch_also(self, figures: Collector) -> None:
        """Read ``figures`` at each scrape too (the read replicas' lag)."""
        self._live.append(figures)
        self.registry.register(figures)

    def operation_label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if not OPERATION_NAME.fullmatch(name):
            return "other"
        if name not in self._names and len(self._names) >= MAX_OPERATION_NAMES:
            return "other"
        self._names.add(name)
        return name

    def operation_done(
        self, operation: str, error_codes: list[str], duration_seconds: float
    ) -> None:
        self.requests.labels(operation, error_codes[0] if error_codes else "ok").inc()
        for code in error_codes:
            self.errors.labels(operation, code).inc()
        self.latency.labels(operation).observe(duration_seconds)

    def read_served(self, database: str) -> None:
        self.reads.labels(database).inc()

    def webhook_delivered(self, provider: str, outcome: str) -> None:
        self.webhook_deliveries.labels(provider, outcome).inc()

    def exposition(self) -> bytes:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        for figures in self._live:  # the figures read when scraped: this worker's
            registry.register(figures)
        return generate_latest(registry)

    async def endpoint(self, request: Request) -> Response:
        if self.token is not None and not _bears(request, self.token):
            return Response(
                "GET /metrics takes the metrics token: Authorization: Bearer <token>\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                media_type="text/plain",
            )
        return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)


def _bears(request: Request, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>``, compared in constant
    time."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
