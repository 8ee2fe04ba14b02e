"""Payouts in the domain, against a real PostgreSQL: every control on a request, each phase's
entry, each phase at most once, idempotency of the creator's request and of finance actions,
whole-cent cash at the weighted average, and the audit of what finance and admins did."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.rules import CoinRates
from accounting.ledger import balances
from accounting.ledger.balances import creator_balances
from accounting.ledger.errors import (
    AccountFrozen,
    IdempotencyKeyReused,
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidReason,
    LedgerError,
    LimitExceeded,
)
from accounting.ledger.posting import in_transaction
from accounting.ledger.tables import JournalEntryRow
from accounting.payouts import methods as payout_methods
from accounting.payouts.errors import (
    BelowPayoutMinimum,
    DailyPayoutCapExceeded,
    InsufficientDiamonds,
    InvalidPayoutMethod,
    InvalidPayoutTransition,
    InvalidTotpCode,
    KycNotVerified,
    PayoutMethodNotFound,
    PayoutNotFound,
    TotpAlreadyConfirmed,
    TotpNotEnrolled,
)
from accounting.payouts.methods import PayoutMethodDetails, PayoutMethodKind, check_method
from accounting.payouts.rules import PayoutPhase, payout_amounts
from accounting.payouts.service import PayoutPolicy, PayoutService, cash_requested_today
from accounting.payouts.tables import PayoutEventRow
from accounting.policy import audit, standing
from accounting.purchases.service import PurchaseService
from tests.payouts.clock import TOTP_CLOCK
from tests.payouts.support import (
    FINANCE,
    KEYS,
    ReadyCreator,
    action,
    advance,
    check_books,
    earn,
    make_ready,
    payout_service,
)


@pytest.fixture
def payouts(sessions: async_sessionmaker[AsyncSession]) -> PayoutService:
    return payout_service(sessions)


@pytest.fixture
async def bo(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> ReadyCreator:
    """Bo: 4,000 diamonds available, worth $20.00 at $0.005 each; ready for payouts."""
    await earn(sessions, purchases, "bo", 4)
    return await make_ready(sessions, "bo")


async def balance(sessions: async_sessionmaker[AsyncSession], code: str) -> int:
    async with sessions() as session:
        found = await balances.account_balance(session, code)
    return found.balance if found else 0


async def diamonds(sessions: async_sessionmaker[AsyncSession], creator: str) -> tuple[int, ...]:
    async with sessions() as session:
        found = await creator_balances(session, creator, "USD")
    return (found.diamonds_available, found.diamonds_reserved, found.payable_micros)


# --- the cash of a payout ------------------------------------------------------------------------


def test_at_half_a_cent_a_diamond_an_odd_diamond_stays_with_the_creator() -> None:
    found = payout_amounts(2_001, payable_micros=20_000_000, diamonds_held=4_000, currency="USD")
    assert (found.diamonds, found.amount_minor, found.amount_micros) == (2_000, 1_000, 10_000_000)


def test_mixed_rates_pay_whole_cents_for_the_fewest_diamonds_worth_them() -> None:
    # 300 diamonds owed $1.234567 in all: 100 are worth $0.411522...; 41 cents are paid, for the
    # 100 diamonds (99 are worth only $0.4074...)
    found = payout_amounts(100, payable_micros=1_234_567, diamonds_held=300, currency="USD")
    assert (found.diamonds, found.amount_minor, found.amount_micros) == (100, 41, 410_000)
    # in yen (no minor unit) the cash is whole yen
    yen = payout_amounts(7, payable_micros=10_500_000, diamonds_held=10, currency="JPY")
    assert (yen.diamonds, yen.amount_minor, yen.amount_micros) == (7, 7, 7_000_000)


@given(
    held=st.integers(1, 10**9),
    payable=st.integers(0, 10**12),
    share=st.fractions(min_value=Fraction(1, 10**9), max_value=1),
)
def test_cash_is_whole_cents_never_more_than_the_diamonds_are_worth(
    held: int, payable: int, share: Fraction
) -> None:
    requested = max(1, int(held * share))
    found = payout_amounts(requested, payable_micros=payable, diamonds_held=held, currency="USD")
    assert found.amount_micros == found.amount_minor * 10_000
    assert 0 <= found.diamonds <= requested
    # the cash is the requested diamonds' value, floored to a cent
    assert found.amount_micros <= Fraction(payable * requested, held)
    assert Fraction(payable * requested, held) - found.amount_micros < 10_000
    if found.amount_minor:
        # the redeemed diamonds are worth the cash, and one fewer would not be
        assert Fraction(payable * found.diamonds, held) >= found.amount_micros
        assert Fraction(payable * (found.diamonds - 1), held) < found.amount_micros


# --- requesting ---------------------------------------------------------------------------------


async def test_a_request_reserves_the_diamonds_the_cash_pays_for(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    result = await payouts.request_payout(bo.request("bo-payout-0001", 2_501))

    payout = result.payout
    assert not result.replayed
    assert (payout.status, payout.diamonds_requested, payout.diamonds) == (
        "requested",
        2_501,
        2_500,
    )
    assert (payout.amount_micros, payout.currency) == (12_500_000, "USD")
    assert await diamonds(sessions, "bo") == (1_500, 2_500, 20_000_000)
    async with sessions() as session:
        [event] = (await session.scalars(select(PayoutEventRow))).all()
        entry = await session.get(JournalEntryRow, event.entry_id)
    assert (event.phase, event.actor, event.payout_id) == ("requested", "user:bo", payout.id)
    assert entry is not None
    assert (entry.kind, entry.event_key) == ("payout", f"payout:{payout.id}:requested")
    await check_books(sessions)


async def test_the_same_request_again_is_the_first_payout(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    first = await payouts.request_payout(bo.request("bo-payout-0001", 2_000))
    # a retry after a timeout, with a newer (here: a wrong) code: nothing new, no code asked
    again = await payouts.request_payout(bo.request("bo-payout-0001", 2_000, totp_code="000000"))

    assert again.replayed
    assert again.payout.id == first.payout.id
    assert await diamonds(sessions, "bo") == (2_000, 2_000, 20_000_000)
    with pytest.raises(IdempotencyKeyReused):
        await payouts.request_payout(bo.request("bo-payout-0001", 2_002))


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"diamonds": 0}, InvalidAmount),
        ({"idempotency_key": "short"}, InvalidIdempotencyKey),
        ({"totp_code": "12345"}, InvalidTotpCode),
        ({"method_id": 999}, PayoutMethodNotFound),
        ({"diamonds": 4_001}, InsufficientDiamonds),
        ({"diamonds": 1_999}, BelowPayoutMinimum),
    ],
)
async def test_a_request_that_fails_a_control_reserves_nothing(
    sessions: async_sessionmaker[AsyncSession],
    payouts: PayoutService,
    bo: ReadyCreator,
    overrides: dict[str, Any],
    error: type[LedgerError],
) -> None:
    request = replace(bo.request("bo-payout-0001", 2_000), **overrides)
    with pytest.raises(error):
        await payouts.request_payout(request)
    assert await diamonds(sessions, "bo") == (4_000, 0, 20_000_000)
    await check_books(sessions)


async def test_a_frozen_creator_cannot_request_a_payout(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    await in_transaction(
        sessions,
        lambda s: standing.set_frozen(s, "bo", frozen=True, reason="dispute", actor="user:adam"),
    )
    with pytest.raises(AccountFrozen):
        await payouts.request_payout(bo.request("bo-payout-0001", 2_000))
    assert await diamonds(sessions, "bo") == (4_000, 0, 20_000_000)


async def test_kyc_must_be_verified_and_stay_verified(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    payouts: PayoutService,
    bo: ReadyCreator,
) -> None:
    await in_transaction(
        sessions,
        lambda s: standing.set_kyc_verified(
            s, "bo", verified=False, reason="document expired", actor="user:adam"
        ),
    )
    with pytest.raises(KycNotVerified):
        await payouts.request_payout(bo.request("bo-payout-0001", 2_000))
    async with sessions() as session:
        trail = await audit.audit_trail(session, subject="user:bo")
    assert [(r.actor, r.action, r.reason) for r in trail.items] == [
        ("user:adam", "kyc.unverified", "document expired"),
        ("user:adam", "kyc.verified", "passport checked"),
    ]
    with pytest.raises(InvalidReason):
        await in_transaction(
            sessions,
            lambda s: standing.set_kyc_verified(
                s, "bo", verified=True, reason=" ", actor="user:adam"
            ),
        )


async def test_a_second_factor_is_enrolled_confirmed_and_then_required(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, payouts: PayoutService
) -> None:
    await earn(sessions, purchases, "cy", 3)
    await in_transaction(
        sessions,
        lambda s: standing.set_kyc_verified(s, "cy", verified=True, reason="ok", actor="user:a"),
    )
    paypal = PayoutMethodDetails(PayoutMethodKind.PAYPAL, "Cy", paypal_email="cy@ex.com")
    with pytest.raises(TotpNotEnrolled):  # no payout method without a second factor
        await payouts.register_payout_method("cy", paypal, "123456")
    unconfirmed = ReadyCreator("cy", pyotp.random_base32(), 1)
    with pytest.raises(TotpNotEnrolled):
        await payouts.request_payout(unconfirmed.request("cy-payout-0001", 2_000))

    uri = await payouts.second_factor.start_enrolment(sessions, "cy")
    assert uri.startswith("otpauth://totp/Coinbooks:cy?secret=")
    secret = pyotp.parse_uri(uri).secret
    with pytest.raises(TotpNotEnrolled):  # enrolled, not confirmed yet
        await payouts.register_payout_method("cy", paypal, TOTP_CLOCK.next_code(secret))
    with pytest.raises(InvalidTotpCode):
        await payouts.second_factor.confirm_enrolment(sessions, "cy", "abcdef")
    await payouts.second_factor.confirm_enrolment(sessions, "cy", TOTP_CLOCK.next_code(secret))
    with pytest.raises(TotpAlreadyConfirmed):
        await payouts.second_factor.start_enrolment(sessions, "cy")
    method = await payouts.register_payout_method("cy", paypal, TOTP_CLOCK.next_code(secret))
    cy = ReadyCreator("cy", secret, method.id)
    wrong = TOTP_CLOCK.wrong_code(secret)
    with pytest.raises(InvalidTotpCode):
        await payouts.request_payout(cy.request("cy-payout-0001", 2_000, totp_code=wrong))

    paid = await payouts.request_payout(cy.request("cy-payout-0001", 2_000))
    assert paid.payout.amount_micros == 10_000_000


async def test_payout_methods_are_kept_masked_and_only_the_owner_may_use_one(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    paypal = PayoutMethodDetails(
        PayoutMethodKind.PAYPAL, "Dee", paypal_email="Dee.Example@Mail.com"
    )
    checked = check_method(paypal, KEYS)
    dee = await in_transaction(sessions, lambda s: payout_methods.register(s, "dee", checked))
    again = await in_transaction(sessions, lambda s: payout_methods.register(s, "dee", checked))
    assert again.id == dee.id
    assert (dee.kind, dee.masked) == ("paypal", "d***@mail.com")
    async with sessions() as session:
        [bank] = await payout_methods.methods_of(session, "bo")
    assert (bank.kind, bank.masked, bank.holder_name) == ("bank_account", "****6789", "Bo Example")
    stored = " ".join(str(v) for v in (bank.masked, bank.fingerprint, dee.masked, dee.fingerprint))
    assert "123456789" not in stored and "dee.example" not in stored

    with pytest.raises(PayoutMethodNotFound):
        await payouts.request_payout(bo.request("bo-payout-0001", 2_000, method_id=dee.id))
    for details in (
        PayoutMethodDetails(PayoutMethodKind.BANK_ACCOUNT, "Bo", account_number="12"),
        PayoutMethodDetails(PayoutMethodKind.BANK_ACCOUNT, "", account_number="12345678"),
        PayoutMethodDetails(PayoutMethodKind.PAYPAL, "Bo", paypal_email="not-an-email"),
    ):
        with pytest.raises(InvalidPayoutMethod):  # before a code is asked for
            await payouts.register_payout_method("bo", details, "000000")


async def test_the_daily_cap_counts_todays_payouts_but_not_rejected_ones(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, bo: ReadyCreator
) -> None:
    """A $15 cap: $10 requested, then $10 more is refused; once the first is rejected the
    second fits."""
    capped = payout_service(sessions, PayoutPolicy(minimum_minor=100, daily_cap_minor=1_500))
    first = await capped.request_payout(bo.request("bo-payout-0001", 2_000))
    with pytest.raises(DailyPayoutCapExceeded) as refused:
        await capped.request_payout(bo.request("bo-payout-0002", 2_000))
    assert refused.value.message == (
        "10.00 USD already requested today (UTC); 10.00 USD more would pass the daily cap of "
        "15.00 USD"
    )
    assert isinstance(refused.value, LimitExceeded)  # one family with the other limits
    assert refused.value.facts == {
        "cap_micros": 15_000_000,
        "requested_today_micros": 10_000_000,
        "asked_micros": 10_000_000,
    }
    assert await diamonds(sessions, "bo") == (2_000, 2_000, 20_000_000)
    await capped.request_payout(bo.request("bo-payout-0003", 1_000))  # $5: exactly the cap

    await advance(capped, first.payout.id, PayoutPhase.REJECTED, "wrong account")
    async with sessions() as session:
        assert await cash_requested_today(session, "bo") == 5_000_000
    second = await capped.request_payout(bo.request("bo-payout-0002", 2_000))
    assert second.payout.status == "requested"
    await check_books(sessions)


# --- the phases ---------------------------------------------------------------------------------


async def test_rejected_before_sending_the_diamonds_are_available_again(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    payout = (await payouts.request_payout(bo.request("bo-payout-0001", 3_000))).payout

    assert await advance(payouts, payout.id, PayoutPhase.REJECTED, "name mismatch") == "rejected"

    assert await diamonds(sessions, "bo") == (4_000, 0, 20_000_000)
    for phase in (PayoutPhase.REJECTED, PayoutPhase.SENT, PayoutPhase.PAID, PayoutPhase.FAILED):
        with pytest.raises(InvalidPayoutTransition):
            await payouts.advance(action(payout.id, phase, f"late-{phase}", "again"))
    async with sessions() as session:
        trail = await audit.audit_trail(session, subject=f"payout:{payout.id}")
    [row] = trail.items
    assert (row.actor, row.action, row.reason) == (FINANCE, "payout.rejected", "name mismatch")
    await check_books(sessions)


async def test_sent_then_paid_the_cash_leaves_through_the_bank(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    payout = (await payouts.request_payout(bo.request("bo-payout-0001", 3_000))).payout
    bank_before = await balance(sessions, "platform:bank:USD")

    assert await advance(payouts, payout.id, PayoutPhase.SENT) == "sent"
    assert await diamonds(sessions, "bo") == (1_000, 0, 5_000_000)
    assert await balance(sessions, "platform:payouts_in_transit:USD") == 15_000_000
    assert await balance(sessions, "platform:diamonds:redeemed") == -3_000
    with pytest.raises(InvalidPayoutTransition):
        await advance(payouts, payout.id, PayoutPhase.REJECTED, "too late")

    assert await advance(payouts, payout.id, PayoutPhase.PAID) == "paid"
    assert await balance(sessions, "platform:payouts_in_transit:USD") == 0
    assert await balance(sessions, "platform:bank:USD") == bank_before - 15_000_000
    with pytest.raises(InvalidPayoutTransition):
        await payouts.advance(action(payout.id, PayoutPhase.FAILED, "fin-late-fail", "bounced"))
    async with sessions() as session:
        phases = (
            await session.scalars(
                select(PayoutEventRow.phase).where(PayoutEventRow.payout_id == payout.id)
            )
        ).all()
    assert phases == ["requested", "sent", "paid"]
    await check_books(sessions)


async def test_failed_after_sending_both_are_reversed_and_the_diamonds_available(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    payout = (await payouts.request_payout(bo.request("bo-payout-0001", 3_000))).payout
    await advance(payouts, payout.id, PayoutPhase.SENT)

    with pytest.raises(InvalidReason):
        await advance(payouts, payout.id, PayoutPhase.FAILED)  # a failure needs a reason
    assert await advance(payouts, payout.id, PayoutPhase.FAILED, "account closed") == "failed"

    assert await diamonds(sessions, "bo") == (4_000, 0, 20_000_000)
    assert await balance(sessions, "platform:payouts_in_transit:USD") == 0
    assert await balance(sessions, "platform:diamonds:redeemed") == 0
    with pytest.raises(InvalidPayoutTransition):
        await advance(payouts, payout.id, PayoutPhase.PAID)
    await check_books(sessions)
    # and the diamonds can be paid out again
    again = await payouts.request_payout(bo.request("bo-payout-0002", 4_000))
    assert again.payout.amount_micros == 20_000_000


async def test_a_finance_action_retried_with_its_key_posts_nothing_new(
    sessions: async_sessionmaker[AsyncSession], payouts: PayoutService, bo: ReadyCreator
) -> None:
    payout = (await payouts.request_payout(bo.request("bo-payout-0001", 2_000))).payout
    other = (await payouts.request_payout(bo.request("bo-payout-0002", 2_000))).payout
    sent = action(payout.id, PayoutPhase.SENT, "fiona-send-0001")

    first = await payouts.advance(sent)
    again = await payouts.advance(sent)
    await payouts.advance(action(payout.id, PayoutPhase.PAID, "fiona-paid-0001"))
    later = await payouts.advance(sent)  # the first result, brought up to date

    assert (first.replayed, again.replayed, later.replayed) == (False, True, True)
    assert (again.payout.status, later.payout.status) == ("sent", "paid")
    with pytest.raises(IdempotencyKeyReused):
        await payouts.advance(action(other.id, PayoutPhase.SENT, "fiona-send-0001"))
    with pytest.raises(PayoutNotFound):
        await payouts.advance(action(999, PayoutPhase.SENT, "fiona-send-0999"))
    async with sessions() as session:
        entries = (
            await session.scalars(
                select(JournalEntryRow.event_key)
                .where(JournalEntryRow.kind == "payout")
                .order_by(JournalEntryRow.id)
            )
        ).all()
    assert entries == [
        f"payout:{payout.id}:requested",
        f"payout:{other.id}:requested",
        f"payout:{payout.id}:sent",
        f"payout:{payout.id}:paid",
    ]
    await check_books(sessions)


async def test_at_mixed_rates_the_payable_released_is_the_cash_paid(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, payouts: PayoutService
) -> None:
    """Dee earns 3,000 diamonds at $0.005 and 2,000 at $0.004321: 5,000 diamonds owed
    $23.642. 2,345 of them are worth $11.088098: $11.08 is paid, for 2,344 diamonds (2,343
    would be worth only $11.0787...). What the redeemed diamonds held above the cash stays
    owed to Dee, on the diamonds she keeps."""
    await earn(sessions, purchases, "dee", 3)
    await earn(sessions, purchases, "dee", 2, viewer="eve", rates=CoinRates(Decimal(1), 4_321))
    dee = await make_ready(sessions, "dee")
    assert await diamonds(sessions, "dee") == (5_000, 0, 23_642_000)

    payout = (await payouts.request_payout(dee.request("dee-payout-0001", 2_345))).payout
    assert (payout.diamonds, payout.amount_micros) == (2_344, 11_080_000)
    await advance(payouts, payout.id, PayoutPhase.SENT)
    await advance(payouts, payout.id, PayoutPhase.PAID)

    assert await diamonds(sessions, "dee") == (2_656, 0, 23_642_000 - 11_080_000)
    await check_books(sessions)
