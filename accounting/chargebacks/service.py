"""Chargebacks: a purchase taken back by its provider (a card dispute, an Apple refund, a Google
void, a refund made at the provider), DESIGN.md: Chargeback.

The purchase's coins the buyer still holds are clawed back. The coins already spent are traced
to what they bought: the buyer's gifts and unlocks from the purchase on, earliest first,
skipping coins that standing chargebacks already traced (the coins a purchase brings are the
ones spent next; a balance held from before it is not spent first, so a thief cannot shield a
stolen purchase behind an old balance). Each traced piece is recorded (``chargeback_trace``).
Of those gifts, the diamonds still pending at their creators are clawed back with their
payable; diamonds already available stay, and what they cost is the loss, booked to the buyer's
receivable or to fraud losses by policy. The buyer's account is frozen until support lifts it.
A dispute the platform wins undoes the chargeback; a dispute fee is an expense either way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.chargebacks.rules import (
    ChargebackFacts,
    CreatorClawback,
    LossPolicy,
    chargeback_amounts,
    chargeback_entry,
    chargeback_won_entry,
    dispute_fee_entry,
)
from accounting.chargebacks.tables import ChargebackClawbackRow, ChargebackRow, ChargebackTraceRow
from accounting.gifts.reads import lock_gifts
from accounting.ledger import chart
from accounting.ledger.money import minor_to_micros
from accounting.ledger.pages import Page, newest_first
from accounting.ledger.posting import entry_postings, find_entry, lock_accounts, post_entry
from accounting.policy import standing
from accounting.purchases.reads import Purchase, purchase_of, value_paid
from accounting.refunds.reads import refund_of


class ChargebackKind(StrEnum):
    DISPUTE = "dispute"
    """A card dispute: open until the provider says won or lost."""
    APP_STORE_REFUND = "app_store_refund"
    VOIDED = "voided"
    PROVIDER_REFUND = "provider_refund"
    """A refund made at the provider (its dashboard), not through us."""


class Outcome(StrEnum):
    """What a provider event did to the books."""

    CHARGED_BACK = "charged_back"
    ALREADY_CHARGED_BACK = "already_charged_back"
    ALREADY_REFUNDED = "already_refunded"
    """The provider reports a refund we made: nothing more to post."""
    NOT_COMPLETED = "not_completed"
    """The purchase never granted coins: nothing to take back."""
    AMOUNT_MISMATCH = "amount_mismatch"
    """The provider takes back another amount than the purchase's price: left for finance."""
    UNKNOWN_PURCHASE = "unknown_purchase"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"
    ALREADY_RESOLVED = "already_resolved"
    NO_OPEN_DISPUTE = "no_open_dispute"
    IGNORED = "ignored"
    """An event type that moves no money here."""
    REFUSED = "refused"
    """The event was read but a rule refused what it asked (the detail says which)."""


@dataclass(frozen=True, slots=True)
class ChargebackClaim:
    """A provider taking a purchase's money back."""

    purchase_id: int
    kind: ChargebackKind
    case_id: str
    """The provider's name for the case: the dispute id, else the event id."""
    reason: str
    actor: str
    """``provider:<name>``, or the finance person who entered it."""
    amount_minor: int | None = None
    currency: str | None = None
    fee_minor: int = 0


@dataclass(frozen=True, slots=True)
class ChargebackResult:
    outcome: Outcome
    chargeback: ChargebackRow | None
    detail: str


_SPENDING = text(
    """
    SELECT 'gift' AS what, g.id, g.created_at, g.coins, g.release_entry_id IS NOT NULL AS released,
           coalesce((SELECT sum(t.coins) FROM chargeback_trace t
                       JOIN chargeback b ON b.id = t.chargeback_id
                      WHERE t.spending = 'gift' AND t.spending_id = g.id
                        AND b.status <> 'won'), 0) AS traced
      FROM gift g
     WHERE g.sender_id = :user_id AND g.created_at >= :since
    UNION ALL
    SELECT 'unlock', u.id, u.created_at, u.coins, true,
           coalesce((SELECT sum(t.coins) FROM chargeback_trace t
                       JOIN chargeback b ON b.id = t.chargeback_id
                      WHERE t.spending = 'unlock' AND t.spending_id = u.id
                        AND b.status <> 'won'), 0)
      FROM feature_unlock u
     WHERE u.user_id = :user_id AND u.created_at >= :since
     ORDER BY created_at, id"""
)


