"""Chargebacks told as stories: the stolen-card laundering pattern, the loss landing where
policy says, and a dispute won after the creator's gift left its hold."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.rules import LossPolicy
from accounting.chargebacks.tables import ChargebackClawbackRow, ChargebackRow
from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.integrity import check_integrity
from accounting.ledger import chart
from accounting.ledger.balances import creator_balances, wallet
from accounting.ledger.errors import AccountFrozen
from accounting.ledger.posting import in_transaction
from accounting.ledger.tables import AccountRow
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.purchases.tables import PurchaseRow
from api.app import create_app
from api.settings import Settings
from tests.chargebacks.deliveries import deliver, dispute, reference_of

WEEK = timedelta(days=7)


async def buy(purchases: PurchaseService, user: str, coins: int) -> PurchaseRow:
    result = await purchases.purchase_coins(
        PurchaseRequest(user, uuid.uuid4().hex, "USD", "web", "card", "tok_success",
                        custom_coins=coins)
    )  # fmt: skip
    assert result.purchase.status == "completed"
    return result.purchase


async def send(service: GiftService, sender: str, stream: int, code: str, quantity: int) -> int:
    result = await service.send_gift(GiftRequest(sender, uuid.uuid4().hex, stream, code, quantity))
    return result.gift.id


async def balance(sessions: async_sessionmaker[AsyncSession], code: str) -> int:
    async with sessions() as session:
        row = await session.scalar(select(AccountRow).where(AccountRow.code == code))
    return 0 if row is None else row.balance


async def problems(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session, session.begin():
        report = await check_integrity(session)
    return [f"{v.check}: {v.detail}" for v in report.violations]


def web(settings: Settings, db_url: URL, **changes: object) -> httpx.AsyncClient:
    app = create_app(settings.model_copy(update=changes), db_url)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cb.test")


@pytest.fixture(params=["receivable", "fraud_loss"])
async def provider(
    request: pytest.FixtureRequest, settings: Settings, db_url: URL
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with web(settings, db_url, chargeback_loss_policy=LossPolicy(request.param)) as http:
        yield http, request.param


async def test_the_stolen_card_laundering_pattern(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    provider: tuple[httpx.AsyncClient, str],
) -> None:
    """Mallory buys 1,000 coins with a stolen card and gifts 800 of them to Shady, who is in on
    it: 300 coins a week ago (their diamonds have left the hold) and 500 just now (still
    pending). Vic, an honest viewer, gifts Shady 100 coins too. The card's owner disputes the
    charge.

    The 200 coins Mallory still holds are clawed back. Of the 800 she spent, the 500 diamonds
    still pending at Shady go back, with their $2.50 payable; the 300 already available stay.
    What those cost is the loss, booked to Mallory's receivable or to fraud losses by policy.
    Vic's gift is untouched, Mallory is frozen, and the books balance."""
    http, policy = provider
    released_at_once = GiftService(sessions, hold=timedelta(0))
    held = GiftService(sessions, hold=WEEK)
    stolen = await buy(purchases, "mallory", 1_000)
    await buy(purchases, "vic", 100)
    stream = await in_transaction(sessions, lambda s: start_stream(s, "shady", "totally legit"))
    await send(released_at_once, "mallory", stream.id, "hand_hearts", 3)  # 300 coins
    assert await release_due(sessions) == 1
    await send(held, "mallory", stream.id, "money_gun", 1)  # 500 coins, pending
    vic_gift = await send(held, "vic", stream.id, "hand_hearts", 1)  # 100 coins, pending
    async with sessions() as session:
        before = await creator_balances(session, "shady", "USD")
        value_paid = -(await balance(sessions, chart.user_coins_value("mallory", "USD").code))
    assert (before.diamonds_pending, before.diamonds_available) == (600, 300)

    response = await deliver(
        http,
        "card",
        dispute(await reference_of(sessions, stolen.id), amount=stolen.price_minor, fee=1500),
    )
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "charged_back"

    async with sessions() as session:
        after = await creator_balances(session, "shady", "USD")
        mallory = await wallet(session, "mallory", "USD")
        chargeback = await session.scalar(select(ChargebackRow))
        clawbacks = (await session.scalars(select(ChargebackClawbackRow))).all()
    assert chargeback is not None
    assert (after.diamonds_pending, after.diamonds_available) == (100, 300)
    assert before.payable_micros - after.payable_micros == 500 * 5_000
    assert (mallory.coins, mallory.coins_value_micros) == (0, 0)
    assert [(c.creator_id, c.coins, c.diamonds) for c in clawbacks] == [("shady", 500, 500)]
    assert vic_gift not in {c.gift_id for c in clawbacks}
    assert (chargeback.coins_clawed, chargeback.coins_spent) == (200, 800)

    # The loss: what the 800 spent coins cost, less the payable clawed back.
    price = stolen.price_minor * 10_000
    spent_value = round(price * 800 / 1_000)
    assert chargeback.loss_micros == spent_value - 500 * 5_000
    receivable = await balance(sessions, chart.user_receivable("mallory", "USD").code)
    fraud = await balance(sessions, chart.fraud_losses("USD").code)
    if policy == "receivable":
        assert (receivable, fraud) == (chargeback.loss_micros, 0)
    else:
        assert (receivable, fraud) == (0, chargeback.loss_micros)
    assert chargeback.loss_booked_to == policy
    assert (
        chargeback.value_released_micros
        + chargeback.payable_clawed_micros
        + chargeback.loss_micros
        + chargeback.contra_revenue_micros
        == chargeback.value_paid_micros
        == price
    )
    assert value_paid == chargeback.value_released_micros

    # Mallory may neither buy nor gift; Shady's honest earnings and Vic are untouched.
    with pytest.raises(AccountFrozen):
        await buy(purchases, "mallory", 100)
    with pytest.raises(AccountFrozen):
        await send(held, "mallory", stream.id, "rose", 1)
    async with sessions() as session:
        assert (await wallet(session, "vic", "USD")).coins == 0
    assert await problems(sessions) == []


