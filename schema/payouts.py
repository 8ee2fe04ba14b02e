"""Payouts: creators register where their cash goes, enrol a second factor and redeem diamonds;
finance resolves payouts (sent, paid, failed, rejected); admins set the KYC flag; finance and
admins read the audit log of what people did."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

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
from accounting.ledger.posting import in_transaction
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
    PayoutMethodNotFound,
    PayoutNotFound,
    TotpAlreadyConfirmed,
    TotpNotEnrolled,
)
from accounting.payouts.methods import PayoutMethodDetails, PayoutMethodKind
from accounting.payouts.rules import PayoutPhase
from accounting.payouts.service import PayoutAction, PayoutRequest
from accounting.payouts.tables import PayoutEventRow, PayoutMethodRow, PayoutRow
from accounting.policy import audit, standing
from accounting.policy.access import (
    Principal,
    may_read_audit_log,
    may_request_payouts,
    may_resolve_payouts,
    may_verify_identity,
)
from accounting.policy.tables import AuditRow, CreatorKycRow
from schema.context import Info
from schema.earnings import readable_creator
from schema.errors import forbidden, payload_code, require_principal
from schema.pagination import Connection, check_first, connection, decode_cursor
from schema.scalars import BigInt, Money, parse_id

# --- types --------------------------------------------------------------------------------------


@strawberry.enum
class PayoutMethodType(Enum):
    BANK_ACCOUNT = "bank_account"
    PAYPAL = "paypal"


@strawberry.type(
    description="Where a creator's payouts go, as it may be shown: the full account number or "
    "address is never stored or shown back."
)
class PayoutMethod:
    id: strawberry.ID
    kind: PayoutMethodType
    masked: str = strawberry.field(description='"****6789" or "b***@example.com".')
    holder_name: str
    created_at: datetime


def method_of(row: PayoutMethodRow) -> PayoutMethod:
    return PayoutMethod(
        id=strawberry.ID(str(row.id)),
        kind=PayoutMethodType(row.kind),
        masked=row.masked,
        holder_name=row.holder_name,
        created_at=row.created_at,
    )


@strawberry.enum(
    description="requested (diamonds reserved) → sent → paid or failed; or requested → "
    "rejected. Rejected and failed payouts returned their diamonds to available."
)
class PayoutStatus(Enum):
    REQUESTED = "requested"
    REJECTED = "rejected"
    SENT = "sent"
    PAID = "paid"
    FAILED = "failed"


@strawberry.type(description="One phase of a payout: who did it, when, why, and its entry.")
class PayoutEvent:
    status: PayoutStatus
    actor: str
    reason: str
    provider_reference: str | None
    entry_id: strawberry.ID = strawberry.field(description="The journal entry of this phase.")
    created_at: datetime


@strawberry.type(description="Diamonds redeemed for cash, with every phase it went through.")
class Payout:
    id: strawberry.ID
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
        id=strawberry.ID(str(row.id)),
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
    principal = require_principal(info)
    if not may_request_payouts(principal):
        raise forbidden(f"{what} without the creator role")
    return principal


def require_finance(info: Info, what: str) -> Principal:
    principal = require_principal(info)
    if not may_resolve_payouts(principal):
        raise forbidden(f"{what} without the finance role")
    return principal


# --- registerPayoutMethod -----------------------------------------------------------------------


@strawberry.enum
class RegisterPayoutMethodErrorCode(Enum):
    INVALID_PAYOUT_METHOD = "INVALID_PAYOUT_METHOD"


@strawberry.type
class RegisterPayoutMethodError:
    code: RegisterPayoutMethodErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


@strawberry.type
class RegisterPayoutMethodPayload:
    payout_method: PayoutMethod | None = strawberry.field(
        description="As kept (masked); the first one when the same account was registered "
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


# --- enrolSecondFactor / confirmSecondFactor ----------------------------------------------------


@strawberry.enum
class EnrolSecondFactorErrorCode(Enum):
    TOTP_ALREADY_CONFIRMED = "TOTP_ALREADY_CONFIRMED"


_ENROL_CODES = {TotpAlreadyConfirmed: EnrolSecondFactorErrorCode.TOTP_ALREADY_CONFIRMED}


@strawberry.type
class EnrolSecondFactorError:
    code: EnrolSecondFactorErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


@strawberry.type
class EnrolSecondFactorPayload:
    provisioning_uri: str | None = strawberry.field(
        description="An otpauth:// URI to show as a QR code to the creator's authenticator app."
    )
    errors: list[EnrolSecondFactorError]


@strawberry.enum
class ConfirmSecondFactorErrorCode(Enum):
    TOTP_NOT_ENROLLED = "TOTP_NOT_ENROLLED"
    TOTP_ALREADY_CONFIRMED = "TOTP_ALREADY_CONFIRMED"
    INVALID_TOTP_CODE = "INVALID_TOTP_CODE"


_CONFIRM_CODES: dict[type[LedgerError], ConfirmSecondFactorErrorCode] = {
    TotpNotEnrolled: ConfirmSecondFactorErrorCode.TOTP_NOT_ENROLLED,
    TotpAlreadyConfirmed: ConfirmSecondFactorErrorCode.TOTP_ALREADY_CONFIRMED,
    InvalidTotpCode: ConfirmSecondFactorErrorCode.INVALID_TOTP_CODE,
}


@strawberry.type
class ConfirmSecondFactorError:
    code: ConfirmSecondFactorErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


@strawberry.type
class ConfirmSecondFactorPayload:
    confirmed: bool
    errors: list[ConfirmSecondFactorError]


@strawberry.input
class ConfirmSecondFactorInput:
    totp_code: str = strawberry.field(description="The 6 digits the app shows now.")


# --- requestPayout ------------------------------------------------------------------------------


@strawberry.enum
class RequestPayoutErrorCode(Enum):
    INSUFFICIENT_DIAMONDS = "INSUFFICIENT_DIAMONDS"
    BELOW_PAYOUT_MINIMUM = "BELOW_PAYOUT_MINIMUM"
    DAILY_PAYOUT_CAP_EXCEEDED = "DAILY_PAYOUT_CAP_EXCEEDED"
    KYC_NOT_VERIFIED = "KYC_NOT_VERIFIED"
    TOTP_NOT_ENROLLED = "TOTP_NOT_ENROLLED"
    INVALID_TOTP_CODE = "INVALID_TOTP_CODE"
    PAYOUT_METHOD_NOT_FOUND = "PAYOUT_METHOD_NOT_FOUND"
    ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_IDEMPOTENCY_KEY = "INVALID_IDEMPOTENCY_KEY"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


_REQUEST_CODES: dict[type[LedgerError], RequestPayoutErrorCode] = {
    InsufficientDiamonds: RequestPayoutErrorCode.INSUFFICIENT_DIAMONDS,
    BelowPayoutMinimum: RequestPayoutErrorCode.BELOW_PAYOUT_MINIMUM,
    DailyPayoutCapExceeded: RequestPayoutErrorCode.DAILY_PAYOUT_CAP_EXCEEDED,
    KycNotVerified: RequestPayoutErrorCode.KYC_NOT_VERIFIED,
    TotpNotEnrolled: RequestPayoutErrorCode.TOTP_NOT_ENROLLED,
    InvalidTotpCode: RequestPayoutErrorCode.INVALID_TOTP_CODE,
    PayoutMethodNotFound: RequestPayoutErrorCode.PAYOUT_METHOD_NOT_FOUND,
    AccountFrozen: RequestPayoutErrorCode.ACCOUNT_FROZEN,
    InvalidAmount: RequestPayoutErrorCode.INVALID_AMOUNT,
    InvalidIdempotencyKey: RequestPayoutErrorCode.INVALID_IDEMPOTENCY_KEY,
    IdempotencyKeyReused: RequestPayoutErrorCode.IDEMPOTENCY_KEY_REUSED,
}


@strawberry.type
class RequestPayoutError:
    code: RequestPayoutErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


@strawberry.type
class RequestPayoutPayload:
    payout: Payout | None = strawberry.field(description="The payout, requested; null on error.")
    replayed: bool = strawberry.field(
        description="True when this idempotency key was seen before: nothing new happened."
    )
    errors: list[RequestPayoutError]


@strawberry.input
class RequestPayoutInput:
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per payout (a UUID). A retry with the "
        "same key returns the first payout and needs no new code."
    )
    diamonds: BigInt = strawberry.field(description="Diamonds to redeem, from those available.")
    payout_method_id: strawberry.ID
    totp_code: str = strawberry.field(description="The 6 digits the authenticator shows now.")


# --- rejectPayout / markPayoutSent / markPayoutPaid / markPayoutFailed -------------------------


@strawberry.enum(description="What may refuse a finance action on a payout (all four share it).")
class PayoutActionErrorCode(Enum):
    PAYOUT_NOT_FOUND = "PAYOUT_NOT_FOUND"
    INVALID_PAYOUT_TRANSITION = "INVALID_PAYOUT_TRANSITION"
    INVALID_REASON = "INVALID_REASON"
    INVALID_PROVIDER_REFERENCE = "INVALID_PROVIDER_REFERENCE"
    INVALID_IDEMPOTENCY_KEY = "INVALID_IDEMPOTENCY_KEY"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


_ACTION_CODES: dict[type[LedgerError], PayoutActionErrorCode] = {
    PayoutNotFound: PayoutActionErrorCode.PAYOUT_NOT_FOUND,
    InvalidPayoutTransition: PayoutActionErrorCode.INVALID_PAYOUT_TRANSITION,
    InvalidReason: PayoutActionErrorCode.INVALID_REASON,
    InvalidProviderReference: PayoutActionErrorCode.INVALID_PROVIDER_REFERENCE,
    InvalidIdempotencyKey: PayoutActionErrorCode.INVALID_IDEMPOTENCY_KEY,
    IdempotencyKeyReused: PayoutActionErrorCode.IDEMPOTENCY_KEY_REUSED,
}


@strawberry.type
class PayoutActionError:
    code: PayoutActionErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


@strawberry.type
class PayoutActionPayload:
    payout: Payout | None = strawberry.field(description="The payout as it is now; null on error.")
    replayed: bool = strawberry.field(
        description="True when this idempotency key was seen before: nothing new happened."
    )
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


async def _advance(info: Info, input: PayoutActionInput, phase: PayoutPhase) -> PayoutActionPayload:
    principal = require_finance(info, f"mark payouts {phase}")
    services = info.context.services
    try:
        payout_id = parse_id(input.payout_id)
        if payout_id is None:
            raise PayoutNotFound(f"No payout {input.payout_id}", field="payoutId")
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
    except LedgerError as error:
        code = payload_code(error, _ACTION_CODES)
        return PayoutActionPayload(
            payout=None,
            replayed=False,
            errors=[PayoutActionError(code=code, message=error.message, field=error.field)],
        )
    async with services.sessions() as session:
        [payout] = await payouts_of(session, [result.payout])
    return PayoutActionPayload(payout=payout, replayed=result.replayed, errors=[])


# --- setKycVerified -----------------------------------------------------------------------------


@strawberry.enum
class SetKycVerifiedErrorCode(Enum):
    INVALID_USER_ID = "INVALID_USER_ID"
    INVALID_REASON = "INVALID_REASON"


@strawberry.type
class SetKycVerifiedError:
    code: SetKycVerifiedErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


@strawberry.type
class SetKycVerifiedPayload:
    kyc: KycStatus | None = strawberry.field(description="As stored; null on error.")
    errors: list[SetKycVerifiedError]


@strawberry.input
class SetKycVerifiedInput:
    user_id: str
    verified: bool = strawberry.field(description="False withdraws the verification.")
    reason: str = strawberry.field(description="Required: what was checked. Kept and audited.")


@strawberry.type
class PayoutMutations:
    @strawberry.mutation(description="Register a bank account or PayPal address (creator role).")
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
        try:
            row = await in_transaction(
                info.context.services.sessions,
                lambda s: payout_methods.register(s, principal.user_id, details),
            )
        except LedgerError as error:
            code = payload_code(
                error,
                {InvalidPayoutMethod: RegisterPayoutMethodErrorCode.INVALID_PAYOUT_METHOD},
            )
            return RegisterPayoutMethodPayload(
                payout_method=None,
                errors=[
                    RegisterPayoutMethodError(code=code, message=error.message, field=error.field)
                ],
            )
        return RegisterPayoutMethodPayload(payout_method=method_of(row), errors=[])

    @strawberry.mutation(
        description="Start enrolling a TOTP second factor (creator role): a new secret, as a "
        "provisioning URI. Enrolling again before confirming replaces it."
    )
    async def enrol_second_factor(self, info: Info) -> EnrolSecondFactorPayload:
        principal = require_creator(info, "enrol a second factor")
        try:
            uri = await in_transaction(
                info.context.services.sessions,
                lambda s: second_factor.enrol(s, principal.user_id),
            )
        except LedgerError as error:
            code = payload_code(
                error,
                {TotpAlreadyConfirmed: EnrolSecondFactorErrorCode.TOTP_ALREADY_CONFIRMED},
            )
            return EnrolSecondFactorPayload(
                provisioning_uri=None,
                errors=[
                    EnrolSecondFactorError(code=code, message=error.message, field=error.field)
                ],
            )
        return EnrolSecondFactorPayload(provisioning_uri=uri, errors=[])

    @strawberry.mutation(
        description="Confirm the enrolled second factor with a code from the app (creator role)."
    )
    async def confirm_second_factor(
        self, info: Info, input: ConfirmSecondFactorInput
    ) -> ConfirmSecondFactorPayload:
        principal = require_creator(info, "confirm a second factor")
        try:
            await in_transaction(
                info.context.services.sessions,
                lambda s: second_factor.confirm(s, principal.user_id, input.totp_code),
            )
        except LedgerError as error:
            code = payload_code(error, _CONFIRM_CODES)
            return ConfirmSecondFactorPayload(
                confirmed=False,
                errors=[
                    ConfirmSecondFactorError(code=code, message=error.message, field=error.field)
                ],
            )
        return ConfirmSecondFactorPayload(confirmed=True, errors=[])

    @strawberry.mutation(
        description="Redeem available diamonds for cash (creator role): reserves them until "
        "finance sends, pays, fails or rejects the payout."
    )
    async def request_payout(self, info: Info, input: RequestPayoutInput) -> RequestPayoutPayload:
        principal = require_creator(info, "request payouts")
        services = info.context.services
        try:
            method_id = parse_id(input.payout_method_id)
            if method_id is None:
                raise PayoutMethodNotFound(
                    f"No payout method {input.payout_method_id}", field="payoutMethodId"
                )
            result = await services.payouts.request_payout(
                PayoutRequest(
                    creator_id=principal.user_id,
                    idempotency_key=input.idempotency_key,
                    diamonds=input.diamonds,
                    method_id=method_id,
                    totp_code=input.totp_code,
                )
            )
        except LedgerError as error:
            code = payload_code(error, _REQUEST_CODES)
            return RequestPayoutPayload(
                payout=None,
                replayed=False,
                errors=[RequestPayoutError(code=code, message=error.message, field=error.field)],
            )
        async with services.sessions() as session:
            [payout] = await payouts_of(session, [result.payout])
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
        description="Record that a sent payout failed or came back (finance role): the cash "
        "is owed to the creator again and the diamonds are available. Needs a reason."
    )
    async def mark_payout_failed(self, info: Info, input: PayoutActionInput) -> PayoutActionPayload:
        return await _advance(info, input, PayoutPhase.FAILED)

    @strawberry.mutation(
        description="Record whether a creator's identity is verified (admin role); payouts "
        "need it. Audited."
    )
    async def set_kyc_verified(
        self, info: Info, input: SetKycVerifiedInput
    ) -> SetKycVerifiedPayload:
        principal = require_principal(info)
        if not may_verify_identity(principal):
            raise forbidden("set KYC flags without the admin role")
        try:
            row = await in_transaction(
                info.context.services.sessions,
                lambda s: standing.set_kyc_verified(
                    s,
                    input.user_id,
                    verified=input.verified,
                    reason=input.reason,
                    actor=principal.actor,
                ),
            )
        except LedgerError as error:
            code = payload_code(
                error,
                {
                    InvalidUserId: SetKycVerifiedErrorCode.INVALID_USER_ID,
                    InvalidReason: SetKycVerifiedErrorCode.INVALID_REASON,
                },
            )
            return SetKycVerifiedPayload(
                kyc=None,
                errors=[SetKycVerifiedError(code=code, message=error.message, field=error.field)],
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
            today = await payouts.cash_requested_today(session, wanted)
        return PayoutControls(
            creator_id=wanted,
            kyc_verified=kyc,
            second_factor_confirmed=confirmed,
            minimum=Money.of(minor_to_micros(policy.minimum_minor, currency), currency),
            daily_cap=Money.of(minor_to_micros(policy.daily_cap_minor, currency), currency),
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
        check_first(first)
        before = decode_cursor("payout", after)
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
        require_principal(info)
        payout_id = parse_id(id)
        if payout_id is None:
            return None
        async with info.context.services.sessions() as session:
            row = await payouts.payout_by_id(session, payout_id)
            if row is None:
                return None
            readable_creator(info, row.creator_id)
            [found] = await payouts_of(session, [row])
        return found

    @strawberry.field(
        description="Every payout requested or sent and not yet resolved, newest first "
        "(finance role)."
    )
    async def payouts_in_flight(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[Payout]:
        require_finance(info, "see every payout in flight")
        check_first(first)
        before = decode_cursor("payout_in_flight", after)
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
        principal = require_principal(info)
        if not may_read_audit_log(principal):
            raise forbidden("read the audit log without the finance or admin role")
        check_first(first)
        before = decode_cursor("audit", after)
        async with info.context.services.sessions() as session:
            page = await audit.audit_trail(session, subject=subject, first=first, before_id=before)
        return connection(
            "audit", [(row.id, audit_record_of(row)) for row in page.items], page.has_next
        )