@dataclass(frozen=True, slots=True)
class _Trace:
    """Spent coins traced to one gift or unlock; for a gift still in its hold, the diamonds and
    payable that come back with them."""

    spending: str
    spending_id: int
    coins: int
    creator_id: str | None = None
    diamonds: int = 0
    payable_micros: int = 0

    @property
    def clawed(self) -> bool:
        return self.creator_id is not None


def _share(total: int, traced_before: int, taken: int, coins: int) -> int:
    """The part of ``total`` that ``taken`` of a gift's ``coins`` paid for, after
    ``traced_before`` of them: floored on the running total, so a gift traced in pieces gives
    back exactly ``total`` once every coin is traced."""
    return total * (traced_before + taken) // coins - total * traced_before // coins


async def _trace_spending(
    session: AsyncSession, purchase: Purchase, posted_at: object, coins_spent: int
) -> list[_Trace]:
    """The purchase's ``coins_spent`` spent coins, traced to what they bought: the buyer's
    gifts and unlocks from the purchase on, earliest first, skipping coins that standing
    chargebacks already traced. The gifts still in their hold are locked, so no hold release
    moves their diamonds meanwhile (the buyer's wallet is locked already, so no other
    chargeback of theirs traces meanwhile)."""
    left = coins_spent
    pieces: list[tuple[str, int, int, int, bool]] = []
    rows = (
        await session.execute(_SPENDING, {"user_id": purchase.user_id, "since": posted_at})
    ).mappings()
    for row in rows:
        if left <= 0:
            break
        traced = int(row["traced"])
        taken = min(left, int(row["coins"]) - traced)
        if taken <= 0:
            continue
        left -= taken
        pieces.append((str(row["what"]), int(row["id"]), taken, traced, bool(row["released"])))
    held_ids = [id_ for what, id_, _, _, released in pieces if what == "gift" and not released]
    locked = await lock_gifts(session, held_ids)
    traces: list[_Trace] = []
    for what, id_, taken, traced, _ in pieces:
        gift = locked.get(id_) if what == "gift" else None
        if gift is None or gift.release_entry_id is not None:  # nothing (more) to claw back
            traces.append(_Trace(what, id_, taken))
            continue
        traces.append(
            _Trace(
                what,
                id_,
                taken,
                creator_id=gift.creator_id,
                diamonds=_share(gift.diamonds, traced, taken, gift.coins),
                payable_micros=_share(gift.payable_micros, traced, taken, gift.coins),
            )
        )
    return traces


