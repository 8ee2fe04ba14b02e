"""Refunds: whether a purchase may be refunded now, and if not, every reason why (the refund
check, read-only), and the refund itself, at most once per purchase (DESIGN.md: Refund).

Coins are not refundable, by policy, except within a window after the purchase while the
buyer still holds every coin it granted; app-store purchases are refunded by the store, never
by us; a frozen account is refunded by nobody until support lifts the freeze.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.reads import Chargeback, standing_chargeback
from accounting.ledger import balances, idempotency
from accounting.ledger.errors import IdempotencyKeyReused, InvalidReason
from accounting.ledger.money import minor_to_micros
from accounting.ledger.posting import in_transaction, lock_accounts, post_entry
from accounting.ledger.valuation import release_value
from accounting.policy import audit, separation, standing
from accounting.purchases.reads import Purchase, purchase_of, value_paid
from accounting.refunds.errors import RefundNotAllowed
from accounting.refunds.rules import RefundFacts, refund_accounts, refund_entry
from accounting.refunds.tables import RefundRow

DEFAULT_REFUND_WINDOW = timedelta(days=14)
REFUNDING_PROVIDERS = frozenset({"card", "paypal", "mobile_wallet"})
"""Providers we refund through; Apple and Google refund their purchases themselves."""


class RefundBlock(StrEnum):
    NOT_COMPLETED = "NOT_COMPLETED"
    ALREADY_REFUNDED = "ALREADY_REFUNDED"
    CHARGED_BACK = "CHARGED_BACK"
    COINS_SPENT = "COINS_SPENT"
    WINDOW_PASSED = "WINDOW_PASSED"
    PROVIDER_DOES_NOT_REFUND = "PROVIDER_DOES_NOT_REFUND"
    ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
    NOTHING_GRANTED = "NOTHING_GRANTED"
    """All of the price repaid what the buyer owed after a chargeback: no coin to take back."""


@dataclass(frozen=True, slots=True)
class RefundPolicy:
    window: timedelta = DEFAULT_REFUND_WINDOW
    providers: frozenset[str] = field(default_factory=lambda: REFUNDING_PROVIDERS)


@dataclass(frozen=True, slots=True)
class RefundReason:
    code: RefundBlock
    message: str


@dataclass(frozen=True, slots=True)
class RefundAmounts:
    """What a refund would move (DESIGN.md: Refund)."""

    coins: int
    """The purchase's coins, bonus included, back from the wallet."""
    cash_micros: int
    """The price, back to the provider, in the purchase's currency."""
    currency: str
    value_released_micros: int
    """The wallet's weighted-average value for those coins, in the functional currency."""
    contra_revenue_micros: int
    """What was paid (in the functional currency) less the value released: refunds' contra
    revenue (negative when the wallet's average is above what this purchase cost)."""
    functional_currency: str
    value_paid_micros: int
    """What the purchase put into deferred value, in the functional currency."""
    receivable_restored_micros: int = 0
    """What the purchase repaid of its buyer's receivable: owed again once refunded."""


@dataclass(frozen=True, slots=True)
class RefundCheck:
    purchase: Purchase
    reasons: tuple[RefundReason, ...]
    refundable_until: datetime
    amounts: RefundAmounts | None
    """``None`` when the wallet no longer holds the purchase's coins (nothing to take back)."""

    @property
    def refundable(self) -> bool:
        return not self.reasons


