"""Provider events: signed notifications from payment providers and app stores, read, checked
and applied to the books exactly once per provider event id.

Every provider signs its deliveries with HMAC-SHA256 under its own secret. The signature header
is ``Coinbooks-Signature: t=<unix seconds>,v1=<hex digest>`` over ``<t>.<raw body>`` (more than
one ``v1`` may be given while a secret is being rotated). The events are modelled on the real
ones, each provider in its own shape:

- ``card``, ``paypal``, ``mobile_wallet`` (processor events): ``charge.dispute.created``,
  ``charge.dispute.closed`` (``status`` won or lost), ``charge.refunded``;
- ``apple`` (App Store Server Notifications): ``REFUND``;
- ``google`` (Play real-time developer notifications): ``voidedPurchaseNotification``.

A purchase is named by the reference its provider gave the charge (``providerReference``).
A dispute names the amount it disputes; ``charge.refunded`` names the charge's
``amount_refunded``, all that was refunded of it so far (each partial refund adds to it). Less
than the price takes back part of the purchase (docs/accounting.md, "Chargebacks").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.rules import LossPolicy
from accounting.chargebacks.service import (
    ChargebackClaim,
    ChargebackKind,
    ChargebackResult,
    Outcome,
    charge_back,
    resolve_dispute,
)
from accounting.chargebacks.tables import ProviderEventRow, WebhookRefusalRow
from accounting.ledger.chart import PROVIDERS
from accounting.ledger.errors import LedgerError
from accounting.ledger.pages import Page, newest_first
from accounting.ledger.posting import in_transaction
from accounting.purchases.reads import purchase_by_reference

SIGNATURE_HEADER = "coinbooks-signature"
PROCESSORS = ("card", "paypal", "mobile_wallet")


class Refusal(StrEnum):
    UNKNOWN_PROVIDER = "UNKNOWN_PROVIDER"
    MISSING_SIGNATURE = "MISSING_SIGNATURE"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    STALE_TIMESTAMP = "STALE_TIMESTAMP"
    MALFORMED_EVENT = "MALFORMED_EVENT"


class WebhookRefused(Exception):
    """A delivery refused before it was read as an event; recorded, answered with ``code``."""

    def __init__(self, code: Refusal, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header a provider sends with ``body`` at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    header: str | None, body: bytes, *, secret: str, now: datetime, tolerance_seconds: int
) -> datetime:
    """When the provider signed ``body``, if ``header`` is its valid signature of it under
    ``secret`` from within ``tolerance_seconds`` of ``now``; refused otherwise."""
    if not header:
        raise WebhookRefused(Refusal.MISSING_SIGNATURE, "No Coinbooks-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookRefused(Refusal.MISSING_SIGNATURE, "The signature needs t=... and v1=...")
    expected = sign(secret, timestamp, body).partition(",v1=")[2]
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise WebhookRefused(Refusal.BAD_SIGNATURE, "The signature does not match the body")
    signed_at = datetime.fromtimestamp(timestamp, UTC)
    if abs((now - signed_at).total_seconds()) > tolerance_seconds:
        raise WebhookRefused(
            Refusal.STALE_TIMESTAMP,
            f"Signed at {signed_at.isoformat()}: outside {tolerance_seconds} s of now",
        )
    return signed_at


class EventAction(StrEnum):
    CHARGE_BACK = "charge_back"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A provider's event, read into what it asks of the books."""

    provider: str
    event_id: str
    event_type: str
    action: EventAction
    payload: dict[str, Any]
    reference: str | None = None
    """The provider's reference of the charge it concerns."""
    kind: ChargebackKind | None = None
    case_id: str = ""
    reason: str = ""
    amount_minor: int | None = None
    currency: str | None = None
    fee_minor: int = 0
    cumulative: bool = False
    """``amount_minor`` is all the provider refunded of the charge so far."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


_Id = Field(min_length=1, max_length=200)


class _Dispute(_Strict):
    id: str = _Id
    charge: str = _Id
    amount: int = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)
    reason: str = Field(default="", max_length=200)
    status: str = Field(default="", max_length=50)
    fee: int = Field(default=0, ge=0)


class _Charge(_Strict):
    id: str = _Id
    amount_refunded: int = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)


class _ProcessorEvent(_Strict):
    id: str = _Id
    type: str = Field(min_length=1, max_length=100)
    data: dict[str, Any]


class _AppleData(_Strict):
    transactionId: str = _Id
    revocationReason: int | None = None


class _AppleNotification(_Strict):
    notificationUUID: str = _Id
    notificationType: str = Field(min_length=1, max_length=100)
    subtype: str | None = None
    data: _AppleData | None = None


GOOGLE_VOIDED_REASONS = {
    0: "other",
    1: "remorse",
    2: "not_received",
    3: "defective",
    4: "accidental_purchase",
    5: "fraud",
    6: "friendly_fraud",
    7: "chargeback",
}


class _GoogleVoided(_Strict):
    orderId: str = _Id
    purchaseToken: str = Field(default="", max_length=500)
    voidedReason: int = Field(default=0, ge=0, le=7)
    voidedSource: int = Field(default=0, ge=0, le=2)


class _GoogleNotification(_Strict):
    messageId: str = _Id
    voidedPurchaseNotification: _GoogleVoided | None = None


def _processor_event(provider: str, raw: dict[str, Any]) -> ProviderEvent:
    event = _ProcessorEvent.model_validate(raw)
    obj = event.data.get("object")
    common: dict[str, Any] = {
        "provider": provider,
        "event_id": event.id,
        "event_type": event.type,
        "payload": raw,
    }
    if event.type in ("charge.dispute.created", "charge.dispute.closed"):
        dispute = _Dispute.model_validate(obj)
        action = EventAction.CHARGE_BACK
        if event.type == "charge.dispute.closed":
            if dispute.status not in ("won", "lost"):
                raise ValueError(f"a closed dispute is won or lost, not {dispute.status!r}")
            action = (
                EventAction.DISPUTE_WON if dispute.status == "won" else EventAction.DISPUTE_LOST
            )
        return ProviderEvent(
            **common,
            action=action,
            reference=dispute.charge,
            kind=ChargebackKind.DISPUTE,
            case_id=dispute.id,
            reason=dispute.reason,
            amount_minor=dispute.amount,
            currency=dispute.currency.upper(),
            fee_minor=dispute.fee,
        )
    if event.type == "charge.refunded":
        charge = _Charge.model_validate(obj)
        return ProviderEvent(
            **common,
            action=EventAction.CHARGE_BACK,
            reference=charge.id,
            kind=ChargebackKind.PROVIDER_REFUND,
            case_id=event.id,
            reason="refunded at the provider",
            amount_minor=charge.amount_refunded,
            currency=charge.currency.upper(),
            cumulative=True,
        )
    return ProviderEvent(**common, action=EventAction.IGNORE)


def _apple_event(raw: dict[str, Any]) -> ProviderEvent:
    note = _AppleNotification.model_validate(raw)
    common: dict[str, Any] = {
        "provider": "apple",
        "event_id": note.notificationUUID,
        "event_type": note.notificationType,
        "payload": raw,
    }
    if note.notificationType != "REFUND":
        return ProviderEvent(**common, action=EventAction.IGNORE)
    if note.data is None:
        raise ValueError("a REFUND notification names its transaction in data.transactionId")
    reason = {0: "other", 1: "app issue"}.get(note.data.revocationReason or 0, "other")
    return ProviderEvent(
        **common,
        action=EventAction.CHARGE_BACK,
        reference=note.data.transactionId,
        kind=ChargebackKind.APP_STORE_REFUND,
        case_id=note.notificationUUID,
        reason=f"Apple refund ({reason})",
    )


def _google_event(raw: dict[str, Any]) -> ProviderEvent:
    note = _GoogleNotification.model_validate(raw)
    common: dict[str, Any] = {"provider": "google", "event_id": note.messageId, "payload": raw}
    voided = note.voidedPurchaseNotification
    if voided is None:
        return ProviderEvent(**common, event_type="other", action=EventAction.IGNORE)
    return ProviderEvent(
        **common,
        event_type="voidedPurchaseNotification",
        action=EventAction.CHARGE_BACK,
        reference=voided.orderId,
        kind=ChargebackKind.VOIDED,
        case_id=note.messageId,
        reason=f"Google voided purchase ({GOOGLE_VOIDED_REASONS[voided.voidedReason]})",
    )


def read_event(provider: str, body: bytes) -> ProviderEvent:
    """The event in a verified delivery's body, or refused as malformed."""
    try:
        raw = json.loads(body)
        if not isinstance(raw, dict):
            raise ValueError("an event is a JSON object")
        if provider in PROCESSORS:
            return _processor_event(provider, raw)
        if provider == "apple":
            return _apple_event(raw)
        if provider == "google":
            return _google_event(raw)
    except (ValueError, ValidationError) as error:
        detail = (
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
            if isinstance(error, ValidationError)
            else str(error)
        )
        raise WebhookRefused(Refusal.MALFORMED_EVENT, f"Unreadable event: {detail}") from None
    raise WebhookRefused(Refusal.UNKNOWN_PROVIDER, f"No provider {provider!r}")


