"""Purchases through the accounting core: PurchaseService.purchase_coins called directly, with
the sandbox provider, by N concurrent workers."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseRequest, PurchaseService
from bench.limits import PURCHASE_DAILY_COIN_LIMIT
from bench.load import LoadResult, NotAcknowledged, drive

PACKAGE = "coins_350"
"""A USD card purchase on the web: the entry has six postings (coins, wallet value, clearing,
fee)."""


def purchase_request(user_id: str) -> PurchaseRequest:
    return PurchaseRequest(
        user_id=user_id,
        idempotency_key=uuid.uuid4().hex,
        currency="USD",
        channel="web",
        provider="card",
        payment_token="tok_success",
        package_code=PACKAGE,
    )


def user_ids(prefix: str, count: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"{prefix}-{run}-{i}" for i in range(count)]


async def drive_core(
    service: PurchaseService,
    *,
    clients: int,
    seconds: float,
    warmup: float = 0.0,
    users: int | None = None,
) -> LoadResult:
    """``clients`` workers buy coins for ``seconds``. Each worker buys for a user of its own,
    or, with ``users``, the workers share that many users (client ``i`` buys for user
    ``i % users``), so purchases contend for the same wallets."""
    buyers = user_ids("core", users or clients)

    async def attempt(client: int, sequence: int) -> None:
        result = await service.purchase_coins(purchase_request(buyers[client % len(buyers)]))
        if result.replayed or result.purchase.status != "completed":
            raise NotAcknowledged(
                f"purchase {result.purchase.id} is {result.purchase.status}"
                f"{' (replayed)' if result.replayed else ''}"
            )

    return await drive(clients, seconds, warmup, attempt)


def purchase_service(sessions: async_sessionmaker[AsyncSession]) -> PurchaseService:
    """Purchases with the sandbox provider and the benchmark's (never reached) daily limit."""
    return PurchaseService(
        sessions,
        SandboxGateway(sessions),
        functional_currency="USD",
        daily_coin_limit=PURCHASE_DAILY_COIN_LIMIT,
    )