async def test_a_dispute_won_after_the_gift_left_its_hold_returns_the_diamonds_to_available(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    client: httpx.AsyncClient,
) -> None:
    """Mallory holds 250 coins from before, then buys 1,000 with a card and gifts 300 (released)
    and 500 (a short hold) to Shady, keeping 450. A dispute claws back those 450 coins; the other
    550 are traced to the 300-coin gift (available: stays) and 250 of the 500-coin gift (pending:
    clawed back). The hold passes: the gift's other 250 diamonds are released. Then the dispute
    is won: the 250 clawed-back diamonds go to available, where the release would have put
    them, and every book is as if the dispute never happened but for its fee."""
    at_once = GiftService(sessions, hold=timedelta(0))
    short = GiftService(sessions, hold=timedelta(seconds=2))
    await buy(purchases, "mallory", 250)
    stolen = await buy(purchases, "mallory", 1_000)
    stream = await in_transaction(sessions, lambda s: start_stream(s, "shady", "live"))
    await send(at_once, "mallory", stream.id, "hand_hearts", 3)
    await release_due(sessions)
    await send(short, "mallory", stream.id, "money_gun", 1)
    reference = await reference_of(sessions, stolen.id)
    opened = await deliver(client, "card", dispute(reference, amount=stolen.price_minor))
    assert opened.json()["outcome"] == "charged_back", opened.text
    async with sessions() as session:
        clawed = await creator_balances(session, "shady", "USD")
    assert (clawed.diamonds_pending, clawed.diamonds_available) == (250, 300)
    assert await problems(sessions) == []

    await asyncio.sleep(2.1)
    assert await release_due(sessions) == 1
    async with sessions() as session:
        released = await creator_balances(session, "shady", "USD")
    assert (released.diamonds_pending, released.diamonds_available) == (0, 550)
    assert await problems(sessions) == []

    won = await deliver(
        client,
        "card",
        dispute(reference, amount=stolen.price_minor, status="won", closed=True),
    )
    assert won.json()["outcome"] == "dispute_won", won.text
    async with sessions() as session:
        restored = await creator_balances(session, "shady", "USD")
        mallory = await wallet(session, "mallory", "USD")
    assert (restored.diamonds_pending, restored.diamonds_available) == (0, 800)
    assert restored.payable_micros == 800 * 5_000
    assert mallory.coins == 450
    assert await balance(sessions, chart.user_receivable("mallory", "USD").code) == 0
    assert await problems(sessions) == []
