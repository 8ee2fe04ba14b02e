"""Payouts: creators register where their cash goes, enrol a second factor and redeem diamonds;
finance resolves payouts (sent, paid, failed, rejected); admins set the KYC flag; finance and
admins read the audit log of what people did."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.errors import (
    AccountFrozen,
    IdempotencyKeyReused,
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidReason,
    InvalidUserId,
    LedgerError,
)
from accounting.ledger.money import minor_to_micros
from accounting.payouts import methods as payout_methods
from accounting.payouts import second_factor
from accounting.payouts import service as payouts
from accounting.payouts.errors import (
    BelowPayoutMinimum,
    DailyPayoutCapExceeded,
    InsufficientDiamonds,
    InvalidPayoutMethod,
    InvalidPayoutTransition,
    InvalidProviderReference,
    InvalidTotpCode,
    KycNotVerified,
    PayoutMethodCoolingOff,
    PayoutMethodNotFound,
    PayoutNotFound,
    SecondFactorLocked,
    SecondFactorReused,
    TotpAlreadyConfirmed,
    TotpNotEnrolled,
)
from accounting.payouts.methods import PayoutMethodDetails, PayoutMethodKind
from accounting.payouts.rules import PayoutPhase
from accounting.payouts.second_factor import SecondFactor
from accounting.payouts.service import PayoutAction, PayoutRequest
from accounting.payouts.tables import PayoutEventRow, PayoutMethodRow, PayoutRow
from accounting.policy import audit, standing
from accounting.policy.access import (
    Principal,
    may_read_audit_log,
    may_request_payouts,
    may_verify_identity,
)
from accounting.policy.separation import SelfApprovalForbidden
from accounting.policy.tables import AuditRow, CreatorKycRow
from schema.authorization import PAYOUT_METHODS, PAYOUTS, RESOLVES_PAYOUTS, look_up, require
from schema.context import Info, Services
from schema.earnings import readable_creator
from schema.errors import (
    MutationError,
    error_type,
    errors_in_payload,
    require_role,
    seen,
)
from schema.nodes import Node, global_id, pk_of
from schema.pagination import Connection, connection, page_start
from schema.payloads import AS_STORED, null_on_error, replayed_field
from schema.scalars import BigInt, Money

# --- types --------------------------------------------------------------------------------------


@strawberry.enum
class PayoutMethodType(Enum):
    BANK_ACCOUNT = "bank_account"
    PAYPAL = "paypal"


@strawberry.type(
    description="Where a creator's payouts go, as it may be shown: the full account number or "
    "address is never stored or shown back."
)
class PayoutMethod(Node):
    kind: PayoutMethodType
    masked: str = strawberry.field(description='"****6789" or "b***@example.com".')
    holder_name: str
    created_at: datetime


def method_of(row: PayoutMethodRow) -> PayoutMethod:
    return PayoutMethod(
        id=global_id("PayoutMethod", row.id),
        kind=PayoutMethodType(row.kind),
        masked=row.masked,
        holder_name=row.holder_name,
        created_at=row.created_at,
    )


@strawberry.enum(
    description="requested (diamonds reserved) → sent → paid or failed; or requested → "
    "rejected; a paid payout the bank sent back is returned. Rejected, failed and returned "
    "payouts gave their diamonds back to available."
)
class PayoutStatus(Enum):
    REQUESTED = "requested"
    REJECTED = "rejected"
    SENT = "sent"
    PAID = "paid"
    FAILED = "failed"
    RETURNED = "returned"


@strawberry.type(description="One phase of a payout: who did it, when, why, and its entry.")
class PayoutEvent:
    status: PayoutStatus
    actor: str
    reason: str
    provider_reference: str | None
    entry_id: strawberry.ID = strawberry.field(description="The journal entry of this phase.")
    created_at: datetime


@strawberry.type(description="Diamonds redeemed for cash, with every phase it went through.")
class Payout(Node):
    creator_id: str
    status: PayoutStatus
    diamonds_requested: BigInt
    diamonds: BigInt = strawberry.field(
        description="The diamonds the cash pays for: those requested, less any that would "
        "have made the cash a fraction of a cent (they stay available)."
    )
    amount: Money = strawberry.field(description="The cash paid: whole cents.")
    method: PayoutMethod
    created_at: datetime
    updated_at: datetime
    history: list[PayoutEvent] = strawberry.field(description="Its phases, oldest first.")


async def payouts_of(session: AsyncSession, rows: list[PayoutRow]) -> list[Payout]:
    """Payouts with their methods and histories, in two queries whatever their number."""
    if not rows:
        return []
    events = await payouts.payout_events(session, [row.id for row in rows])
    methods = {
        row.id: row
        for row in await payout_methods.methods_by_id(session, {r.method_id for r in rows})
    }
    return [payout_of(row, methods[row.method_id], events[row.id]) for row in rows]


def payout_of(row: PayoutRow, method: PayoutMethodRow, events: list[PayoutEventRow]) -> Payout:
    return Payout(
        id=global_id("Payout", row.id),
        creator_id=row.creator_id,
        status=PayoutStatus(row.status),
        diamonds_requested=BigInt(row.diamonds_requested),
        diamonds=BigInt(row.diamonds),
        amount=Money.of(row.amount_micros, row.currency),
        method=method_of(method),
        created_at=row.created_at,
        updated_at=row.updated_at,
        history=[
            PayoutEvent(
                status=PayoutStatus(e.phase),
                actor=e.actor,
                reason=e.reason,
                provider_reference=e.provider_reference,
                entry_id=strawberry.ID(str(e.entry_id)),
                created_at=e.created_at,
            )
            for e in events
        ],
    )


@strawberry.type(description="What stands between a creator and a payout, and today's room.")
class PayoutControls:
    creator_id: str
    kyc_verified: bool
    second_factor_confirmed: bool
    minimum: Money
    daily_cap: Money = strawberry.field(description="Per calendar day, UTC.")
    second_factor_locked_until: datetime | None = strawberry.field(
        description="While too many wrong or reused codes keep the second factor locked: "
        "when it opens again. Every code is refused until then."
    )
    method_cooling_off_hours: float = strawberry.field(
        description="How long a newly registered payout method waits before its first payout."
    )
    requested_today: Money = strawberry.field(
        description="In payouts requested today that were not rejected and did not fail."
    )


@strawberry.type(description="Whether a creator's identity is verified, by whom and why.")
class KycStatus:
    user_id: str
    verified: bool
    reason: str
    changed_by: str
    changed_at: datetime


def kyc_of(row: CreatorKycRow) -> KycStatus:
    return KycStatus(
        user_id=row.creator_id,
        verified=row.verified,
        reason=row.reason,
        changed_by=row.changed_by,
        changed_at=row.changed_at,
    )


@strawberry.type(description="Something a support, finance or admin person did.")
class AuditRecord:
    id: strawberry.ID
    actor: str
    action: str = strawberry.field(description='e.g. "payout.sent", "kyc.verified".')
    subject: str = strawberry.field(description='What it was done to: "payout:3", "user:bo".')
    reason: str
    created_at: datetime


def audit_record_of(row: AuditRow) -> AuditRecord:
    return AuditRecord(
        id=strawberry.ID(str(row.id)),
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        reason=row.reason,
        created_at=row.created_at,
    )


def require_creator(info: Info, what: str) -> Principal:
    return require_role(info, may_request_payouts, f"{what} without the creator role")


def second_factor_of(info: Info) -> SecondFactor:
    return info.context.services.payouts.second_factor


_SECOND_FACTOR_CODES = (TotpNotEnrolled, InvalidTotpCode, SecondFactorReused, SecondFactorLocked)
"""What may refuse a second-factor code: none enrolled, wrong, used already, locked."""


def retry_after_field() -> Any:
    return strawberry.field(
        description="With SECOND_FACTOR_LOCKED: the seconds until codes are checked again."
    )


class SecondFactorError(MutationError):
    """An error type whose mutation asks for a second-factor code: it says how long a locked
    second factor stays locked (each type declares ``retry_after_seconds`` itself)."""

    @classmethod
    def details_of(cls, error: LedgerError) -> dict[str, Any]:
        locked = isinstance(error, SecondFactorLocked)
        return {"retry_after_seconds": error.facts["retry_after_seconds"] if locked else None}


async def payout_now(services: Services, row: PayoutRow) -> Payout:
    """A payout just requested or advanced, with its method and history, read afresh."""
    async with services.sessions() as session:
        [payout] = await payouts_of(session, [row])
    return payout


# --- registerPayoutMethod -----------------------------------------------------------------------


@error_type(InvalidPayoutMethod, *_SECOND_FACTOR_CODES)
class RegisterPayoutMethodError(SecondFactorError):
    retry_after_seconds: int | None = retry_after_field()


@strawberry.type
class RegisterPayoutMethodPayload:
    payout_method: PayoutMethod | None = null_on_error(
        "As kept (masked); the first one when the same account was registered "
        "before. Null on error."
    )
    errors: list[RegisterPayoutMethodError]


@strawberry.input(
    description="A bank account (accountNumber, optional routingNumber) or a PayPal address."
)
class RegisterPayoutMethodInput:
    kind: PayoutMethodType
    holder_name: str = strawberry.field(description="1-100 characters.")
    account_number: str | None = strawberry.field(
        default=None, description="6-34 letters and digits (an IBAN fits); spaces ignored."
    )
    routing_number: str | None = strawberry.field(default=None, description="6-11 digits.")
    paypal_email: str | None = None
    totp_code: str = strawberry.field(
        description="The 6 digits the authenticator shows now: adding where payouts go needs "
        "the second factor. A code serves once."
    )


# --- enrolSecondFactor / confirmSecondFactor ----------------------------------------------------


@error_type(TotpAlreadyConfirmed)
class EnrolSecondFactorError(MutationError): ...


@strawberry.type
class EnrolSecondFactorPayload:
    provisioning_uri: str | None = null_on_error(
        "An otpauth:// URI to show as a QR code to the creator's authenticator app."
    )
    errors: list[EnrolSecondFactorError]


@error_type(
    TotpNotEnrolled, TotpAlreadyConfirmed, InvalidTotpCode, SecondFactorReused, SecondFactorLocked
)
class ConfirmSecondFactorError(SecondFactorError):
    retry_after_seconds: int | None = retry_after_field()


@strawberry.type
class ConfirmSecondFactorPayload:
    confirmed: bool = False
    errors: list[ConfirmSecondFactorError]


@strawberry.input
class ConfirmSecondFactorInput:
    totp_code: str = strawberry.field(
        description="The 6 digits the app shows now; used up, like every code."
    )


# --- requestPayout ------------------------------------------------------------------------------


@error_type(
    InsufficientDiamonds,
    BelowPayoutMinimum,
    DailyPayoutCapExceeded,
    KycNotVerified,
    *_SECOND_FACTOR_CODES,
    PayoutMethodNotFound,
    PayoutMethodCoolingOff,
    AccountFrozen,
    InvalidAmount,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
)
class RequestPayoutError(SecondFactorError):
    retry_after_seconds: int | None = retry_after_field()


@strawberry.type
class RequestPayoutPayload:
    payout: Payout | None = null_on_error("The payout, requested; null on error.")
    replayed: bool = replayed_field()
    errors: list[RequestPayoutError]


@strawberry.input
class RequestPayoutInput:
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per payout (a UUID). A retry with the "
        "same key returns the first payout and needs no new code."
    )
    diamonds: BigInt = strawberry.field(description="Diamonds to redeem, from those available.")
    payout_method_id: strawberry.ID
    totp_code: str = strawberry.field(
        description="The 6 digits the authenticator shows now. A code serves once: another "
        "payout needs the next one (a retry under the same key may send the same code)."
    )


# --- rejectPayout / markPayoutSent / markPayoutPaid / markPayoutFailed -------------------------


@error_type(
    PayoutNotFound,
    SelfApprovalForbidden,
    InvalidPayoutTransition,
    InvalidReason,
    InvalidProviderReference,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    description="What may refuse a finance action on a payout (all four share it).",
)
class PayoutActionError(MutationError): ...


@strawberry.type
class PayoutActionPayload:
    payout: Payout | None = null_on_error("The payout as it is now; null on error.")
    replayed: bool = replayed_field()
    errors: list[PayoutActionError]


@strawberry.input
class PayoutActionInput:
    payout_id: strawberry.ID
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per action of yours (a UUID)."
    )
    reason: str = strawberry.field(
        default="",
        description="Why, up to 500 characters; required to reject or fail a payout. Kept in "
        "the payout's history and the audit log.",
    )
    provider_reference: str | None = strawberry.field(
        default=None, description="The bank's or PayPal's reference for the transfer."
    )


@errors_in_payload(PayoutActionPayload, PayoutActionError)
async def _advance(info: Info, input: PayoutActionInput, phase: PayoutPhase) -> PayoutActionPayload:
    principal = require(info, RESOLVES_PAYOUTS, f"mark payouts {phase}")
    payout_id = pk_of(input.payout_id, "Payout")
    if payout_id is None:
        raise PayoutNotFound(f"No payout {input.payout_id}", field="payoutId")
    services = info.context.services
    result = await services.payouts.advance(
        PayoutAction(
            payout_id=payout_id,
            phase=phase,
            actor=principal.actor,
            idempotency_key=input.idempotency_key,
            reason=input.reason,
            provider_reference=input.provider_reference,
        )
    )
    payout = await payout_now(services, result.payout)
    return PayoutActionPayload(payout=payout, replayed=result.replayed, errors=[])


# --- setKycVerified -----------------------------------------------------------------------------


@error_type(SelfApprovalForbidden, InvalidUserId, InvalidReason)
class SetKycVerifiedError(MutationError): ...


@strawberry.type
class SetKycVerifiedPayload:
    kyc: KycStatus | None = null_on_error(AS_STORED)
    errors: list[SetKycVerifiedError]


@strawberry.input
class SetKycVerifiedInput:
    user_id: str
    verified: bool = strawberry.field(description="False withdraws the verification.")
    reason: str = strawberry.field(description="Required: what was checked. Kept and audited.")


@strawberry.type
class PayoutMutations:
    @strawberry.mutation(
        description="Register a bank account or PayPal address (creator role), with a "
        "second-factor code. A new method is paid to only after its cooling-off period."
    )
    @errors_in_payload(RegisterPayoutMethodPayload, RegisterPayoutMethodError)
    async def register_payout_method(
        self, info: Info, input: RegisterPayoutMethodInput
    ) -> RegisterPayoutMethodPayload:
        principal = require_creator(info, "register payout methods")
        details = PayoutMethodDetails(
            kind=PayoutMethodKind(input.kind.value),
            holder_name=input.holder_name,
            account_number=input.account_number,
            routing_number=input.routing_number,
            paypal_email=input.paypal_email,
        )
        service = info.context.services.payouts
        row = await service.register_payout_method(principal.user_id, details, input.totp_code)
        return RegisterPayoutMethodPayload(payout_method=method_of(row), errors=[])

    @strawberry.mutation(
        description="Start enrolling a TOTP second factor (creator role): a new secret, as a "
        "provisioning URI. Enrolling again before confirming replaces it."
    )
    @errors_in_payload(EnrolSecondFactorPayload, EnrolSecondFactorError)
    async def enrol_second_factor(self, info: Info) -> EnrolSecondFactorPayload:
        principal = require_creator(info, "enrol a second factor")
        sessions = info.context.services.sessions
        uri = await second_factor_of(info).start_enrolment(sessions, principal.user_id)
        return EnrolSecondFactorPayload(provisioning_uri=uri, errors=[])

    @strawberry.mutation(
        description="Confirm the enrolled second factor with a code from the app (creator role)."
    )
    @errors_in_payload(ConfirmSecondFactorPayload, ConfirmSecondFactorError)
    async def confirm_second_factor(
        self, info: Info, input: ConfirmSecondFactorInput
    ) -> ConfirmSecondFactorPayload:
        principal = require_creator(info, "confirm a second factor")
        sessions = info.context.services.sessions
        await second_factor_of(info).confirm_enrolment(sessions, principal.user_id, input.totp_code)
        return ConfirmSecondFactorPayload(confirmed=True, errors=[])

    @strawberry.mutation(
        description="Redeem available diamonds for cash (creator role): reserves them until "
        "finance sends, pays, fails or rejects the payout."
    )
    @errors_in_payload(RequestPayoutPayload, RequestPayoutError)
    async def request_payout(self, info: Info, input: RequestPayoutInput) -> RequestPayoutPayload:
        principal = require_creator(info, "request payouts")
        method_id = pk_of(input.payout_method_id, "PayoutMethod")
        if method_id is None:
            raise PayoutMethodNotFound(
                f"No payout method {input.payout_method_id}", field="payoutMethodId"
            )
        services = info.context.services
        result = await services.payouts.request_payout(
            PayoutRequest(
                creator_id=principal.user_id,
                idempotency_key=input.idempotency_key,
                diamonds=input.diamonds,
                method_id=method_id,
                totp_code=input.totp_code,
            )
        )
        payout = await payout_now(services, result.payout)
        return RequestPayoutPayload(payout=payout, replayed=result.replayed, errors=[])

    @strawberry.mutation(
        description="Reject a requested payout before sending it (finance role): its diamonds "
        "are available again. Needs a reason."
    )
    async def reject_payout(self, info: Info, input: PayoutActionInput) -> PayoutActionPayload:
        return await _advance(info, input, PayoutPhase.REJECTED)

    @strawberry.mutation(
        description="Record that a requested payout was sent to the bank or PayPal (finance "
        "role): its diamonds are redeemed and its cash is in transit."
    )
    async def mark_payout_sent(self, info: Info, input: PayoutActionInput) -> PayoutActionPayload:
        return await _advance(info, input, PayoutPhase.SENT)

    @strawberry.mutation(
        description="Record that a sent payout arrived (finance role): the cash left the bank."
    )
    async def mark_payout_paid(self, info: Info, input: PayoutActionInput) -> PayoutActionPayload:
        return await _advance(info, input, PayoutPhase.PAID)

    @strawberry.mutation(
        description="Record that a sent payout failed or came back before it was paid (finance "
        "role): the cash is owed to the creator again and the diamonds are available. Needs a "
        "reason."
    )
    async def mark_payout_failed(self, info: Info, input: PayoutActionInput) -> PayoutActionPayload:
        return await _advance(info, input, PayoutPhase.FAILED)

    @strawberry.mutation(
        description="Record that a paid payout came back from the bank (finance role), at most "
        "once: the cash is in the bank again, owed to the creator again, and the diamonds are "
        "available. Needs a reason."
    )
    async def mark_payout_returned(
        self, info: Info, input: PayoutActionInput
    ) -> PayoutActionPayload:
        return await _advance(info, input, PayoutPhase.RETURNED)

    @strawberry.mutation(
        description="Record whether a creator's identity is verified (admin role); payouts "
        "need it. Audited."
    )
    @errors_in_payload(SetKycVerifiedPayload, SetKycVerifiedError)
    async def set_kyc_verified(
        self, info: Info, input: SetKycVerifiedInput
    ) -> SetKycVerifiedPayload:
        principal = require_role(info, may_verify_identity, "set KYC flags without the admin role")
        row = await standing.verify_identity(
            info.context.services.sessions,
            input.user_id,
            verified=input.verified,
            reason=input.reason,
            actor=principal.actor,
        )
        return SetKycVerifiedPayload(kyc=kyc_of(row), errors=[])


@strawberry.type
class PayoutQueries:
    @strawberry.field(
        description="A creator's payout methods, masked: yours when creatorId is omitted "
        "(creator role); any creator's for support and finance."
    )
    async def payout_methods(self, info: Info, creator_id: str | None = None) -> list[PayoutMethod]:
        wanted = readable_creator(info, creator_id)
        async with info.context.services.sessions() as session:
            rows = await payout_methods.methods_of(session, wanted)
        return [method_of(row) for row in rows]

    @strawberry.field(
        description="One payout method, masked: for its creator, support and finance; null "
        "when there is no such method (or it is not yours to see)."
    )
    async def payout_method(self, info: Info, id: strawberry.ID) -> PayoutMethod | None:
        return await look_up(info, id, "PayoutMethod", load_payout_method)

    @strawberry.field(
        description="Whether a creator may request payouts, and how much more today: yours "
        "when creatorId is omitted; any creator's for support and finance."
    )
    async def payout_controls(self, info: Info, creator_id: str | None = None) -> PayoutControls:
        wanted = readable_creator(info, creator_id)
        services = info.context.services
        policy = services.payouts.policy
        currency = services.functional_currency
        async with services.sessions() as session:
            kyc = await standing.is_kyc_verified(session, wanted)
            confirmed = await second_factor.is_confirmed(session, wanted)
            locked_until = await second_factor.locked_until(session, wanted)
            today = await payouts.cash_requested_today(session, wanted)
        return PayoutControls(
            creator_id=wanted,
            kyc_verified=kyc,
            second_factor_confirmed=confirmed,
            minimum=Money.of(minor_to_micros(policy.minimum_minor, currency), currency),
            daily_cap=Money.of(minor_to_micros(policy.daily_cap_minor, currency), currency),
            second_factor_locked_until=locked_until,
            method_cooling_off_hours=policy.method_cooling_off.total_seconds() / 3600,
            requested_today=Money.of(today, currency),
        )

    @strawberry.field(
        description="A creator's payouts, newest first, with their history: yours when "
        "creatorId is omitted (creator role); any creator's for support and finance."
    )
    async def payouts(
        self,
        info: Info,
        creator_id: str | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[Payout]:
        wanted = readable_creator(info, creator_id)
        before = page_start("payout", first, after)
        async with info.context.services.sessions() as session:
            page = await payouts.payouts_of(session, wanted, first=first, before_id=before)
            found = await payouts_of(session, page.items)
        items = [(row.id, payout) for row, payout in zip(page.items, found, strict=True)]
        return connection("payout", items, page.has_next)

    @strawberry.field(
        description="One payout with its history: for its creator, support and finance; null "
        "when there is no such payout."
    )
    async def payout(self, info: Info, id: strawberry.ID) -> Payout | None:
        return await look_up(info, id, "Payout", load_payout)

    @strawberry.field(
        description="Every payout requested or sent and not yet resolved, newest first "
        "(finance role)."
    )
    async def payouts_in_flight(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[Payout]:
        require(info, RESOLVES_PAYOUTS, "see every payout in flight")
        before = page_start("payout_in_flight", first, after)
        async with info.context.services.sessions() as session:
            page = await payouts.payouts_in_flight(session, first=first, before_id=before)
            found = await payouts_of(session, page.items)
        items = [(row.id, payout) for row, payout in zip(page.items, found, strict=True)]
        return connection("payout_in_flight", items, page.has_next)

    @strawberry.field(
        description="What support, finance and admin people did, newest first: of one subject "
        '("payout:3", "user:bo") or of all (finance and admin roles).'
    )
    async def audit_log(
        self, info: Info, subject: str | None = None, first: int = 20, after: str | None = None
    ) -> Connection[AuditRecord]:
        require_role(
            info, may_read_audit_log, "read the audit log without the finance or admin role"
        )
        before = page_start("audit", first, after)
        async with info.context.services.sessions() as session:
            page = await audit.audit_trail(session, subject=subject, first=first, before_id=before)
        return connection(
            "audit", [(row.id, audit_record_of(row)) for row in page.items], page.has_next
        )


async def load_payout(info: Info, pk: int) -> Payout | None:
    """Payout ``pk`` with its history, for its creator, support and finance; else None, the
    same for one that does not exist."""
    principal = PAYOUTS.caller(info)
    async with info.context.services.sessions() as session:
        found = await payouts.payout_by_id(session, pk)
        row = seen(found, lambda row: PAYOUTS.sees(principal, row.creator_id))
        if row is None:
            return None
        [payout] = await payouts_of(session, [row])
    return payout


async def load_payout_method(info: Info, pk: int) -> PayoutMethod | None:
    """Payout method ``pk``, masked, for its creator, support and finance; else None, the same
    for one that does not exist."""
    principal = PAYOUT_METHODS.caller(info)
    async with info.context.services.sessions() as session:
        found = await payout_methods.methods_by_id(session, {pk})
    row = seen(
        found[0] if found else None, lambda row: PAYOUT_METHODS.sees(principal, row.creator_id)
    )
    return None if row is None else method_of(row)
