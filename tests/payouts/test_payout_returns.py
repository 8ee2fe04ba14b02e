"""A payout returned after it was paid: the bank sends the cash back days later.

The book: Bo holds 4,000 diamonds available, owed $20.00 (half a cent a diamond; see
``tests/payouts/support.py``). He is paid out 3,000 diamonds, $15.00: sent (3,000 diamonds
redeemed, $15.00 from his payable into transit), then paid (in transit to the bank). Then the
bank returns the $15.00: the bank holds it again, Bo is owed it again (payable 5.00 + 15.00 =
$20.00), his 3,000 diamonds are available again (1,000 + 3,000 = 4,000), none are redeemed, and
nothing is in transit. The payout is ``returned``, at most once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.errors import InvalidReason
from accounting.payouts.errors import InvalidPayoutTransition
from accounting.payouts.rules import PayoutPhase
from accounting.payouts.service import PayoutResult, PayoutService, cash_requested_today
from accounting.purchases.service import PurchaseService
from accounting.reads.financials import now, roll_forwards
from tests.conftest import race
from tests.payouts.support import (
    ReadyCreator,
    action,
    advance,
    check_books,
    earn,
    make_ready,
    payout_service,
)
from tests.payouts.test_payouts import balance, diamonds


@pytest.fixture
def payouts(sessions: async_sessionmaker[AsyncSession]) -> PayoutService:
    return payout_service(sessions)


@pytest.fixture
async def bo(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> ReadyCreator:
    await earn(sessions, purchases, "bo", 4)
    return await make_ready(sessions, "bo")


async def paid_payout(payouts: PayoutService, bo: ReadyCreator) -> int:
    payout = (await payouts.request_payout(bo.request("bo-payout-0001", 3_000))).payout
    await advance(payouts, payout.id, PayoutPhase.SENT)
    await advance(payouts, payout.id, PayoutPhase.PAID)
    return payout.id


async def test_a_paid_payout_the_bank_returns_is_owed_and_available_again(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    bank_before = await balance(sessions, "platform:bank:USD")
    payout_id = await paid_payout(payouts, bo)
    assert await diamonds(sessions, "bo") == (1_000, 0, 5_000_000)
    assert await balance(sessions, "platform:bank:USD") == bank_before - 15_000_000

    with pytest.raises(InvalidReason):
        await advance(payouts, payout_id, PayoutPhase.RETURNED)  # a return needs a reason
    assert await advance(payouts, payout_id, PayoutPhase.RETURNED, "account closed") == "returned"

    assert await diamonds(sessions, "bo") == (4_000, 0, 20_000_000)
    assert await balance(sessions, "platform:bank:USD") == bank_before
    assert await balance(sessions, "platform:payouts_in_transit:USD") == 0
    assert await balance(sessions, "platform:diamonds:redeemed") == 0
    async with sessions() as session:
        assert await cash_requested_today(session, "bo") == 0  # returned: it paid nothing
    await check_books(sessions)
    # and the diamonds can be paid out again, to another account
    again = await payouts.request_payout(bo.request("bo-payout-0002", 4_000))
    assert again.payout.amount_micros == 20_000_000


async def test_a_payout_is_returned_at_most_once_and_only_after_it_was_paid(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    payout_id = (await payouts.request_payout(bo.request("bo-payout-0001", 3_000))).payout.id
    await advance(payouts, payout_id, PayoutPhase.SENT)
    with pytest.raises(InvalidPayoutTransition):  # not paid yet: it fails, it is not returned
        await payouts.advance(action(payout_id, PayoutPhase.RETURNED, "fin-early-return", "x"))
    await advance(payouts, payout_id, PayoutPhase.PAID)

    returned = action(payout_id, PayoutPhase.RETURNED, "fin-return-0001", "bounced")
    first = await payouts.advance(returned)
    replay = await payouts.advance(returned)
    assert (first.replayed, replay.replayed) == (False, True)
    with pytest.raises(InvalidPayoutTransition):
        await payouts.advance(action(payout_id, PayoutPhase.RETURNED, "fin-return-0002", "x"))
    with pytest.raises(InvalidPayoutTransition):
        await payouts.advance(action(payout_id, PayoutPhase.FAILED, "fin-fail-0001", "x"))
    assert await diamonds(sessions, "bo") == (4_000, 0, 20_000_000)
    await check_books(sessions)


async def test_two_finance_people_recording_the_return_at_once_return_it_once(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    payout_id = await paid_payout(payouts, bo)

    def return_it(n: int) -> Callable[[], Awaitable[PayoutResult]]:
        key = f"fin-race-{n:04d}"
        return lambda: payouts.advance(action(payout_id, PayoutPhase.RETURNED, key, "bounced"))

    results = await race(return_it(n) for n in range(6))
    done = [r for r in results if not isinstance(r, Exception)]
    assert len(done) == 1
    assert all(isinstance(r, InvalidPayoutTransition) for r in results if r not in done)
    assert await diamonds(sessions, "bo") == (4_000, 0, 20_000_000)
    await check_books(sessions)


async def test_the_roll_forwards_explain_a_returned_payout(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    """Over the payout's life: creator payable was 20.00, paid out 15.00, returned 15.00, so
    closes at 20.00; diamonds outstanding 4,000, redeemed 3,000, returned 3,000."""
    async with sessions() as session:
        begin = await now(session)
    payout_id = await paid_payout(payouts, bo)
    await advance(payouts, payout_id, PayoutPhase.RETURNED, "bounced")
    async with sessions() as session:
        end = await now(session) + timedelta(microseconds=1)
        found = {r.code: r for r in await roll_forwards(session, "USD", begin, end)}
    payable, outstanding = found["creator_payable"], found["diamonds_outstanding"]
    lines = {line.code: line.amount for line in payable.lines}
    assert (payable.opening, payable.closing, payable.not_explained) == (20_000_000,) * 2 + (0,)
    assert (lines["paid_out"], lines["returned_payouts"]) == (-15_000_000, 15_000_000)
    lines = {line.code: line.amount for line in outstanding.lines}
    assert (outstanding.opening, outstanding.closing, outstanding.not_explained) == (4_000,) * 2 + (
        0,
    )
    assert (lines["redeemed"], lines["returned_payouts"]) == (-3_000, 3_000)
