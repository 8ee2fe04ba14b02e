"""Payouts: creators redeem diamonds for cash, in phases (DESIGN.md, Payout).

A request reserves the diamonds (available -> reserved) once every control passes: no freeze,
KYC verified, the creator's own payout method past its cooling-off, a TOTP code not used before
(used up, in a transaction of its own, before the diamonds are reserved: see
:mod:`accounting.payouts.second_factor`), enough available diamonds, the minimum and the daily
cap. Later a finance person (or, one day, the payout provider's
webhook) marks it sent, then paid or failed, or rejects it before sending. Each phase is one
event row and one journal entry, at most once: the payout row is locked for the change, and
the database refuses a second event of a phase and any transition out of order.

Every request first releases the creator's diamonds whose hold has passed (as reading their
earnings does), then locks the creator's diamond and payable accounts, so requests of one
creator (and hold releases for them) serialise: the available diamonds, the weighted average
and the day's total are read as they really are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts import holds
from accounting.ledger import chart, idempotency
from accounting.ledger.balances import CreatorBalances
from accounting.ledger.errors import IdempotencyKeyReused, InvalidAmount
from accounting.ledger.money import format_micros, minor_to_micros
from accounting.ledger.pages import Page, newest_first
from accounting.ledger.posting import in_transaction, lock_accounts, post_entry
from accounting.payouts import methods as payout_methods
from accounting.payouts import second_factor
from accounting.payouts.errors import (
    BelowPayoutMinimum,
    DailyPayoutCapExceeded,
    InsufficientDiamonds,
    InvalidPayoutTransition,
    InvalidProviderReference,
    KycNotVerified,
    PayoutMethodCoolingOff,
    PayoutNotFound,
    TotpNotEnrolled,
)
from accounting.payouts.methods import PayoutMethodDetails
from accounting.payouts.rules import (
    PayoutAmounts,
    PayoutFacts,
    PayoutPhase,
    payout_amounts,
    payout_entry,
)
from accounting.payouts.second_factor import SecondFactor
from accounting.payouts.tables import PayoutEventRow, PayoutMethodRow, PayoutRow
from accounting.policy import audit, separation, standing

MAX_PROVIDER_REFERENCE = 200
IN_FLIGHT = ("requested", "sent")
COUNTED_AGAINST_CAP = ("requested", "sent", "paid")
"""A rejected, failed or returned payout paid nothing in the end: it does not count against
the daily cap."""

FROM_STATUS = {
    PayoutPhase.REJECTED: "requested",
    PayoutPhase.SENT: "requested",
    PayoutPhase.PAID: "sent",
    PayoutPhase.FAILED: "sent",
    PayoutPhase.RETURNED: "paid",
}
"""The status each later phase starts from."""

REASON_REQUIRED = frozenset({PayoutPhase.REJECTED, PayoutPhase.FAILED, PayoutPhase.RETURNED})


@dataclass(frozen=True, slots=True)
class PayoutPolicy:
    """Controls on payouts, in the functional currency's minor units (cents)."""

    minimum_minor: int = 1_000
    daily_cap_minor: int = 100_000
    """Cash per creator per calendar day (UTC) in payouts not rejected or failed."""
    method_cooling_off: timedelta = timedelta(hours=72)
    """How long a newly registered payout method waits before its first payout."""


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    creator_id: str
    idempotency_key: str
    diamonds: int
    method_id: int
    totp_code: str
    """Not part of the request's identity: a retry after a timeout needs no code at all once
    the first attempt reserved the diamonds, and may send the same code until then."""

    def fingerprint(self) -> str:
        return idempotency.request_hash(
            "request_payout", {"diamonds": self.diamonds, "method_id": self.method_id}
        )


@dataclass(frozen=True, slots=True)
class PayoutAction:
    """A later phase of a payout, by a finance person (or a provider's webhook)."""

    payout_id: int
    phase: PayoutPhase
    actor: str
    idempotency_key: str
    reason: str = ""
    provider_reference: str | None = None

    def fingerprint(self) -> str:
        return idempotency.request_hash(
            f"payout_{self.phase}",
            {
                "payout_id": self.payout_id,
                "reason": self.reason,
                "provider_reference": self.provider_reference,
            },
        )


@dataclass(frozen=True, slots=True)
class PayoutResult:
    payout: PayoutRow
    replayed: bool
    """True when the idempotency key had been seen: nothing new was posted."""


def facts_of(payout: PayoutRow) -> PayoutFacts:
    return PayoutFacts(
        payout_id=payout.id,
        creator_id=payout.creator_id,
        diamonds=payout.diamonds,
        amount_micros=payout.amount_micros,
        currency=payout.currency,
    )


