"""Provider webhooks: ``POST /webhooks/{provider}``, HMAC-signed, each event applied once.

Answers: 200 with what the event did (``duplicate`` true for a delivery of an event already
accepted, with the first outcome); 401 for a missing, wrong or stale signature; 404 for an
unknown provider; 400 for a body that is not an event of that provider. Every refusal is
counted (``webhook_refusal``: one row per source, reason and minute, with a sample), and every
accepted event recorded (``provider_event``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse

from accounting.chargebacks.provider_events import (
    SIGNATURE_HEADER,
    Refusal,
    WebhookRefused,
    accept_event,
    check_provider,
    read_event,
    read_signed_notification,
    record_refusal,
    verify_signature,
)
from api.database import app_store_verifier
from api.settings import Settings

STATUS = {
    Refusal.UNKNOWN_PROVIDER: 404,
    Refusal.MISSING_SIGNATURE: 401,
    Refusal.BAD_SIGNATURE: 401,
    Refusal.STALE_TIMESTAMP: 401,
    Refusal.MALFORMED_EVENT: 400,
}


def webhook_endpoint(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    on_delivery: Callable[[str, str], None] | None = None,
) -> Callable[[Request], Awaitable[JSONResponse]]:
    """``on_delivery(provider, outcome)`` hears of each delivery: ``accepted``, ``duplicate``
    or the refusal's code (an unknown provider is told as ``unknown``)."""
    secrets = settings.provider_webhook_secrets()
    # A store whose signed data is verified here signs its notifications the same way (a JWS,
    # not the HMAC header): Apple's, when configured.
    apple = app_store_verifier(settings)
    signed_by_store = {"apple": apple.verify_notification} if apple is not None else {}

    async def receive(request: Request) -> JSONResponse:
        provider = str(request.path_params["provider"])
        body = await request.body()
        try:
            if provider in signed_by_store:
                event, signed_at = read_signed_notification(
                    provider, body, signed_by_store[provider]
                )
            else:
                secret = check_provider(provider, secrets)
                signed_at = verify_signature(
                    request.headers.get(SIGNATURE_HEADER),
                    body,
                    secret=secret,
                    now=datetime.now(UTC),
                    tolerance_seconds=settings.webhook_tolerance_seconds,
                )
                event = read_event(provider, body)
        except WebhookRefused as refusal:
            await record_refusal(
                sessions,
                provider=provider,
                refusal=refusal,
                body=body,
                client=request.client.host if request.client else None,
            )
            if on_delivery is not None:
                known = refusal.code != Refusal.UNKNOWN_PROVIDER
                on_delivery(provider if known else "unknown", str(refusal.code))
            return JSONResponse(
                {"error": {"code": str(refusal.code), "message": refusal.message}},
                status_code=STATUS[refusal.code],
            )
        accepted = await accept_event(
            sessions,
            event,
            signed_at=signed_at,
            functional_currency=settings.functional_currency,
            loss_policy=settings.chargeback_loss_policy,
        )
        row = accepted.event
        if on_delivery is not None:
            on_delivery(provider, "duplicate" if accepted.duplicate else "accepted")
        return JSONResponse(
            {
                "eventId": row.event_id,
                "duplicate": accepted.duplicate,
                "outcome": row.outcome,
                "detail": row.detail,
                "purchaseId": row.purchase_id,
                "chargebackId": row.chargeback_id,
            }
        )

    return receive
