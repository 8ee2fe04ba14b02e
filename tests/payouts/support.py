"""Shared set-up for payout tests in the domain: a creator with available diamonds, verified,
with a confirmed second factor and a payout method, ready to request a payout."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

import pyotp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting import integrity
from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.rules import CoinRates
from accounting.gifts.service import GiftService
from accounting.gifts.streams import live_stream_of, start_stream
from accounting.gifts.tables import StreamRow
from accounting.ledger.posting import in_transaction
from accounting.payouts import methods as payout_methods
from accounting.payouts.methods import PayoutMethodDetails, PayoutMethodKind, check_method
from accounting.payouts.rules import PayoutPhase
from accounting.payouts.sealing import PayoutKeys
from accounting.payouts.second_factor import SecondFactor, Throttle
from accounting.payouts.service import PayoutAction, PayoutPolicy, PayoutRequest, PayoutService
from accounting.policy import standing
from accounting.purchases.service import PurchaseRequest, PurchaseService
from api.settings import DEVELOPMENT_SECRETS_KEY
from tests.payouts.clock import TOTP_CLOCK

FINANCE = "user:fiona"
KEYS = PayoutKeys.from_secrets_key(DEVELOPMENT_SECRETS_KEY)
SECOND_FACTOR = SecondFactor(KEYS, clock=TOTP_CLOCK)
"""Second factors as the service keeps them, checked at the tests' step clock."""


def payout_service(
    sessions: async_sessionmaker[AsyncSession],
    policy: PayoutPolicy | None = None,
    *,
    cooling_off: timedelta = timedelta(0),
    throttle: Throttle | None = None,
) -> PayoutService:
    """Payouts in USD under ``policy`` (the defaults), with no cooling-off for new payout
    methods unless given, and the tests' second factor (its throttle as given)."""
    return PayoutService(
        sessions,
        second_factor=replace(SECOND_FACTOR, throttle=throttle or SECOND_FACTOR.throttle),
        functional_currency="USD",
        policy=replace(policy or PayoutPolicy(), method_cooling_off=cooling_off),
    )


@dataclass(frozen=True)
class ReadyCreator:
    creator_id: str
    secret: str
    method_id: int

    def code(self) -> str:
        """A code of a step of its own (the tests' clock moves on a step)."""
        return TOTP_CLOCK.next_code(self.secret)

    def request(self, key: str, diamonds: int, **overrides: object) -> PayoutRequest:
        fields: dict[str, object] = {
            "creator_id": self.creator_id,
            "idempotency_key": key,
            "diamonds": diamonds,
            "method_id": self.method_id,
        }
        fields.update(overrides)
        if "totp_code" not in fields:  # a code given is used as is; the clock does not move
            fields["totp_code"] = self.code()
        return PayoutRequest(**fields)  # type: ignore[arg-type]


async def earn(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    creator_id: str,
    galaxies: int,
    *,
    viewer: str = "ana",
    rates: CoinRates | None = None,
    release: bool = True,
) -> None:
    """The viewer buys 7,000 coins and sends ``galaxies`` Galaxies (1,000 coins each) to the
    creator's stream; the hold is zero and, unless ``release`` is false, released at once:
    1,000 diamonds a Galaxy."""
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            viewer,
            f"{viewer}-buys-for-{creator_id}-{galaxies}",
            "USD",
            "web",
            "card",
            "tok_success",
            package_code="coins_7000",
        )
    )
    assert bought.purchase.status == "completed"
    gifts = GiftService(sessions, functional_currency="USD", hold=timedelta(0), rates=rates)

    async def live(session: AsyncSession) -> StreamRow:
        found = await live_stream_of(session, creator_id)
        return found or await start_stream(session, creator_id, "Payday")

    stream = await in_transaction(sessions, live)
    await gifts.send_gift(
        GiftRequest(
            viewer, f"{viewer}-galaxy-{creator_id}-{galaxies}", stream.id, "galaxy", galaxies
        )
    )
    if release:
        await release_due(sessions, creator_id=creator_id)


async def make_ready(sessions: async_sessionmaker[AsyncSession], creator_id: str) -> ReadyCreator:
    """KYC verified by an admin, a confirmed TOTP factor, a bank account (registered as the
    service keeps it, without asking for a code: that is tested of its own)."""
    await in_transaction(
        sessions,
        lambda s: standing.set_kyc_verified(
            s, creator_id, verified=True, reason="passport checked", actor="user:adam"
        ),
    )
    uri = await SECOND_FACTOR.start_enrolment(sessions, creator_id)
    secret = pyotp.parse_uri(uri).secret
    await SECOND_FACTOR.confirm_enrolment(sessions, creator_id, TOTP_CLOCK.next_code(secret))
    method = await in_transaction(
        sessions,
        lambda s: payout_methods.register(
            s,
            creator_id,
            check_method(
                PayoutMethodDetails(
                    PayoutMethodKind.BANK_ACCOUNT,
                    f"{creator_id.title()} Example",
                    account_number="000123456789",
                    routing_number="021000021",
                ),
                KEYS,
            ),
        ),
    )
    return ReadyCreator(creator_id, secret, method.id)


def action(
    payout_id: int, phase: PayoutPhase, key: str, reason: str = "", actor: str = FINANCE
) -> PayoutAction:
    return PayoutAction(payout_id, phase, actor, key, reason=reason)


async def advance(
    payouts: PayoutService, payout_id: int, phase: PayoutPhase, reason: str = ""
) -> str:
    result = await payouts.advance(action(payout_id, phase, f"fin-{payout_id}-{phase}", reason))
    return result.payout.status


async def check_books(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        report = await integrity.check_integrity(session)
    assert report.violations == [], report.violations