class PayoutService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        second_factor: SecondFactor,
        functional_currency: str = "USD",
        policy: PayoutPolicy | None = None,
    ) -> None:
        self._sessions = sessions
        self.second_factor = second_factor
        self.functional_currency = functional_currency
        self.policy = policy or PayoutPolicy()

    async def register_payout_method(
        self, creator_id: str, details: PayoutMethodDetails, totp_code: str
    ) -> PayoutMethodRow:
        """Register where the creator's payouts go, with a second-factor code: a stolen token
        alone cannot add an account of the thief's. Registering the same account again (with
        a code) returns the first."""
        chart.check_user_id(creator_id, field="creatorId")
        method = payout_methods.check_method(details, self.second_factor.keys)
        purpose = f"payout_method:{method.fingerprint}"
        await self.second_factor.verify(self._sessions, creator_id, totp_code, purpose=purpose)
        return await payout_methods.add_payout_method(self._sessions, creator_id, method)

    async def _lock_balances(self, session: AsyncSession, creator_id: str) -> CreatorBalances:
        """Lock the creator's diamonds in every state and their payable; read them."""
        diamonds = {
            state: chart.creator_diamonds(creator_id, state)
            for state in chart.CREATOR_DIAMOND_STATES
        }
        payable = chart.creator_payable(creator_id, self.functional_currency)
        locked = await lock_accounts(session, [*diamonds.values(), payable])
        held = {state: locked[spec.code].normal_balance for state, spec in diamonds.items()}
        return CreatorBalances(
            creator_id=creator_id,
            diamonds_pending=held["pending"],
            diamonds_available=held["available"],
            diamonds_reserved=held["reserved"],
            payable_micros=locked[payable.code].normal_balance,
            currency=self.functional_currency,
        )

    async def request_payout(self, request: PayoutRequest) -> PayoutResult:
        """Reserve the diamonds of a payout request once every control passes. The same key
        and request again returns the first payout and posts nothing (and needs no code).

        Three transactions: the replay and the creator's standing are checked (a refusal there
        uses no code), the code is used up (or refused, and counted), then the diamonds are
        reserved, every check made again under the creator's locks."""
        chart.check_user_id(request.creator_id, field="creatorId")
        idempotency.check_key(request.idempotency_key)
        if request.diamonds <= 0:
            raise InvalidAmount("Request a positive number of diamonds", field="diamonds")
        fingerprint = request.fingerprint()

        async def replay_or_check(session: AsyncSession) -> PayoutResult | None:
            existing = await payout_by_key(session, request.creator_id, request.idempotency_key)
            if existing is not None:
                # as every request does, a retry releases the diamonds whose hold has passed
                await holds.release_due_in(session, creator_id=request.creator_id)
                return _replayed(existing, fingerprint)
            await _check_creator_may_be_paid(session, request, self.policy)
            return None

        async def reserve(session: AsyncSession) -> PayoutResult:
            # the creator's accounts locked first, in one statement; then the diamonds whose
            # hold has passed are made available to this request (the on-read path)
            await self._lock_balances(session, request.creator_id)
            await holds.release_due_in(session, creator_id=request.creator_id)
            balances = await self._lock_balances(session, request.creator_id)
            existing = await payout_by_key(session, request.creator_id, request.idempotency_key)
            if existing is not None:
                return _replayed(existing, fingerprint)
            await _check_creator_may_be_paid(session, request, self.policy)
            amounts = await self._check_amount(session, request, balances)
            payout = await self._reserve(session, request, fingerprint, amounts)
            return PayoutResult(payout, replayed=False)

        replayed = await in_transaction(self._sessions, replay_or_check)
        if replayed is not None:
            return replayed
        await self.second_factor.verify(
            self._sessions,
            request.creator_id,
            request.totp_code,
            purpose=f"payout:{request.idempotency_key}",
        )
        return await in_transaction(self._sessions, reserve)

    async def _check_amount(
        self, session: AsyncSession, request: PayoutRequest, balances: CreatorBalances
    ) -> PayoutAmounts:
        """What the requested diamonds are worth, if the creator has them available and that
        is at least the minimum payout and within the day's cap."""
        if balances.diamonds_available < request.diamonds:
            raise InsufficientDiamonds(
                f"{request.diamonds:,} diamonds requested, "
                f"{balances.diamonds_available:,} available",
                field="diamonds",
                held=balances.diamonds_available,
                needed=request.diamonds,
            )
        amounts = payout_amounts(
            request.diamonds,
            payable_micros=balances.payable_micros,
            diamonds_held=balances.diamonds,
            currency=self.functional_currency,
        )
        minimum = minor_to_micros(self.policy.minimum_minor, self.functional_currency)
        if amounts.amount_micros < minimum:
            raise BelowPayoutMinimum(
                f"{request.diamonds:,} diamonds are worth "
                f"{self._money(amounts.amount_micros)}; the minimum payout is "
                f"{self._money(minimum)}",
                field="diamonds",
            )
        cap = minor_to_micros(self.policy.daily_cap_minor, self.functional_currency)
        today = await cash_requested_today(session, request.creator_id)
        if today + amounts.amount_micros > cap:
            raise DailyPayoutCapExceeded(
                f"{self._money(today)} already requested today (UTC); "
                f"{self._money(amounts.amount_micros)} more would pass the daily cap of "
                f"{self._money(cap)}",
                field="diamonds",
                cap_micros=cap,
                requested_today_micros=today,
                asked_micros=amounts.amount_micros,
            )
        return amounts

    async def _reserve(
        self,
        session: AsyncSession,
        request: PayoutRequest,
        fingerprint: str,
        amounts: PayoutAmounts,
    ) -> PayoutRow:
        """The payout's row, its entry (the diamonds from available to reserved) and its first
        event, ``requested``."""
        now = await session.scalar(select(func.clock_timestamp()))
        payout = PayoutRow(
            creator_id=request.creator_id,
            idempotency_key=request.idempotency_key,
            request_hash=fingerprint,
            method_id=request.method_id,
            diamonds_requested=request.diamonds,
            diamonds=amounts.diamonds,
            currency=self.functional_currency,
            amount_micros=amounts.amount_micros,
            status="requested",
            created_at=now,
            updated_at=now,
        )
        session.add(payout)
        await session.flush()
        actor = f"user:{request.creator_id}"
        posted = await post_entry(
            session, payout_entry(facts_of(payout), PayoutPhase.REQUESTED, actor=actor)
        )
        session.add(
            PayoutEventRow(
                payout_id=payout.id,
                phase=str(PayoutPhase.REQUESTED),
                actor=actor,
                idempotency_key=request.idempotency_key,
                request_hash=fingerprint,
                entry_id=posted.id,
                created_at=posted.posted_at,
            )
        )
        await session.flush()
        return payout

    async def advance(self, action: PayoutAction) -> PayoutResult:
        """Move a payout to its next phase: sent, paid or failed, rejected before sending, or
        returned after it was paid (at most once: a payout is returned from ``paid`` only).
        The same key and action again returns the payout as it is now and posts nothing."""
        if action.phase is PayoutPhase.REQUESTED:
            raise ValueError("a payout is requested through request_payout")
        idempotency.check_key(action.idempotency_key)
        audit.check_reason(action.reason, required=action.phase in REASON_REQUIRED)
        if (
            action.provider_reference is not None
            and not 1 <= len(action.provider_reference) <= MAX_PROVIDER_REFERENCE
        ):
            raise InvalidProviderReference(
                f"A provider reference is 1-{MAX_PROVIDER_REFERENCE} characters",
                field="providerReference",
            )
        fingerprint = action.fingerprint()

        async def advance(session: AsyncSession) -> PayoutResult:
            payout = await session.get(
                PayoutRow, action.payout_id, with_for_update=True, populate_existing=True
            )
            if payout is None:
                raise PayoutNotFound(f"No payout {action.payout_id}", field="payoutId")
            separation.check_not_own(
                action.actor, payout.creator_id, doing="act on your own payout", field="payoutId"
            )
            seen = await session.scalar(
                select(PayoutEventRow).where(
                    PayoutEventRow.actor == action.actor,
                    PayoutEventRow.idempotency_key == action.idempotency_key,
                )
            )
            if seen is not None:
                if seen.request_hash != fingerprint:
                    raise IdempotencyKeyReused(
                        "This idempotency key was used for a different payout action",
                        field="idempotencyKey",
                    )
                return PayoutResult(payout, replayed=True)
            if payout.status != FROM_STATUS[action.phase]:
                raise InvalidPayoutTransition(
                    f"Payout {payout.id} is {payout.status}: it cannot be {action.phase}",
                    field="payoutId",
                    status=payout.status,
                )
            await _move(session, payout, action, fingerprint)
            await session.refresh(payout)
            return PayoutResult(payout, replayed=False)

        return await in_transaction(self._sessions, advance)

    def _money(self, micros: int) -> str:
        return f"{format_micros(micros, self.functional_currency)} {self.functional_currency}"


