"""Signed provider deliveries, as the payment providers and app stores send them."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.provider_events import sign
from accounting.purchases.tables import PurchaseRow
from api.settings import DEVELOPMENT_WEBHOOK_SECRET
from schema.nodes import pk_of

_ids = itertools.count(1)


def secret(provider: str) -> str:
    return DEVELOPMENT_WEBHOOK_SECRET.format(provider=provider)


async def deliver(
    http: httpx.AsyncClient,
    provider: str,
    event: dict[str, Any],
    *,
    key: str | None = None,
    at: int | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """POST ``event`` to the provider's webhook, signed with its development secret (or
    ``key``) at ``at`` (now by default), unless ``signature`` gives the header outright."""
    body = json.dumps(event).encode()
    headers = {"content-type": "application/json"}
    if signature is None:
        signature = sign(key or secret(provider), at or int(time.time()), body)
    if signature:
        headers["coinbooks-signature"] = signature
    return await http.post(f"/webhooks/{provider}", content=body, headers=headers)


def row_id(purchase_id: int | str) -> int:
    """The row a purchase's id names: its global id (GraphQL) or its row id (the domain)."""
    found = pk_of(str(purchase_id), "Purchase")
    assert found is not None, purchase_id
    return found


async def reference_of(sessions: async_sessionmaker[AsyncSession], purchase_id: int | str) -> str:
    async with sessions() as session:
        reference = await session.scalar(
            select(PurchaseRow.provider_reference).where(PurchaseRow.id == row_id(purchase_id))
        )
    assert reference is not None
    return reference


def dispute(
    reference: str,
    *,
    status: str = "needs_response",
    closed: bool = False,
    amount: int,
    currency: str = "usd",
    fee: int = 0,
    dispute_id: str = "dp_1",
    event_id: str | None = None,
    reason: str = "fraudulent",
) -> dict[str, Any]:
    """A processor's dispute event (``charge.dispute.created`` or ``.closed``)."""
    return {
        "id": event_id or f"evt_{next(_ids)}",
        "type": "charge.dispute.closed" if closed else "charge.dispute.created",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": dispute_id,
                "charge": reference,
                "amount": amount,
                "currency": currency,
                "reason": reason,
                "status": status,
                "fee": fee,
            }
        },
    }


def provider_refund(reference: str, *, amount: int, currency: str = "usd") -> dict[str, Any]:
    return {
        "id": f"evt_{next(_ids)}",
        "type": "charge.refunded",
        "data": {"object": {"id": reference, "amount_refunded": amount, "currency": currency}},
    }


def apple_refund(transaction_id: str, *, uuid: str | None = None) -> dict[str, Any]:
    return {
        "notificationType": "REFUND",
        "notificationUUID": uuid or f"apple-{next(_ids)}",
        "data": {"transactionId": transaction_id, "revocationReason": 0},
    }


def google_voided(order_id: str, *, reason: int = 5) -> dict[str, Any]:
    return {
        "messageId": f"google-{next(_ids)}",
        "voidedPurchaseNotification": {
            "orderId": order_id,
            "purchaseToken": "token",
            "voidedReason": reason,
            "voidedSource": 0,
        },
    }