NotificationVerifier = Callable[[str], dict[str, Any]]
"""A store's check of its signed notification (a JWS): the notification as the store's event
reader takes it, or a :class:`LedgerError` when it does not verify."""


def read_signed_notification(
    provider: str, body: bytes, verify: NotificationVerifier
) -> tuple[ProviderEvent, datetime]:
    """The event in a store's signed notification, ``{"signedPayload": "<JWS>"}`` (Apple's
    App Store Server Notifications V2), and when the store signed it. The JWS is the signature:
    one that does not verify (signature, certificate chain, app, environment) is refused."""
    try:
        raw = json.loads(body)
    except ValueError:
        raise WebhookRefused(Refusal.MALFORMED_EVENT, "Unreadable event: not JSON") from None
    signed = raw.get("signedPayload") if isinstance(raw, dict) else None
    if not isinstance(signed, str) or not signed:
        raise WebhookRefused(
            Refusal.MISSING_SIGNATURE, f"A {provider[:50]} notification is a signedPayload"
        )
    try:
        notification = verify(signed)
    except LedgerError as error:
        raise WebhookRefused(Refusal.BAD_SIGNATURE, error.message) from None
    signed_ms = notification.get("signedDate")
    signed_at = (
        datetime.fromtimestamp(signed_ms / 1000, UTC)
        if isinstance(signed_ms, int)
        else datetime.now(UTC)
    )
    return read_event(provider, json.dumps(notification).encode()), signed_at


