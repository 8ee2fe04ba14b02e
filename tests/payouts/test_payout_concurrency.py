"""Payouts raced for real, each request on a pooled connection of its own: requests of one
creator racing each other, a retry racing its first attempt, requests racing the hold release
that makes diamonds available, and finance people racing to resolve the same payout. Never
more is reserved than was available, every payout phase happens once, and each second-factor
code serves one request (three codes are accepted at any moment: the step before, this one and
the next)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.holds import release_due
from accounting.ledger.balances import creator_balances
from accounting.payouts.errors import (
    InsufficientDiamonds,
    InvalidPayoutTransition,
    SecondFactorReused,
)
from accounting.payouts.rules import PayoutPhase
from accounting.payouts.second_factor import Throttle
from accounting.payouts.service import PayoutPolicy, PayoutResult, PayoutService
from accounting.purchases.service import PurchaseService
from tests.conftest import race
from tests.payouts.clock import TOTP_CLOCK
from tests.payouts.support import action, check_books, earn, make_ready, payout_service

NO_CAP = PayoutPolicy(minimum_minor=1_000, daily_cap_minor=10**9)
PATIENT = Throttle(max_failures=100)
"""A throttle that lets every reused code of a race be told as such, not locked."""


def racing_payouts(racing: async_sessionmaker[AsyncSession]) -> PayoutService:
    return payout_service(racing, NO_CAP, throttle=PATIENT)


async def held(sessions: async_sessionmaker[AsyncSession], creator: str) -> tuple[int, int, int]:
    async with sessions() as session:
        found = await creator_balances(session, creator, "USD")
    return found.diamonds_pending, found.diamonds_available, found.diamonds_reserved


def outcomes(results: Sequence[object]) -> Counter[str]:
    return Counter(
        "ok" if isinstance(r, PayoutResult) and not r.replayed else type(r).__name__
        for r in results
    )


async def test_requests_racing_never_reserve_more_than_is_available(
    racing: async_sessionmaker[AsyncSession],
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    """Bo has 4,000 diamonds available; 24 requests of 2,000 arrive at once, with the three
    codes accepted now: three pass the second factor (the first with each code), two of them
    reserve, the third finds too few diamonds, and the other 21 reused a code."""
    await earn(sessions, purchases, "bo", 4)
    bo = await make_ready(sessions, "bo")
    payouts = racing_payouts(racing)
    codes = TOTP_CLOCK.codes_now(bo.secret)

    results = await race(
        [
            lambda n=n: payouts.request_payout(  # type: ignore[misc]
                bo.request(f"bo-race-{n:04d}", 2_000, totp_code=codes[n % 3])
            )
            for n in range(24)
        ]
    )

    assert outcomes(results) == {
        "ok": 2,
        InsufficientDiamonds.__name__: 1,
        SecondFactorReused.__name__: 21,
    }
    assert await held(sessions, "bo") == (0, 0, 4_000)
    await check_books(sessions)


async def test_a_retry_racing_its_first_attempt_reserves_once(
    racing: async_sessionmaker[AsyncSession],
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    await earn(sessions, purchases, "bo", 4)
    bo = await make_ready(sessions, "bo")
    payouts = racing_payouts(racing)
    request = bo.request("bo-one-payout", 3_000)  # one code, sent again with each retry

    results = await race([lambda: payouts.request_payout(request)] * 16)

    assert all(isinstance(r, PayoutResult) for r in results)
    ids = {r.payout.id for r in results if isinstance(r, PayoutResult)}
    assert len(ids) == 1
    assert outcomes(results) == {"ok": 1, "PayoutResult": 15}  # one first, fifteen replays
    assert await held(sessions, "bo") == (0, 1_000, 3_000)
    await check_books(sessions)


async def test_requests_racing_the_hold_release_reserve_only_released_diamonds(
    racing: async_sessionmaker[AsyncSession],
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    """Bo's 4,000 diamonds are due but still pending, and 2,000 are available, when eight
    requests of 2,000 and four hold releases arrive together. A request releases what is due
    before it reserves, unless another releaser holds the due gifts at that moment (it skips
    them rather than wait): so one to three requests succeed, depending on the order, each
    reserving only diamonds that were available when it held the creator's accounts, and the
    due gift is released exactly once. Three codes are accepted now: five requests reuse one."""
    await earn(sessions, purchases, "bo", 2)
    await earn(sessions, purchases, "bo", 4, viewer="eve", release=False)
    bo = await make_ready(sessions, "bo")
    assert await held(sessions, "bo") == (4_000, 2_000, 0)
    payouts = racing_payouts(racing)
    codes = TOTP_CLOCK.codes_now(bo.secret)

    work: list[Callable[[], Awaitable[object]]] = [
        lambda n=n: payouts.request_payout(  # type: ignore[misc]
            bo.request(f"bo-race-{n:04d}", 2_000, totp_code=codes[n % 3])
        )
        for n in range(8)
    ]
    work[2:2] = [lambda: release_due(racing, creator_id="bo")] * 2
    work[6:6] = [lambda: release_due(racing)] * 2
    results = await race(work)

    requested = outcomes([r for r in results if not isinstance(r, int)])
    assert requested[SecondFactorReused.__name__] == 5
    assert requested["ok"] + requested[InsufficientDiamonds.__name__] == 3
    assert 1 <= requested["ok"] <= 3
    assert sum(r for r in results if isinstance(r, int)) <= 1  # a request may have released it
    pending, available, reserved = await held(sessions, "bo")
    assert (pending, available + reserved) == (0, 6_000)
    assert reserved == 2_000 * requested["ok"]
    await check_books(sessions)


async def test_finance_racing_to_resolve_a_payout_resolves_it_once(
    racing: async_sessionmaker[AsyncSession],
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    await earn(sessions, purchases, "bo", 4)
    bo = await make_ready(sessions, "bo")
    payouts = racing_payouts(racing)
    payout = (await payouts.request_payout(bo.request("bo-payout-0001", 4_000))).payout

    results = await race(
        [
            lambda n=n: payouts.advance(  # type: ignore[misc]
                action(
                    payout.id,
                    PayoutPhase.SENT if n % 2 else PayoutPhase.REJECTED,
                    f"finance-{n:04d}",
                    "duplicate request",
                    actor=f"user:finance{n % 3}",
                )
            )
            for n in range(12)
        ]
    )

    assert outcomes(results) == {"ok": 1, InvalidPayoutTransition.__name__: 11}
    await check_books(sessions)
