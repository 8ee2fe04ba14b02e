"""Reads from PostgreSQL streaming replicas (``COINBOOKS_READ_REPLICA_URLS``).

A GraphQL query whose every root field only reads (``READ_FIELDS``: the wallet, histories, gifts
sent, leaderboards, earnings over time, statements and the finance reports) is answered from a
replica: :class:`ReadRouting` gives its resolvers session factories bound to the replica in place
of the primary's, so no resolver knows. Everything else (mutations, subscriptions, queries that
may write, such as ``creatorEarnings``, which releases due holds first, and ``giftByKey``, the
lookup of a gift whose answer timed out) is answered by the primary, and so is every operation
over the websocket.

**Read your writes.** After an operation that may have written, the primary's WAL position
(``pg_current_wal_insert_lsn()``, past the end of every commit record written so far, whether or
not the commit waited for the disk) is sent in the ``Coinbooks-WAL-Position`` header and kept per
signed-in caller in the process. A later read is served by a replica only once it has replayed
that far (``pg_last_wal_replay_lsn()``, asked afresh for every read), else by the primary: the
larger of the caller's kept position and the header the client sends back. Another process (or
worker) knows the caller's writes only from the header.

**Health.** Every ``COINBOOKS_READ_REPLICA_CHECK_SECONDS`` each replica is asked how far it has
replayed; one that does not answer, is not in recovery, or lags the primary by more than
``COINBOOKS_READ_REPLICA_MAX_LAG_SECONDS`` is skipped until it is back within the bound. A replica
that stops between two checks fails the fresh position check of the next read, which then goes
to the primary: clients see no error.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from graphql import DocumentNode, FieldNode
from graphql import OperationType as GraphQLOperationType
from graphql.utilities import get_operation_ast
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from api.database import async_url, read_session_factory, session_factory
from schema.context import Context, Services

log = logging.getLogger(__name__)

WAL_POSITION_HEADER = "coinbooks-wal-position"
READ_FIELDS = frozenset(
    {
        "__typename",
        "wallet",
        "transactions",
        "purchases",
        "giftsSent",
        "streamGifts",
        "topGifters",
        "streamTotals",
        "earningsOverTime",
        "accountStatement",
        "accountBalance",
        "trialBalance",
        "balanceSheet",
        "incomeStatement",
        "rollForwards",
        "journal",
        "journalEntry",
    }
)
"""The root query fields a replica may answer: each only reads, in one transaction or one
statement. A field not named here is answered by the primary."""
CONNECT_TIMEOUT_SECONDS = 2.0
MAX_CALLERS = 100_000
"""Callers whose last write's position the process keeps; past it the oldest are forgotten, and
their positions raise a floor every read must see (so none is lost)."""

_POSITION_OF_PRIMARY = text("SELECT CAST(pg_current_wal_insert_lsn() - '0/0' AS bigint)")
_POSITION_OF_REPLICA = text(
    "SELECT pg_is_in_recovery(), CAST(pg_last_wal_replay_lsn() - '0/0' AS bigint)"
)

State = Literal["up", "lagging", "down", "unchecked"]


def format_position(position: int) -> str:
    """A WAL position as PostgreSQL writes an LSN (``0/3000148``)."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def parse_position(given: str) -> int:
    """An LSN as PostgreSQL writes it, as a number; ValueError when it is not one."""
    high, slash, low = given.strip().partition("/")
    if not slash or not high or not low or len(high) > 8 or len(low) > 8:
        raise ValueError(f"not a WAL position: {given!r}")
    return (int(high, 16) << 32) | int(low, 16)


def replica_name(url: str | URL) -> str:
    """How a replica is named in /metrics, /readyz and the logs: host, port and database."""
    parsed = make_url(url) if isinstance(url, str) else url
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


@dataclass(slots=True)
class Replica:
    name: str
    engine: AsyncEngine
    services: Services
    """The service's services with the session factories bound to this replica."""
    state: State = "unchecked"
    replayed: int | None = None
    lag_seconds: float | None = None
    lag_bytes: int | None = None

    async def position(self) -> int:
        """How far it has replayed, asked now; raises when it cannot answer or is no replica."""
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS), self.engine.connect() as connection:
            row = (await connection.execute(_POSITION_OF_REPLICA)).one()
        in_recovery, replayed = row
        if not in_recovery or replayed is None:
            raise RuntimeError(f"{self.name} is not a replica in recovery")
        self.replayed = max(self.replayed or 0, int(replayed))
        return int(replayed)

    def detail(self) -> dict[str, Any]:
        return {
            "replica": self.name,
            "state": self.state,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "lag_bytes": self.lag_bytes,
        }


