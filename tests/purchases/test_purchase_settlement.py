"""Settling purchases the provider never answered: a charge it has no record of may still be on
its way there, so the purchase stays pending through a grace period before it fails."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.tables import JournalEntryRow
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseRequest, PurchaseService


def service(sessions: async_sessionmaker[AsyncSession], grace: timedelta) -> PurchaseService:
    return PurchaseService(sessions, SandboxGateway(sessions), unanswered_grace=grace)


def lost(key: str) -> PurchaseRequest:
    return PurchaseRequest(
        "ana", key, "USD", "web", "card", "tok_timeout_lost", package_code="coins_70"
    )


async def entries(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(JournalEntryRow)) or 0)


async def test_a_charge_with_no_record_stays_pending_within_the_grace_period(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    patient = service(sessions, timedelta(minutes=2))
    first = await patient.purchase_coins(lost("lost-on-the-way-1"))
    assert first.purchase.status == "pending"

    assert await patient.settle_pending() == {"completed": 0, "failed": 0, "pending": 1}
    retry = await patient.purchase_coins(lost("lost-on-the-way-1"))
    assert retry.replayed and retry.purchase.status == "pending"
    assert await entries(sessions) == 0


async def test_after_the_grace_period_a_charge_with_no_record_fails_as_never_charged(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await service(sessions, timedelta(minutes=2)).purchase_coins(lost("lost-for-good-1"))
    assert first.purchase.status == "pending"

    counts = await service(sessions, timedelta(0)).settle_pending()
    assert counts == {"completed": 0, "failed": 1, "pending": 0}
    settled = await service(sessions, timedelta(0)).settle(first.purchase.id)
    assert settled.status == "failed" and settled.failure_code == "not_charged"
    assert await entries(sessions) == 0


async def test_the_grace_period_never_delays_a_charge_the_provider_did_take(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    patient = service(sessions, timedelta(minutes=2))
    first = await patient.purchase_coins(
        PurchaseRequest(
            "ana", "taken-but-silent", "USD", "web", "card", "tok_timeout", package_code="coins_70"
        )
    )
    assert first.purchase.status == "pending"
    assert await patient.settle_pending() == {"completed": 1, "failed": 0, "pending": 0}
    assert await entries(sessions) == 1
