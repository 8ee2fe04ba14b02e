"""What the breakage tests share: a purchase, a run as of a date with today just after it, the
wallet's last movement, and the books' entries and audit rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.breakage.rules import BreakagePolicy
from accounting.breakage.service import BreakageRequest, BreakageRun, recognise_breakage
from accounting.ledger import balances
from accounting.ledger.tables import JournalEntryRow
from accounting.policy.tables import AuditRow
from accounting.purchases.service import PurchaseRequest, PurchaseService

POLICY = BreakagePolicy(after_days=730)


async def buy(purchases: PurchaseService, user: str, key: str, package: str = "coins_350") -> None:
    """``user`` buys ``package`` with a card on the web, in dollars ($4.99 for 350 coins)."""
    bought = await purchases.purchase_coins(
        PurchaseRequest(user, key, "USD", "web", "card", "tok_success", package_code=package)
    )
    assert bought.purchase.status == "completed"


async def run(
    sessions: async_sessionmaker[AsyncSession],
    as_of: date,
    *,
    key: str = "breakage-run-0001",
    dry_run: bool = False,
    actor: str = "user:fin",
) -> BreakageRun:
    """A run as of ``as_of`` on the day after it: the day has ended."""
    return await recognise_breakage(
        sessions,
        BreakageRequest(as_of, actor, key, dry_run),
        policy=POLICY,
        functional_currency="USD",
        today=as_of + timedelta(days=1),
    )


async def last_moved_on(sessions: async_sessionmaker[AsyncSession], user: str) -> date:
    """The UTC day of the wallet's last posting: its movement's day ``T``."""
    async with sessions() as session:
        at = await session.scalar(
            text(
                "SELECT max(p.posted_at) FROM posting p JOIN account a ON a.id = p.account_id"
                " WHERE a.code IN (:coins, :value)"
            ),
            {"coins": f"user:{user}:coins", "value": f"user:{user}:coins_value"},
        )
    assert isinstance(at, datetime)
    return at.astimezone(UTC).date()


async def wallet(sessions: async_sessionmaker[AsyncSession], user: str) -> tuple[int, int]:
    async with sessions() as session:
        found = await balances.wallet(session, user, "USD")
    return found.coins, found.coins_value_micros


async def balance(sessions: async_sessionmaker[AsyncSession], code: str) -> int:
    async with sessions() as session:
        found = await balances.account_balance(session, code)
    return found.balance if found else 0


async def counts(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int, int]:
    """Journal entries, breakage entries, breakage audit rows."""
    async with sessions() as session:
        entries = await session.scalar(select(func.count()).select_from(JournalEntryRow))
        broken = await session.scalar(
            select(func.count()).where(JournalEntryRow.kind == "breakage")
        )
        audited = await session.scalar(
            select(func.count()).where(AuditRow.action == "breakage.recognised")
        )
    return int(entries or 0), int(broken or 0), int(audited or 0)
