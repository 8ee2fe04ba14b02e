"""A worked example of payouts, told as Bo and the finance team would tell it.

Bo streams; Ana sends him four Galaxies: 4,000 diamonds, worth $20.00 at half a cent each.
An admin verifies Bo's identity; Bo sets up his authenticator app and registers his PayPal
address. He asks for 2,501 diamonds: they are worth $12.505, so $12.50 is paid, for 2,500
diamonds, and the odd one stays with him. Fiona in finance sends it through PayPal, and PayPal
confirms it. Ana sends two more Galaxies: Bo holds 3,500 diamonds and is owed $17.50. He asks
for 3,499 ($17.495, so $17.49 for 3,498); PayPal returns the transfer, Fiona marks it failed,
and his diamonds are his to redeem again. A last, small request for 1,000 diamonds ($5.00) is
below the $10 minimum.
"""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting import integrity
from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger import balances
from accounting.ledger.balances import creator_balances
from accounting.ledger.posting import in_transaction
from accounting.ledger.tables import JournalEntryRow
from accounting.payouts.errors import BelowPayoutMinimum
from accounting.payouts.methods import PayoutMethodDetails, PayoutMethodKind
from accounting.payouts.rules import PayoutPhase
from accounting.payouts.service import PayoutAction, PayoutRequest
from accounting.policy import audit, standing
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.reads import reports
from tests.payouts.clock import TOTP_CLOCK
from tests.payouts.support import payout_service


async def balance(sessions: async_sessionmaker[AsyncSession], code: str) -> int:
    async with sessions() as session:
        found = await balances.account_balance(session, code)
    return found.balance if found else 0


async def test_bo_is_paid_once_and_a_returned_payout_gives_his_diamonds_back(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    gifts = GiftService(sessions, functional_currency="USD", hold=timedelta(0))
    payouts = payout_service(sessions)
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "ana-buys-7000", "USD", "web", "card", "tok_success", package_code="coins_7000"
        )
    )
    assert bought.purchase.status == "completed"
    stream = await in_transaction(sessions, lambda s: start_stream(s, "bo", "Bo sings"))
    await gifts.send_gift(GiftRequest("ana", "ana-galaxies-01", stream.id, "galaxy", 4))
    await release_due(sessions)

    # Bo gets ready: verified by Adam, an authenticator app, a PayPal address.
    await in_transaction(
        sessions,
        lambda s: standing.set_kyc_verified(
            s, "bo", verified=True, reason="passport and selfie checked", actor="user:adam"
        ),
    )
    secret = pyotp.parse_uri(await payouts.second_factor.start_enrolment(sessions, "bo")).secret

    def app() -> str:  # what the app shows at each request: a code of its own (tests/payouts/clock)
        return TOTP_CLOCK.next_code(secret)

    await payouts.second_factor.confirm_enrolment(sessions, "bo", app())
    paypal = await payouts.register_payout_method(
        "bo", PayoutMethodDetails(PayoutMethodKind.PAYPAL, "Bo", paypal_email="bo@ex.com"), app()
    )
    assert paypal.masked == "b***@ex.com"

    # The first payout: 2,501 diamonds asked for, 2,500 paid for with $12.50.
    first = (
        await payouts.request_payout(PayoutRequest("bo", "bo-payout-01", 2_501, paypal.id, app()))
    ).payout
    assert (first.diamonds, first.amount_micros) == (2_500, 12_500_000)
    async with sessions() as session:
        bo = await creator_balances(session, "bo", "USD")
    assert (bo.diamonds_available, bo.diamonds_reserved, bo.payable_micros) == (
        1_500,
        2_500,
        20_000_000,
    )

    for phase, reason in ((PayoutPhase.SENT, ""), (PayoutPhase.PAID, "PayPal confirmed")):
        await payouts.advance(
            PayoutAction(first.id, phase, "user:fiona", f"fiona-{phase}-01", reason=reason)
        )
    assert await balance(sessions, "creator:bo:payable") == 7_500_000
    assert await balance(sessions, "platform:payouts_in_transit:USD") == 0
    assert await balance(sessions, "platform:diamonds:redeemed") == -2_500

    # The second payout goes out and comes back.
    await gifts.send_gift(GiftRequest("ana", "ana-galaxies-02", stream.id, "galaxy", 2))
    asked = PayoutRequest("bo", "bo-payout-02", 3_499, paypal.id, app())
    second = (await payouts.request_payout(asked)).payout
    assert (second.diamonds, second.amount_micros) == (3_498, 17_490_000)
    await payouts.advance(PayoutAction(second.id, PayoutPhase.SENT, "user:fiona", "fiona-sent-02"))
    assert await balance(sessions, "platform:payouts_in_transit:USD") == 17_490_000
    await payouts.advance(
        PayoutAction(
            second.id, PayoutPhase.FAILED, "user:fiona", "fiona-failed-02", "PayPal account limited"
        )
    )
    async with sessions() as session:
        bo = await creator_balances(session, "bo", "USD")
    assert (bo.diamonds_available, bo.diamonds_reserved, bo.payable_micros) == (
        3_500,
        0,
        17_500_000,
    )

    # A small request is below the minimum and changes nothing.
    with pytest.raises(BelowPayoutMinimum):
        await payouts.request_payout(PayoutRequest("bo", "bo-payout-03", 1_000, paypal.id, app()))

    # The books, as finance reads them (micro-units).
    # 6,000 diamonds were issued to Bo, worth $30.00: 2,500 were redeemed for the $12.50 that
    # left the bank, and he is owed $17.50 for the 3,500 he holds; the returned $17.49 is owed
    # to him again, nothing is in transit.
    assert await balance(sessions, "platform:diamonds:issued") == 6_000
    assert await balance(sessions, "platform:diamonds:redeemed") == -2_500
    assert await balance(sessions, "platform:bank:USD") == -12_500_000
    assert await balance(sessions, "creator:bo:payable") == 30_000_000 - 12_500_000
    assert await balance(sessions, "platform:payouts_in_transit:USD") == 0
    async with sessions() as session:
        trial = await reports.trial_balance(session)
        kinds = (
            await session.scalars(
                select(JournalEntryRow.event_key)
                .where(JournalEntryRow.kind == "payout")
                .order_by(JournalEntryRow.id)
            )
        ).all()
        trail = await audit.audit_trail(session)
    async with sessions() as session, session.begin():
        report = await integrity.check_integrity(session)
    assert trial.balanced
    assert kinds == [
        f"payout:{first.id}:requested",
        f"payout:{first.id}:sent",
        f"payout:{first.id}:paid",
        f"payout:{second.id}:requested",
        f"payout:{second.id}:sent",
        f"payout:{second.id}:failed",
    ]
    assert [(r.actor, r.action, r.reason) for r in reversed(trail.items)] == [
        ("user:adam", "kyc.verified", "passport and selfie checked"),
        ("user:fiona", "payout.sent", ""),
        ("user:fiona", "payout.paid", "PayPal confirmed"),
        ("user:fiona", "payout.sent", ""),
        ("user:fiona", "payout.failed", "PayPal account limited"),
    ]
    assert report.ok, report.violations