@dataclass(slots=True)
class CallerPositions:
    """Each signed-in caller's last write position in this process, bounded."""

    limit: int = MAX_CALLERS
    floor: int = 0
    """The highest position forgotten: every read must see it."""
    kept: dict[str, int] = field(default_factory=dict)

    def wrote(self, caller: str, position: int) -> None:
        self.kept[caller] = max(self.kept.pop(caller, 0), position)
        while len(self.kept) > self.limit:
            oldest = next(iter(self.kept))
            self.floor = max(self.floor, self.kept.pop(oldest))

    def wanted(self, caller: str | None) -> int:
        return max(self.kept.get(caller, 0) if caller else 0, self.floor)

    def forget_seen(self, everywhere: int) -> None:
        """Drop the positions that every replica has replayed past."""
        for caller in [c for c, p in self.kept.items() if p <= everywhere]:
            del self.kept[caller]


class ReplicaSet:
    """The replicas, their health, and the choice of one for a read."""

    def __init__(
        self,
        primary: AsyncEngine,
        replicas: list[Replica],
        *,
        max_lag_seconds: float,
        check_seconds: float,
    ) -> None:
        self.primary = primary
        self.replicas = replicas
        self.max_lag_seconds = max_lag_seconds
        self.check_seconds = check_seconds
        self.callers = CallerPositions()
        self._turn = itertools.count()
        self._samples: deque[tuple[float, int]] = deque()
        """(when, the primary's position then), oldest first, over the lag bound and a check."""
        self.reads_served: Callable[[str], None] = lambda database: None

    @classmethod
    def of(
        cls,
        primary: AsyncEngine,
        services: Services,
        urls: Iterable[str],
        *,
        max_lag_seconds: float,
        check_seconds: float,
        pool_size: int,
        max_overflow: int,
    ) -> ReplicaSet:
        replicas = []
        for url in urls:
            engine = create_async_engine(
                async_url(url),
                pool_size=pool_size,
                max_overflow=max_overflow,
                connect_args={
                    "server_settings": {"application_name": "coinbooks-replica-reads"},
                    "timeout": CONNECT_TIMEOUT_SECONDS,
                },
            )
            routed = replace(
                services, sessions=session_factory(engine), reads=read_session_factory(engine)
            )
            replicas.append(Replica(replica_name(url), engine, routed))
        return cls(primary, replicas, max_lag_seconds=max_lag_seconds, check_seconds=check_seconds)

    async def written(self, caller: str | None) -> int:
        """The primary's position now (after the caller's commits), kept for the caller."""
        async with self.primary.connect() as connection:
            position = int(await connection.scalar(_POSITION_OF_PRIMARY) or 0)
        if caller is not None:
            self.callers.wrote(caller, position)
        return position

    async def choose(self, wanted: int) -> Replica | None:
        """A replica that is up and has replayed at least to ``wanted``; None: the primary."""
        up = [r for r in self.replicas if r.state == "up"]
        if not up:
            return None
        start = next(self._turn)
        for n in range(len(up)):
            replica = up[(start + n) % len(up)]
            try:
                replayed = await replica.position()
            except Exception as error:
                self._mark_down(replica, error)
                continue
            if replayed >= wanted:
                return replica
        return None

    def _mark_down(self, replica: Replica, error: BaseException) -> None:
        if replica.state != "down":
            log.warning(
                "read replica %s is down, reads go elsewhere: %s", replica.name, _reason(error)
            )
        replica.state = "down"

    async def check(self) -> None:
        """One round of health checks: the primary's position, then each replica's."""
        async with self.primary.connect() as connection:
            primary = int(await connection.scalar(_POSITION_OF_PRIMARY) or 0)
        now = time.monotonic()
        self._samples.append((now, primary))
        horizon = now - self.max_lag_seconds - 2 * self.check_seconds
        while len(self._samples) > 1 and self._samples[1][0] < horizon:
            self._samples.popleft()
        await asyncio.gather(*(self._check(replica, primary, now) for replica in self.replicas))
        replayed = [r.replayed or 0 for r in self.replicas if r.state == "up"]
        if replayed and len(replayed) == len(self.replicas):
            self.callers.forget_seen(min(replayed))

    async def _check(self, replica: Replica, primary: int, now: float) -> None:
        try:
            replayed = await replica.position()
        except Exception as error:
            self._mark_down(replica, error)
            replica.lag_seconds = replica.lag_bytes = None
            return
        replica.lag_bytes = max(primary - replayed, 0)
        behind = [when for when, position in self._samples if position > replayed]
        replica.lag_seconds = now - behind[0] if behind else 0.0
        state: State = "lagging" if replica.lag_seconds > self.max_lag_seconds else "up"
        if state != replica.state:
            log.info("read replica %s is %s (lag %.3f s)", replica.name, state, replica.lag_seconds)
        replica.state = state

    async def keep_checking(self) -> None:
        """Check every ``check_seconds`` for as long as the service runs."""
        while True:
            try:
                await self.check()
            except Exception as error:  # the primary did not answer: one line, no traceback
                log.warning("checking the read replicas failed, trying again: %s", _reason(error))
            await asyncio.sleep(self.check_seconds)

    def detail(self) -> list[dict[str, Any]]:
        return [replica.detail() for replica in self.replicas]

    async def dispose(self) -> None:
        for replica in self.replicas:
            await replica.engine.dispose()


