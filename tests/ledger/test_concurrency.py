"""Races, run for real: many concurrent requests, each on its own pooled connection (the
``engine`` fixture pools 20 + 20), against one PostgreSQL. No reasoning about locks stands in
for running them."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.integrity import IntegrityReport, check_integrity
from accounting.ledger import chart
from accounting.ledger.balances import wallet
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.errors import AlreadyReversed, InsufficientCoins
from accounting.ledger.posting import PostedEntry, in_transaction, post_entry, reverse_entry
from accounting.ledger.tables import JournalEntryRow, PostingRow
from accounting.purchases.payments import ChargeResult
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseRequest, PurchaseResult, PurchaseService
from accounting.purchases.tables import PurchaseRow, SandboxPaymentRow

PROVIDER_LATENCY_S = 0.05


class SlowSandboxGateway(SandboxGateway):
    """The sandbox provider, answering after a network round trip, as a real one does: the
    window in which a retry can overtake the first request's charge."""

    async def charge(self, **charge: Any) -> ChargeResult:
        await asyncio.sleep(PROVIDER_LATENCY_S)
        return await super().charge(**charge)

    async def lookup(self, **lookup: Any) -> ChargeResult:
        await asyncio.sleep(PROVIDER_LATENCY_S / 5)
        return await super().lookup(**lookup)


def buy(key: str, token: str = "tok_success", package_code: str = "coins_350") -> PurchaseRequest:
    return PurchaseRequest("ana", key, "USD", "web", "card", token, package_code=package_code)


def grant(user_id: str, coins: int, event_key: str) -> Entry:
    return Entry(
        kind=EntryKind.TRANSFER,
        event_key=event_key,
        postings=(Posting(chart.coins_issued(), coins), Posting(chart.user_coins(user_id), -coins)),
        actor="test:grant",
    )


def spend(user_id: str, coins: int, event_key: str) -> Entry:
    return Entry(
        kind=EntryKind.TRANSFER,
        event_key=event_key,
        postings=(Posting(chart.user_coins(user_id), coins), Posting(chart.coins_spent(), -coins)),
        actor="test:spend",
    )


async def post(sessions: async_sessionmaker[AsyncSession], entry: Entry) -> PostedEntry:
    return await in_transaction(sessions, lambda session: post_entry(session, entry))