async def charge_back(
    session: AsyncSession,
    claim: ChargebackClaim,
    *,
    functional_currency: str,
    loss_policy: LossPolicy,
) -> ChargebackResult:
    """Post a chargeback of ``claim.purchase_id`` inside the caller's transaction, once: the
    purchase is locked first (a refund of it, or a second chargeback, queues and then finds
    this one), then the buyer's wallet, then the gifts traced to it."""
    purchase = await purchase_of(session, claim.purchase_id, lock=True)
    await _book_fee(session, claim, purchase)
    if purchase.status != "completed" or purchase.entry_id is None:
        return ChargebackResult(
            Outcome.NOT_COMPLETED, None, f"Purchase {purchase.id} is {purchase.status}"
        )
    existing = await session.scalar(
        select(ChargebackRow).where(ChargebackRow.purchase_id == purchase.id)
    )
    if existing is not None:
        return ChargebackResult(
            Outcome.ALREADY_CHARGED_BACK,
            existing,
            f"Purchase {purchase.id} was charged back ({existing.kind} {existing.case_id})",
        )
    refund = await refund_of(session, purchase.id)
    if refund is not None:
        return ChargebackResult(
            Outcome.ALREADY_REFUNDED, None, f"Purchase {purchase.id} was refunded ({refund.id})"
        )
    if claim.amount_minor is not None and (
        claim.amount_minor != purchase.price_minor
        or (claim.currency or purchase.currency).upper() != purchase.currency
    ):
        return ChargebackResult(
            Outcome.AMOUNT_MISMATCH,
            None,
            f"The provider takes back {claim.amount_minor} {claim.currency}; purchase "
            f"{purchase.id} was {purchase.price_minor} {purchase.currency}",
        )

    accounts = await lock_accounts(
        session,
        (
            chart.user_coins(purchase.user_id),
            chart.user_coins_value(purchase.user_id, functional_currency),
        ),
    )
    wallet_coins = accounts[chart.user_coins(purchase.user_id).code].normal_balance
    wallet_value = accounts[
        chart.user_coins_value(purchase.user_id, functional_currency).code
    ].normal_balance
    coins = purchase.coins + purchase.bonus_coins
    paid = await value_paid(session, purchase, functional_currency)
    spent = coins - min(coins, wallet_coins)
    purchase_entry_at = await session.scalar(
        text("SELECT posted_at FROM journal_entry WHERE id = :id"), {"id": purchase.entry_id}
    )
    traces = await _trace_spending(session, purchase, purchase_entry_at, spent) if spent else []
    gifts = [trace for trace in traces if trace.creator_id is not None]
    by_creator: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for gift in gifts:
        assert gift.creator_id is not None
        by_creator[gift.creator_id][0] += gift.diamonds
        by_creator[gift.creator_id][1] += gift.payable_micros
    clawbacks = tuple(
        CreatorClawback(creator, diamonds, payable)
        for creator, (diamonds, payable) in sorted(by_creator.items())
    )
    amounts = chargeback_amounts(
        coins=coins,
        value_paid_micros=paid,
        wallet_coins=wallet_coins,
        wallet_value_micros=wallet_value,
        payable_clawed_micros=sum(c.payable_micros for c in clawbacks),
    )
    case = f"{claim.kind} {claim.case_id}" + (f" ({claim.reason})" if claim.reason else "")
    posted = await post_entry(
        session,
        chargeback_entry(
            ChargebackFacts(
                purchase_id=purchase.id,
                user_id=purchase.user_id,
                provider=purchase.provider,
                currency=purchase.currency,
                cash_micros=minor_to_micros(purchase.price_minor, purchase.currency),
                value_paid_micros=paid,
                functional_currency=functional_currency,
                amounts=amounts,
                clawbacks=clawbacks,
                loss_policy=loss_policy,
                case=case,
            ),
            actor=claim.actor,
        ),
    )
    row = ChargebackRow(
        purchase_id=purchase.id,
        user_id=purchase.user_id,
        provider=purchase.provider,
        kind=str(claim.kind),
        case_id=claim.case_id,
        reason=claim.reason[:500],
        entry_id=posted.id,
        currency=purchase.currency,
        cash_minor=purchase.price_minor,
        value_paid_micros=paid,
        coins_clawed=amounts.coins_clawed,
        coins_spent=amounts.coins_spent,
        value_released_micros=amounts.value_released_micros,
        diamonds_clawed=sum(c.diamonds for c in clawbacks),
        payable_clawed_micros=amounts.payable_clawed_micros,
        loss_micros=amounts.loss_micros,
        loss_booked_to=str(loss_policy),
        contra_revenue_micros=amounts.contra_revenue_micros,
        status="open" if claim.kind is ChargebackKind.DISPUTE else "final",
        created_at=posted.posted_at,
    )
    session.add(row)
    await session.flush()
    session.add_all(
        ChargebackTraceRow(
            chargeback_id=row.id,
            spending=trace.spending,
            spending_id=trace.spending_id,
            coins=trace.coins,
        )
        for trace in traces
    )
    await session.flush()
    session.add_all(
        ChargebackClawbackRow(
            chargeback_id=row.id,
            gift_id=gift.spending_id,
            creator_id=gift.creator_id,
            coins=gift.coins,
            diamonds=gift.diamonds,
            payable_micros=gift.payable_micros,
        )
        for gift in gifts
    )
    await session.flush()
    await standing.set_frozen(
        session,
        purchase.user_id,
        frozen=True,
        reason=f"Purchase {purchase.id} charged back: {case}"[:500],
        actor=claim.actor,
    )
    return ChargebackResult(
        Outcome.CHARGED_BACK,
        row,
        f"{amounts.coins_clawed} coins and {row.diamonds_clawed} pending diamonds clawed back;"
        f" {amounts.loss_micros} micro-{functional_currency} booked to {loss_policy}",
    )