def _reason(error: BaseException) -> str:
    """An error's first line, or its type's name when it says nothing."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class ReplicaFigures(Collector):
    """Each replica's state and lag, read when /metrics is scraped."""

    def __init__(self, replicas: ReplicaSet) -> None:
        self.replicas = replicas

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "coinbooks_read_replica_up",
            "1 while the replica takes reads, 0 while down or lagging beyond the bound",
            labels=["replica"],
        )
        seconds = GaugeMetricFamily(
            "coinbooks_read_replica_lag_seconds",
            "How long ago the primary was where the replica has replayed to (at the last check)",
            labels=["replica"],
        )
        size = GaugeMetricFamily(
            "coinbooks_read_replica_lag_bytes",
            "WAL the replica had still to replay at the last check",
            labels=["replica"],
        )
        for replica in self.replicas.replicas:
            up.add_metric([replica.name], 1 if replica.state == "up" else 0)
            if replica.lag_seconds is not None:
                seconds.add_metric([replica.name], replica.lag_seconds)
            if replica.lag_bytes is not None:
                size.add_metric([replica.name], replica.lag_bytes)
        yield from (up, seconds, size)


def reads_only(context: ExecutionContext) -> bool:
    """Whether the operation is a query whose root fields are all in ``READ_FIELDS``."""
    try:
        if context.operation_type is not OperationType.QUERY or context.graphql_document is None:
            return False
    except RuntimeError:  # no operation to run
        return False
    return only_read_fields(context.graphql_document, context.operation_name)


def only_read_fields(document: DocumentNode, operation_name: str | None) -> bool:
    """Whether the operation's root selections are all fields in ``READ_FIELDS`` (a fragment
    at the root goes to the primary)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not GraphQLOperationType.QUERY:
        return False
    return all(
        isinstance(selection, FieldNode) and selection.name.value in READ_FIELDS
        for selection in operation.selection_set.selections
    )


def wanted_position(replicas: ReplicaSet, context: Context) -> int | None:
    """The position the read must see: the caller's last write here and the client's header;
    None when the header is not a position (then only the primary will do)."""
    caller = context.principal.user_id if context.principal else None
    wanted = replicas.callers.wanted(caller)
    if context.wal_position is not None:
        try:
            wanted = max(wanted, parse_position(context.wal_position))
        except ValueError:
            return None
    return wanted


class ReadRouting(SchemaExtension):
    """Binds a read-only query's sessions to a replica that has seen the caller's writes, and
    after any other operation sends (and keeps) the primary's WAL position."""

    def __init__(self, replicas: ReplicaSet) -> None:
        self.replicas = replicas

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        assert isinstance(context, Context)
        set_header = context.set_header
        if set_header is None:  # a websocket: its operations share one context, and stay primary
            yield
            return
        if not reads_only(self.execution_context):
            yield
            await self._after_write(context, set_header)
            return
        wanted = wanted_position(self.replicas, context)
        replica = None if wanted is None else await self.replicas.choose(wanted)
        self.replicas.reads_served(replica.name if replica else "primary")
        if replica is None:
            yield
            return
        primary_services, context.services = context.services, replica.services
        try:
            yield
        finally:
            context.services = primary_services

    async def _after_write(self, context: Context, set_header: Callable[[str, str], None]) -> None:
        caller = context.principal.user_id if context.principal else None
        try:
            position = await self.replicas.written(caller)
        except Exception as error:  # the answer stands; the next read goes where it may
            log.warning("could not read the primary's WAL position: %s", error)
            return
        set_header(WAL_POSITION_HEADER, format_position(position))


def read_routing(replicas: ReplicaSet) -> Callable[[], SchemaExtension]:
    """The extension's factory, a fresh instance per operation."""
    return lambda: ReadRouting(replicas)