async def check_refund(
    session: AsyncSession,
    purchase_id: int,
    *,
    policy: RefundPolicy,
    functional_currency: str,
) -> RefundCheck:
    """Every reason purchase ``purchase_id`` may not be refunded now, and what a refund would
    move; reads only, in one transaction's snapshot if the caller holds one."""
    purchase = await purchase_of(session, purchase_id)
    now = await session.scalar(select(func.now()))
    assert now is not None
    refundable_until = purchase.created_at + policy.window
    refunded = await session.scalar(
        select(RefundRow.id).where(RefundRow.purchase_id == purchase.id)
    )
    charged_back = await standing_chargeback(session, purchase.id)
    reasons = _reasons_by_policy(
        purchase,
        policy,
        now=now,
        refundable_until=refundable_until,
        refunded=refunded,
        charged_back=charged_back,
        frozen=await standing.is_frozen(session, purchase.user_id),
    )
    amounts = None
    if purchase.status == "completed" and refunded is None and charged_back is None:
        moved = await _what_it_moves(session, purchase, functional_currency)
        if isinstance(moved, RefundReason):
            reasons.append(moved)
        else:
            amounts = moved
    return RefundCheck(purchase, tuple(reasons), refundable_until, amounts)


def _reasons_by_policy(
    purchase: Purchase,
    policy: RefundPolicy,
    *,
    now: datetime,
    refundable_until: datetime,
    refunded: int | None,
    charged_back: Chargeback | None,
    frozen: bool,
) -> list[RefundReason]:
    """Every reason but spent coins that the purchase may not be refunded now."""
    reasons: list[RefundReason] = []
    if purchase.status != "completed":
        reasons.append(
            RefundReason(
                RefundBlock.NOT_COMPLETED,
                f"The purchase is {purchase.status}: it granted no coins to refund",
            )
        )
    if refunded is not None:
        reasons.append(
            RefundReason(RefundBlock.ALREADY_REFUNDED, f"The purchase was refunded ({refunded})")
        )
    if charged_back is not None:
        reasons.append(
            RefundReason(
                RefundBlock.CHARGED_BACK,
                f"The purchase was taken back by {charged_back.provider}"
                f" ({charged_back.kind} {charged_back.case_id})",
            )
        )
    if now > refundable_until:
        reasons.append(
            RefundReason(
                RefundBlock.WINDOW_PASSED,
                f"Coins are refundable for {policy.window.days} days after purchase, until "
                f"{refundable_until.isoformat()}",
            )
        )
    if purchase.provider not in policy.providers:
        reasons.append(
            RefundReason(
                RefundBlock.PROVIDER_DOES_NOT_REFUND,
                f"Purchases through {purchase.provider} are refunded by the store, not by us",
            )
        )
    if frozen:
        reasons.append(
            RefundReason(RefundBlock.ACCOUNT_FROZEN, f"Account {purchase.user_id} is frozen")
        )
    return reasons


async def _what_it_moves(
    session: AsyncSession, purchase: Purchase, functional_currency: str
) -> RefundAmounts | RefundReason:
    """What a refund of the purchase would move, if the wallet still holds all its coins;
    else why not."""
    coins = purchase.coins + purchase.bonus_coins - purchase.coins_withheld
    if coins == 0:
        return RefundReason(
            RefundBlock.NOTHING_GRANTED,
            "The purchase granted no coins: all of its price repaid what the account owed",
        )
    held = await balances.wallet(session, purchase.user_id, functional_currency)
    if held.coins < coins:
        return RefundReason(
            RefundBlock.COINS_SPENT,
            f"The purchase granted {coins:,} coins; the wallet holds {held.coins:,}",
        )
    released = release_value(held.coins_value_micros, held.coins, coins)
    paid = await value_paid(session, purchase, functional_currency)
    return RefundAmounts(
        value_paid_micros=paid,
        coins=coins,
        cash_micros=minor_to_micros(purchase.price_minor, purchase.currency),
        currency=purchase.currency,
        value_released_micros=released,
        contra_revenue_micros=paid - released,
        functional_currency=functional_currency,
        receivable_restored_micros=purchase.receivable_repaid_micros,
    )


MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class RefundRequest:
    purchase_id: int
    idempotency_key: str
    actor: str
    """Who refunds (``user:<id>`` of a support person): recorded, with ``reason``."""
    reason: str


@dataclass(frozen=True, slots=True)
class RefundResult:
    refund: RefundRow
    purchase: Purchase
    replayed: bool