def _replayed(existing: PayoutRow, fingerprint: str) -> PayoutResult:
    if existing.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "This idempotency key was used for a different payout",
            field="idempotencyKey",
            payout_id=existing.id,
        )
    return PayoutResult(existing, replayed=True)


async def _check_creator_may_be_paid(
    session: AsyncSession, request: PayoutRequest, policy: PayoutPolicy
) -> None:
    """The creator is not frozen, has a verified identity and a confirmed second factor, and
    asks to be paid through a payout method of their own that is past its cooling-off."""
    await standing.check_not_frozen(session, request.creator_id, doing="request payouts")
    if not await standing.is_kyc_verified(session, request.creator_id):
        raise KycNotVerified(
            "Payouts need a verified identity (KYC)", creator_id=request.creator_id
        )
    if not await second_factor.is_confirmed(session, request.creator_id):
        raise TotpNotEnrolled(
            "Enrol and confirm a second factor before requesting a payout", field="totpCode"
        )
    method = await payout_methods.method_of(session, request.creator_id, request.method_id)
    available_at = method.created_at + policy.method_cooling_off
    now = await session.scalar(select(func.now()))
    if now is None or available_at > now:
        raise PayoutMethodCoolingOff(
            f"Payout method {method.id} is new: it can be paid to from "
            f"{available_at.isoformat(timespec='seconds')}",
            field="payoutMethodId",
            available_at=available_at,
        )