@pytest.fixture
def sessions(racing: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Every test here races: its sessions (and so its services') are ``racing``'s warmed pool
    (tests/conftest.py), so that the requests really run at once instead of queueing behind
    connection set-up."""
    return racing


async def integrity(sessions: async_sessionmaker[AsyncSession]) -> IntegrityReport:
    async with sessions() as session, session.begin():
        return await check_integrity(session)


async def count(sessions: async_sessionmaker[AsyncSession], table: Any, *where: Any) -> int:
    async with sessions() as session:
        counted: int = (
            await session.scalar(select(func.count()).select_from(table).where(*where)) or 0
        )
    return counted


async def coins_and_value(
    sessions: async_sessionmaker[AsyncSession], user_id: str
) -> tuple[int, int]:
    async with sessions() as session:
        held = await wallet(session, user_id, "USD")
    return held.coins, held.coins_value_micros


async def test_racing_identical_purchase_requests_grant_coins_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ana's app retries one purchase 50 times at once (same idempotency key), while the
    provider takes 50 ms to answer: one purchase, one charge, one entry, 350 coins."""
    purchases = PurchaseService(sessions, SlowSandboxGateway(sessions))
    request = buy("key-race-000001")
    results: list[PurchaseResult] = await asyncio.gather(
        *(purchases.purchase_coins(request) for _ in range(50))
    )
    assert {r.purchase.id for r in results} == {results[0].purchase.id}
    assert Counter(r.replayed for r in results) == {True: 49, False: 1}
    assert {(r.purchase.status, r.purchase.failure_code) for r in results} == {("completed", None)}
    assert len({r.purchase.entry_id for r in results}) == 1

    assert await count(sessions, PurchaseRow) == 1
    assert await count(sessions, JournalEntryRow) == 1
    assert await count(sessions, SandboxPaymentRow) == 1  # the card was charged once
    assert await coins_and_value(sessions, "ana") == (350, 4_990_000)
    assert (await integrity(sessions)).violations == []


class HeldFirstChargeGateway(SandboxGateway):
    """The sandbox provider, holding the first charge in flight until the test lets it go."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions)
        self.first_charge_in_flight = asyncio.Event()
        self.release_first_charge = asyncio.Event()

    async def charge(self, **charge: Any) -> ChargeResult:
        if not self.first_charge_in_flight.is_set():
            self.first_charge_in_flight.set()
            await self.release_first_charge.wait()
        return await super().charge(**charge)


async def test_retry_during_the_first_charge_does_not_fail_a_paid_purchase(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ana's retry arrives while the provider is still taking the money for her first
    request. The retry must not conclude from an empty lookup that no charge was made: the
    purchase completes once, and the card is charged once."""
    gateway = HeldFirstChargeGateway(sessions)
    purchases = PurchaseService(sessions, gateway)
    request = buy("key-race-000002")

    first_request = asyncio.create_task(purchases.purchase_coins(request))
    await asyncio.wait_for(gateway.first_charge_in_flight.wait(), timeout=5)
    retry = await asyncio.wait_for(purchases.purchase_coins(request), timeout=5)
    gateway.release_first_charge.set()
    first = await asyncio.wait_for(first_request, timeout=5)

    assert (first.replayed, retry.replayed) == (False, True)
    assert (retry.purchase.status, retry.purchase.failure_code) == ("completed", None)
    assert (first.purchase.status, first.purchase.failure_code) == ("completed", None)
    assert first.purchase.entry_id == retry.purchase.entry_id is not None
    async with sessions() as session:
        charged = (await session.scalars(select(SandboxPaymentRow.status))).all()
    assert charged == ["succeeded"]
    assert await count(sessions, JournalEntryRow) == 1
    assert await coins_and_value(sessions, "ana") == (350, 4_990_000)


async def test_concurrent_purchases_with_distinct_keys_all_complete(
    purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana buys 50 packages at once, each its own request: all of them complete and her wallet
    holds the sum of them."""
    packages = {"coins_70": (70, 109), "coins_350": (350, 499), "coins_700": (700, 989)}
    codes = [list(packages)[n % 3] for n in range(50)]
    results = await asyncio.gather(
        *(
            purchases.purchase_coins(buy(f"key-many-{n:06d}", package_code=code))
            for n, code in enumerate(codes)
        )
    )
    assert [r.purchase.status for r in results] == ["completed"] * 50
    assert not any(r.replayed for r in results)
    assert len({r.purchase.entry_id for r in results}) == 50

    coins = sum(packages[code][0] for code in codes)
    value = sum(packages[code][1] for code in codes) * 10_000
    assert await coins_and_value(sessions, "ana") == (coins, value)
    async with sessions() as session:
        seqs = (
            await session.scalars(
                text(
                    "SELECT p.account_seq FROM posting p JOIN account a ON a.id = p.account_id"
                    " WHERE a.code = 'user:ana:coins' ORDER BY p.account_seq"
                )
            )
        ).all()
    assert list(seqs) == list(range(1, 51))
    assert (await integrity(sessions)).violations == []


async def test_concurrent_spending_never_overdraws_a_wallet(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ana holds 100 coins; 60 requests to spend 5 coins each arrive at once: exactly 20 are
    paid, 40 are refused for insufficient coins, and the wallet ends at exactly zero without
    ever going below it."""
    await post(sessions, grant("ana", 100, "grant:ana"))

    async def attempt(number: int) -> PostedEntry | InsufficientCoins:
        try:
            return await post(sessions, spend("ana", 5, f"spend:ana:{number}"))
        except InsufficientCoins as refused:
            return refused

    outcomes = await asyncio.gather(*(attempt(n) for n in range(60)))
    paid = [o for o in outcomes if isinstance(o, PostedEntry)]
    refused = [o for o in outcomes if isinstance(o, InsufficientCoins)]
    assert (len(paid), len(refused)) == (20, 40)
    assert not any(p.replayed for p in paid)
    assert {(r.facts["held"], r.facts["needed"]) for r in refused} == {(0, 5)}

    assert (await coins_and_value(sessions, "ana"))[0] == 0
    async with sessions() as session:
        running = (
            await session.scalars(
                text(
                    "SELECT -p.balance_after FROM posting p JOIN account a ON a.id = p.account_id"
                    " WHERE a.code = 'user:ana:coins' ORDER BY p.account_seq"
                )
            )
        ).all()
    assert list(running) == list(range(100, -1, -5))
    assert await count(sessions, JournalEntryRow) == 21
    assert (await integrity(sessions)).violations == []


async def test_concurrent_replays_of_a_draining_spend_return_the_first_entry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ana spends her last 5 coins and the request is retried 20 times at once: each retry is
    the first result, none of them an overdraft."""
    await post(sessions, grant("ana", 5, "grant:ana"))
    entry = spend("ana", 5, "spend:ana:last")
    outcomes = await asyncio.gather(*(post(sessions, entry) for _ in range(20)))
    assert {o.id for o in outcomes} == {outcomes[0].id}
    assert Counter(o.replayed for o in outcomes) == {True: 19, False: 1}
    assert (await coins_and_value(sessions, "ana"))[0] == 0
    assert await count(sessions, JournalEntryRow) == 2


async def test_concurrent_reversals_reverse_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await post(sessions, grant("ana", 100, "grant:ana"))
    spent = await post(sessions, spend("ana", 40, "spend:ana:1"))

    async def attempt() -> PostedEntry | AlreadyReversed:
        try:
            return await in_transaction(
                sessions,
                lambda session: reverse_entry(session, spent.id, actor="test", reason="dispute"),
            )
        except AlreadyReversed as refused:
            return refused

    outcomes = await asyncio.gather(*(attempt() for _ in range(20)))
    posted = {o.id for o in outcomes if isinstance(o, PostedEntry)}
    assert len(posted) == 1
    assert sum(1 for o in outcomes if isinstance(o, PostedEntry) and not o.replayed) == 1
    assert all(o.facts["reversal_id"] in posted for o in outcomes if isinstance(o, AlreadyReversed))
    assert (
        await count(sessions, JournalEntryRow, JournalEntryRow.reverses_entry_id == spent.id) == 1
    )
    assert (await coins_and_value(sessions, "ana"))[0] == 100
    assert (await integrity(sessions)).violations == []


@pytest.mark.parametrize(
    ("token", "status", "coins"),
    [("tok_timeout", "completed", 350), ("tok_timeout_declined", "failed", 0)],
)
async def test_timed_out_purchase_settled_by_many_at_once_resolves_once(
    purchases: PurchaseService,
    sessions: async_sessionmaker[AsyncSession],
    token: str,
    status: str,
    coins: int,
) -> None:
    """The provider did not answer Ana's purchase in time. Five settlement calls, the settle
    job and Ana's retry all ask about it at once: it resolves once, as the provider says."""
    request = buy("key-timeout-001", token)
    pending = (await purchases.purchase_coins(request)).purchase
    assert pending.status == "pending"
    assert await count(sessions, JournalEntryRow) == 0

    settled, job, retried = await asyncio.gather(
        asyncio.gather(*(purchases.settle(pending.id) for _ in range(5))),
        purchases.settle_pending(),
        purchases.purchase_coins(request),
    )
    assert {p.status for p in settled} == {status}
    assert {p.id for p in settled} == {pending.id}
    assert sum(job.values()) in (0, 1)  # the job may find it settled already
    assert job["pending"] == 0
    assert (retried.replayed, retried.purchase.id, retried.purchase.status) == (
        True,
        pending.id,
        status,
    )

    assert await count(sessions, JournalEntryRow) == (1 if coins else 0)
    assert await count(sessions, PostingRow) == (6 if coins else 0)
    assert await count(sessions, SandboxPaymentRow) == 1
    assert await coins_and_value(sessions, "ana") == (coins, 4_990_000 if coins else 0)
    async with sessions() as session:
        row = await session.get(PurchaseRow, pending.id)
    assert row is not None and row.status == status
    assert (row.entry_id is not None) == (status == "completed")
    assert (await integrity(sessions)).violations == []