async def refund_purchase(
    sessions: async_sessionmaker[AsyncSession],
    request: RefundRequest,
    *,
    policy: RefundPolicy,
    functional_currency: str,
) -> RefundResult:
    """Refund a purchase, if the refund check says it may be, in one transaction: the purchase
    is locked (two refunds of it queue, and the second finds the first), then the wallet with
    every other account the refund posts to, so the check and the entry see the same coins.
    The same idempotency key again gives back the first refund and posts nothing; with another
    purchase it is refused."""
    idempotency.check_key(request.idempotency_key)
    reason = request.reason.strip()
    if not 1 <= len(reason) <= MAX_REASON:
        raise InvalidReason(f"A reason is 1-{MAX_REASON} characters", field="reason")

    async def refund(session: AsyncSession) -> RefundResult:
        replayed = await _refund_by_key(session, request)
        if replayed is not None:
            return replayed
        purchase = await purchase_of(session, request.purchase_id, lock=True)
        separation.check_not_own(
            request.actor, purchase.user_id, doing="refund your own purchase", field="purchaseId"
        )
        await lock_accounts(  # every account the refund may post to, in one statement
            session,
            refund_accounts(
                purchase.user_id,
                purchase.provider,
                purchase.currency,
                functional_currency,
                receivable=purchase.receivable_repaid_micros > 0,
            ),
            open_missing=False,
        )
        check = await check_refund(
            session, purchase.id, policy=policy, functional_currency=functional_currency
        )
        if not check.refundable or check.amounts is None:
            raise RefundNotAllowed(
                "; ".join(reason.message for reason in check.reasons),
                field="purchaseId",
                reasons=[str(reason.code) for reason in check.reasons],
            )
        row = await _book(session, purchase, check.amounts, request, reason)
        return RefundResult(row, purchase, replayed=False)

    return await in_transaction(sessions, refund)


async def _refund_by_key(session: AsyncSession, request: RefundRequest) -> RefundResult | None:
    """The refund its actor made before under the request's idempotency key, if any (refused
    if it refunded another purchase)."""
    existing = await session.scalar(
        select(RefundRow).where(
            RefundRow.actor == request.actor,
            RefundRow.idempotency_key == request.idempotency_key,
        )
    )
    if existing is None:
        return None
    if existing.purchase_id != request.purchase_id:
        raise IdempotencyKeyReused(
            "This idempotency key was used to refund another purchase",
            field="idempotencyKey",
        )
    purchase = await purchase_of(session, existing.purchase_id)
    return RefundResult(existing, purchase, replayed=True)


async def _book(
    session: AsyncSession,
    purchase: Purchase,
    amounts: RefundAmounts,
    request: RefundRequest,
    reason: str,
) -> RefundRow:
    """The refund's entry, its row and its line in the audit log."""
    facts = RefundFacts(
        purchase_id=purchase.id,
        user_id=purchase.user_id,
        provider=purchase.provider,
        currency=purchase.currency,
        coins=amounts.coins,
        cash_micros=amounts.cash_micros,
        value_paid_micros=amounts.value_paid_micros,
        value_released_micros=amounts.value_released_micros,
        functional_currency=amounts.functional_currency,
        receivable_restored_micros=amounts.receivable_restored_micros,
    )
    posted = await post_entry(session, refund_entry(facts, actor=request.actor, reason=reason))
    row = RefundRow(
        purchase_id=purchase.id,
        entry_id=posted.id,
        actor=request.actor,
        idempotency_key=request.idempotency_key,
        reason=reason,
        coins=amounts.coins,
        cash_minor=purchase.price_minor,
        value_released_micros=amounts.value_released_micros,
        contra_revenue_micros=amounts.contra_revenue_micros,
        created_at=posted.posted_at,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        actor=request.actor,
        action="purchase.refunded",
        subject=f"purchase:{purchase.id}",
        reason=reason,
        details={"refund_id": row.id, "entry_id": posted.id, "coins": amounts.coins},
    )
    return row