async def _move(
    session: AsyncSession, payout: PayoutRow, action: PayoutAction, fingerprint: str
) -> None:
    """The phase's entry and event, the payout's new status, and the audit log's line."""
    posted = await post_entry(
        session,
        payout_entry(
            facts_of(payout),
            action.phase,
            actor=action.actor,
            memo=action.reason or "",
        ),
    )
    event = PayoutEventRow(
        payout_id=payout.id,
        phase=str(action.phase),
        actor=action.actor,
        idempotency_key=action.idempotency_key,
        request_hash=fingerprint,
        reason=action.reason,
        provider_reference=action.provider_reference,
        entry_id=posted.id,
        created_at=posted.posted_at,
    )
    session.add(event)
    await session.flush()
    await session.execute(
        update(PayoutRow)
        .where(PayoutRow.id == payout.id)
        .values(status=str(action.phase), updated_at=posted.posted_at)
    )
    await audit.record(
        session,
        actor=action.actor,
        action=f"payout.{action.phase}",
        subject=f"payout:{payout.id}",
        reason=action.reason,
        details={
            "idempotency_key": action.idempotency_key,
            "entry_id": posted.id,
            "provider_reference": action.provider_reference,
            "creator_id": payout.creator_id,
            "amount_micros": payout.amount_micros,
            "currency": payout.currency,
        },
    )


async def payout_by_key(session: AsyncSession, creator_id: str, key: str) -> PayoutRow | None:
    found: PayoutRow | None = await session.scalar(
        select(PayoutRow).where(
            PayoutRow.creator_id == creator_id, PayoutRow.idempotency_key == key
        )
    )
    return found


async def cash_requested_today(session: AsyncSession, creator_id: str) -> int:
    """Cash (micro-units) in the creator's payouts requested since midnight UTC that were not
    rejected or did not fail."""
    total = await session.scalar(
        select(func.coalesce(func.sum(PayoutRow.amount_micros), 0)).where(
            PayoutRow.creator_id == creator_id,
            PayoutRow.status.in_(COUNTED_AGAINST_CAP),
            PayoutRow.created_at >= func.date_trunc("day", func.now(), "UTC"),
        )
    )
    return int(total or 0)


async def payout_by_id(session: AsyncSession, payout_id: int) -> PayoutRow | None:
    return await session.get(PayoutRow, payout_id)


async def payouts_of(
    session: AsyncSession, creator_id: str, *, first: int = 20, before_id: int | None = None
) -> Page[PayoutRow]:
    """A creator's payouts, newest first."""
    return await newest_first(
        session, PayoutRow, PayoutRow.creator_id == creator_id, first=first, before_id=before_id
    )


async def payouts_in_flight(
    session: AsyncSession, *, first: int = 20, before_id: int | None = None
) -> Page[PayoutRow]:
    """Every payout requested or sent and not yet resolved, newest first."""
    return await newest_first(
        session, PayoutRow, PayoutRow.status.in_(IN_FLIGHT), first=first, before_id=before_id
    )


async def payout_events(
    session: AsyncSession, payout_ids: list[int]
) -> dict[int, list[PayoutEventRow]]:
    """Each payout's phases, oldest first, in one query."""
    found: dict[int, list[PayoutEventRow]] = {payout_id: [] for payout_id in payout_ids}
    if not payout_ids:
        return found
    rows = await session.scalars(
        select(PayoutEventRow)
        .where(PayoutEventRow.payout_id.in_(payout_ids))
        .order_by(PayoutEventRow.payout_id, PayoutEventRow.id)
    )
    for row in rows:
        found[row.payout_id].append(row)
    return found


def when(events: list[PayoutEventRow], phase: PayoutPhase) -> datetime | None:
    return next((e.created_at for e in events if e.phase == phase), None)