def check_provider(provider: str, secrets: dict[str, str]) -> str:
    """The secret ``provider`` signs with; refused when it is not a provider we know."""
    if provider not in PROVIDERS or not secrets.get(provider):
        raise WebhookRefused(Refusal.UNKNOWN_PROVIDER, f"No provider {provider[:50]!r}")
    return secrets[provider]


@dataclass(frozen=True, slots=True)
class Accepted:
    event: ProviderEventRow
    duplicate: bool


async def record_refusal(
    sessions: async_sessionmaker[AsyncSession],
    *,
    provider: str,
    refusal: WebhookRefused,
    body: bytes,
    client: str | None,
) -> None:
    """Count a refused delivery into the row of its source, reason and minute: the first of a
    minute keeps its details as the sample (the body's hash and size, not the body), each after
    it adds one to the count, its size to the bytes and moves the last delivery on. However many
    junk deliveries come, they write at most one row per source, reason and minute; an address
    naming no provider we know counts under ``unknown``."""
    now = func.now()
    counted = (
        insert(WebhookRefusalRow)
        .values(
            source=provider if provider in PROVIDERS else "unknown",
            reason=str(refusal.code),
            window_start=func.date_trunc("minute", now),
            deliveries=1,
            body_bytes=len(body),
            first_seen_at=now,
            last_seen_at=now,
            sample_provider=provider[:100],
            sample_detail=refusal.message[:1000],
            sample_body_sha256=hashlib.sha256(body).hexdigest(),
            sample_body_bytes=len(body),
            sample_client=client,
        )
        .on_conflict_do_update(
            index_elements=["source", "reason", "window_start"],
            set_={
                "deliveries": WebhookRefusalRow.deliveries + 1,
                "body_bytes": WebhookRefusalRow.body_bytes + len(body),
                "last_seen_at": func.greatest(WebhookRefusalRow.last_seen_at, now),
            },
        )
    )
    async with sessions() as session, session.begin():
        await session.execute(counted)