async def _book_fee(session: AsyncSession, claim: ChargebackClaim, purchase: Purchase) -> None:
    """A dispute's fee, once per case, whatever becomes of the chargeback itself."""
    if claim.fee_minor <= 0:
        return
    entry = dispute_fee_entry(
        provider=purchase.provider,
        currency=purchase.currency,
        fee_micros=minor_to_micros(claim.fee_minor, purchase.currency),
        case_id=claim.case_id,
        purchase_id=purchase.id,
        actor=claim.actor,
    )
    if await find_entry(session, entry.event_key) is None:
        await post_entry(session, entry)


async def resolve_dispute(
    session: AsyncSession,
    claim: ChargebackClaim,
    *,
    won: bool,
    functional_currency: str,
    loss_policy: LossPolicy,
) -> ChargebackResult:
    """The provider decided a dispute. Lost: the chargeback stands (posted first if its opening
    never reached us). Won: the chargeback is undone, and the buyer's freeze stays until support
    lifts it. Either happens once."""
    purchase = await purchase_of(session, claim.purchase_id, lock=True)
    chargeback = await session.scalar(
        select(ChargebackRow).where(ChargebackRow.purchase_id == purchase.id)
    )
    if chargeback is None and not won:
        opened = await charge_back(
            session, claim, functional_currency=functional_currency, loss_policy=loss_policy
        )
        if opened.chargeback is None or opened.outcome is not Outcome.CHARGED_BACK:
            return opened
        chargeback = opened.chargeback
    else:
        await _book_fee(session, claim, purchase)
    if chargeback is None or chargeback.kind != ChargebackKind.DISPUTE:
        return ChargebackResult(
            Outcome.NO_OPEN_DISPUTE, chargeback, f"Purchase {purchase.id} has no open dispute"
        )
    if chargeback.status != "open":
        return ChargebackResult(
            Outcome.ALREADY_RESOLVED,
            chargeback,
            f"The dispute on purchase {purchase.id} was already {chargeback.status}",
        )
    now = await session.scalar(select(func.clock_timestamp()))
    if not won:
        await session.execute(
            update(ChargebackRow)
            .where(ChargebackRow.id == chargeback.id)
            .values(status="lost", resolved_at=now)
        )
        await session.refresh(chargeback)
        return ChargebackResult(Outcome.DISPUTE_LOST, chargeback, "The chargeback stands")

    clawed = (
        await session.scalars(
            select(ChargebackClawbackRow).where(
                ChargebackClawbackRow.chargeback_id == chargeback.id
            )
        )
    ).all()
    gifts = await lock_gifts(session, [clawback.gift_id for clawback in clawed])
    released: dict[str, int] = defaultdict(int)
    for clawback in clawed:
        if gifts[clawback.gift_id].release_entry_id is not None:
            released[clawback.creator_id] += clawback.diamonds
    posted = await post_entry(
        session,
        chargeback_won_entry(
            purchase.id,
            tuple(await entry_postings(session, chargeback.entry_id)),
            released=dict(released),
            actor=claim.actor,
            memo=f"dispute {claim.case_id} won: chargeback of purchase {purchase.id} undone",
        ),
    )
    await session.execute(
        update(ChargebackRow)
        .where(ChargebackRow.id == chargeback.id)
        .values(status="won", won_entry_id=posted.id, resolved_at=now)
    )
    await session.refresh(chargeback)
    return ChargebackResult(
        Outcome.DISPUTE_WON,
        chargeback,
        f"The chargeback of purchase {purchase.id} is undone; the account stays frozen until "
        "support lifts it",
    )


async def chargebacks_page(
    session: AsyncSession,
    *,
    user_id: str | None = None,
    first: int = 20,
    before_id: int | None = None,
) -> Page[ChargebackRow]:
    """Chargebacks, newest first, of one buyer or of all."""
    conditions = [] if user_id is None else [ChargebackRow.user_id == user_id]
    return await newest_first(session, ChargebackRow, *conditions, first=first, before_id=before_id)


async def clawbacks_of(
    session: AsyncSession, chargeback_ids: list[int]
) -> dict[int, list[ChargebackClawbackRow]]:
    """Each chargeback's clawbacks, gift by gift."""
    found: dict[int, list[ChargebackClawbackRow]] = {id_: [] for id_ in chargeback_ids}
    rows = await session.scalars(
        select(ChargebackClawbackRow)
        .where(ChargebackClawbackRow.chargeback_id.in_(chargeback_ids))
        .order_by(ChargebackClawbackRow.chargeback_id, ChargebackClawbackRow.gift_id)
    )
    for row in rows:
        found[row.chargeback_id].append(row)
    return found
