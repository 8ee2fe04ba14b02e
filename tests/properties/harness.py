"""What the property machines share: a database and an event loop per example, the integrity
check after every step, and one way to run a machine.

Each example gets a database of its own, cloned from the migrated template, and an event loop
of its own: state machines are synchronous, the services are not.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, seed, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, run_state_machine_as_test
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from accounting.integrity import check_integrity
from api.database import create_engine, session_factory
from tests.conftest import drop_database, new_database

T = TypeVar("T")


class DatabaseMachine(RuleBasedStateMachine):
    """A state machine on a database of its own. After every step the machine's own audit
    (the books against its model) passes and the integrity check finds nothing."""

    server_url: ClassVar[URL]
    template_url: ClassVar[URL]
    outcomes: ClassVar[Counter[str]] = Counter()
    """What the runs exercised, across examples: ``run_machine`` asserts the paths that matter
    ran."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.url = new_database(self.server_url, self.template_url)
        self.engine: AsyncEngine = self.run(self._open_engine())
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        self.numbers = itertools.count(1)

    async def _open_engine(self) -> AsyncEngine:
        return create_engine(self.url, pool_size=4, max_overflow=4)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def saw(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def key(self) -> str:
        """A fresh idempotency key."""
        return f"key-{next(self.numbers):08d}"

    def teardown(self) -> None:
        try:
            self.run(self.engine.dispose())
        finally:
            self.loop.close()
            drop_database(self.server_url, self.url)

    async def audit(self) -> None:
        """The books against the machine's model: each machine says how."""
        raise NotImplementedError

    @invariant()
    def books_match_the_model(self) -> None:
        self.run(self.audit())
        self.run(integrity_holds(self.sessions))


async def integrity_holds(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        report = await check_integrity(session)
    assert report.violations == []


@dataclass(frozen=True)
class Runs:
    """How a machine is run: the paths its runs must reach, how many examples of how many
    steps, and from which seed."""

    must_reach: tuple[str, ...]
    """What the runs must have exercised (each machine notes what a step did with ``saw``):
    the paths that matter, so that a change that keeps the runs from them fails."""
    max_examples: int
    stateful_step_count: int
    seed: int
    """The runs are the same every time: derandomized (no example database), from this seed.
    Left to itself, derandomize seeds the runs from a digest of the machine's source, so that
    any edit of the machine (a moved line, a renamed helper) would draw other histories; a
    machine pins the seed its source once gave it, and keeps its runs and the paths they reach
    while its code moves."""


def run_machine(
    machine: type[DatabaseMachine], server_url: URL, template_url: URL, runs: Runs
) -> None:
    """Run ``machine`` on databases cloned from ``template_url`` on ``server_url``, with no
    deadline. What the runs exercised is printed, and must include every path of
    ``runs.must_reach``."""
    machine.server_url = server_url
    machine.template_url = template_url
    machine.outcomes = Counter()
    run_state_machine_as_test(
        seed(runs.seed)(machine),
        settings=settings(
            max_examples=runs.max_examples,
            stateful_step_count=runs.stateful_step_count,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    outcomes = machine.outcomes
    print(dict(sorted(outcomes.items())))
    assert_reached(outcomes, runs.must_reach)


def assert_reached(outcomes: Counter[str], paths: tuple[str, ...]) -> None:
    """The runs reached every one of ``paths``."""
    for path in paths:
        assert outcomes[path] > 0, (path, dict(outcomes))
