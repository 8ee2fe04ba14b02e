"""How a chargeback traces the coins its purchase's buyer already spent (accounting/
chargebacks.py): the buyer's gifts and unlocks from the purchase on, earliest first, skipping
coins that standing chargebacks already traced; the diamonds of those gifts still in their hold
come back with their payable.

Each coin is spent once, so each spent coin is traced once: coins one chargeback traced to an
unlock or to a gift already out of its hold are not traced again by the next one, so a second
stolen purchase is traced to the pending gift it really paid for. And a gift's diamonds clawed
back in pieces are floored on the running total, so a gift every coin of which was charged back
keeps no diamond.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.rules import LossPolicy
from accounting.chargebacks.service import ChargebackClaim, ChargebackKind, Outcome, charge_back
from accounting.chargebacks.tables import ChargebackRow
from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.rules import CoinRates
from accounting.gifts.service import FeatureRequest, GiftService
from accounting.gifts.streams import start_stream
from accounting.integrity import check_integrity
from accounting.ledger.balances import creator_balances
from accounting.ledger.posting import in_transaction
from accounting.ledger.valuation import release_value
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.purchases.tables import PurchaseRow

WEEK = timedelta(days=7)


async def buy(purchases: PurchaseService, user: str, coins: int) -> PurchaseRow:
    result = await purchases.purchase_coins(
        PurchaseRequest(
            user, uuid.uuid4().hex, "USD", "web", "card", "tok_success", custom_coins=coins
        )
    )
    assert result.purchase.status == "completed"
    return result.purchase


async def take_back(sessions: async_sessionmaker[AsyncSession], purchase_id: int) -> ChargebackRow:
    claim = ChargebackClaim(
        purchase_id, ChargebackKind.DISPUTE, f"dp_{purchase_id}", "fraudulent", "provider:card"
    )
    result = await in_transaction(
        sessions,
        lambda s: charge_back(
            s, claim, functional_currency="USD", loss_policy=LossPolicy.RECEIVABLE
        ),
    )
    assert result.outcome is Outcome.CHARGED_BACK and result.chargeback is not None
    return result.chargeback


async def integrity_violations(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session, session.begin():
        report = await check_integrity(session)
    return [f"{v.check}: {v.detail}" for v in report.violations]


@pytest.mark.parametrize("first_unlocks", [True, False], ids=["unlock", "released_gift"])
@pytest.mark.parametrize("order", ["first_purchase_first", "second_purchase_first"])
async def test_coins_one_chargeback_traced_are_not_traced_again_by_another(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    first_unlocks: bool,
    order: str,
) -> None:
    """Mallory buys 100 coins twice with stolen cards. She spends the first 100 on something
    that gives nothing back (the supporter badge, or a gift to Shady that has left its hold),
    then the other 100 on Hand Hearts for Shady, in its hold. Both charges are disputed, in
    either order.

    Between them the two chargebacks trace 200 spent coins: the first 100 to the badge (or
    the released gift), the other 100 to the Hand Hearts, whose 100 pending diamonds come
    back with their $0.50 payable. Shady keeps nothing that stolen coins paid for and is
    still in its hold.

    Whichever is charged back first is traced to the first 100 coins it finds; the other
    then finds those coins traced and goes on to the next 100."""
    stream = await in_transaction(sessions, lambda s: start_stream(s, "shady", "live"))
    at_once = GiftService(sessions, hold=timedelta(0))
    held = GiftService(sessions, hold=WEEK)
    first = await buy(purchases, "mallory", 100)
    second = await buy(purchases, "mallory", 100)
    if first_unlocks:
        await held.unlock_feature(FeatureRequest("mallory", uuid.uuid4().hex, "supporter_badge"))
    else:
        await at_once.send_gift(
            GiftRequest("mallory", uuid.uuid4().hex, stream.id, "hand_hearts", 1)
        )
        assert await release_due(sessions) == 1
    await held.send_gift(GiftRequest("mallory", uuid.uuid4().hex, stream.id, "hand_hearts", 1))
    async with sessions() as session:
        before = await creator_balances(session, "shady", "USD")
    assert before.diamonds_pending == 100

    for purchase in (first, second) if order == "first_purchase_first" else (second, first):
        await take_back(sessions, purchase.id)

    async with sessions() as session:
        after = await creator_balances(session, "shady", "USD")
        chargebacks = (await session.scalars(select(ChargebackRow))).all()
    assert await integrity_violations(sessions) == []  # the integrity check sees no fault
    spent_value = release_value(first.price_minor * 10_000, 100, 100)
    assert sorted(c.diamonds_clawed for c in chargebacks) == [0, 100], [
        (c.purchase_id, c.diamonds_clawed, c.loss_micros) for c in chargebacks
    ]
    assert (after.diamonds_pending, before.payable_micros - after.payable_micros) == (
        0,
        100 * 5_000,
    )
    assert sum(c.loss_micros for c in chargebacks) == 2 * spent_value - 100 * 5_000


async def test_a_gift_every_coin_of_which_is_charged_back_keeps_no_diamond(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """At 0.8 diamonds a coin ($0.02 a diamond), Mallory buys 100 coins and sends Shady 98
    roses (78 diamonds); buys 100 more and sends a Finger Heart (5 coins: 4 diamonds, 2 of
    its coins from the first purchase, 3 from the second) and 97 roses (77 diamonds). Both
    purchases are charged back: every coin of every gift was stolen, and every gift is in its
    hold. All 159 diamonds and their $3.18 payable come back.

    The Finger Heart comes back in two pieces, floored on the running total: its first 2 coins
    give back ⌊1.6⌋ = 1 diamond, its other 3 give ⌊4⌋ − ⌊1.6⌋ = 3, so no diamond stays behind
    without the coins that paid for it."""
    rates = CoinRates(diamonds_per_coin=Decimal("0.8"), diamond_value_micros=20_000)
    held = GiftService(sessions, hold=WEEK, rates=rates)
    stream = await in_transaction(sessions, lambda s: start_stream(s, "shady", "live"))

    async def send(code: str, quantity: int) -> None:
        await held.send_gift(GiftRequest("mallory", uuid.uuid4().hex, stream.id, code, quantity))

    first = await buy(purchases, "mallory", 100)
    await send("rose", 98)
    second = await buy(purchases, "mallory", 100)
    await send("finger_heart", 1)
    await send("rose", 97)
    async with sessions() as session:
        before = await creator_balances(session, "shady", "USD")
    assert (before.diamonds_pending, before.payable_micros) == (159, 159 * 20_000)

    for purchase in (first, second):
        await take_back(sessions, purchase.id)

    async with sessions() as session:
        after = await creator_balances(session, "shady", "USD")
    assert await integrity_violations(sessions) == []  # the integrity check sees no fault
    assert after.payable_micros == 0
    assert after.diamonds_pending == 0, "a diamond no coin paid for stays with the creator"