async def _apply(
    session: AsyncSession,
    event: ProviderEvent,
    *,
    functional_currency: str,
    loss_policy: LossPolicy,
) -> tuple[Outcome, str, int | None, int | None]:
    if event.action is EventAction.IGNORE or event.kind is None:
        return Outcome.IGNORED, f"{event.event_type} moves no money", None, None
    purchase_id = await purchase_by_reference(session, event.provider, event.reference)
    if purchase_id is None:
        return (
            Outcome.UNKNOWN_PURCHASE,
            f"No {event.provider} purchase with reference {event.reference}",
            None,
            None,
        )
    claim = ChargebackClaim(
        purchase_id=purchase_id,
        kind=event.kind,
        case_id=event.case_id,
        reason=event.reason,
        actor=f"provider:{event.provider}",
        amount_minor=event.amount_minor,
        currency=event.currency,
        fee_minor=event.fee_minor,
        cumulative=event.cumulative,
    )
    result: ChargebackResult
    if event.action is EventAction.CHARGE_BACK:
        result = await charge_back(
            session, claim, functional_currency=functional_currency, loss_policy=loss_policy
        )
    else:
        result = await resolve_dispute(
            session,
            claim,
            won=event.action is EventAction.DISPUTE_WON,
            functional_currency=functional_currency,
            loss_policy=loss_policy,
        )
    chargeback_id = result.chargeback.id if result.chargeback is not None else None
    return result.outcome, result.detail, purchase_id, chargeback_id


async def accept_event(
    sessions: async_sessionmaker[AsyncSession],
    event: ProviderEvent,
    *,
    signed_at: datetime,
    functional_currency: str,
    loss_policy: LossPolicy,
) -> Accepted:
    """Apply ``event`` to the books and record it, in one transaction, once per provider event
    id: deliveries of one event queue on a lock of its id, and each after the first finds the
    record and answers with it. An event whose request a rule refuses is recorded as refused,
    with nothing posted."""

    async def accept(session: AsyncSession) -> Accepted:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"provider_event:{event.provider}:{event.event_id}"},
        )
        seen = await session.scalar(
            select(ProviderEventRow).where(
                ProviderEventRow.provider == event.provider,
                ProviderEventRow.event_id == event.event_id,
            )
        )
        if seen is not None:
            return Accepted(seen, duplicate=True)
        purchase_id: int | None = None
        chargeback_id: int | None = None
        try:
            async with session.begin_nested():
                outcome, detail, purchase_id, chargeback_id = await _apply(
                    session,
                    event,
                    functional_currency=functional_currency,
                    loss_policy=loss_policy,
                )
        except LedgerError as error:
            outcome, detail = Outcome.REFUSED, f"{error.code}: {error.message}"
        row = ProviderEventRow(
            provider=event.provider,
            event_id=event.event_id,
            event_type=event.event_type,
            payload=event.payload,
            signed_at=signed_at,
            received_at=await session.scalar(select(func.clock_timestamp())),
            outcome=str(outcome),
            detail=detail[:1000],
            purchase_id=purchase_id,
            chargeback_id=chargeback_id,
        )
        session.add(row)
        await session.flush()
        return Accepted(row, duplicate=False)

    return await in_transaction(sessions, accept)


async def provider_events_page(
    session: AsyncSession,
    *,
    purchase_id: int | None = None,
    first: int = 20,
    before_id: int | None = None,
) -> Page[ProviderEventRow]:
    """Provider events as accepted, newest first, of one purchase or of all."""
    conditions = [] if purchase_id is None else [ProviderEventRow.purchase_id == purchase_id]
    return await newest_first(
        session, ProviderEventRow, *conditions, first=first, before_id=before_id
    )


async def refused_deliveries_page(
    session: AsyncSession, *, first: int = 20, before_id: int | None = None
) -> Page[WebhookRefusalRow]:
    """Webhook deliveries refused, counted per source, reason and minute, newest first."""
    return await newest_first(session, WebhookRefusalRow, first=first, before_id=before_id)
