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
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.chargebacks.errors import ChargebackExceedsPurchase
from accounting.chargebacks.rules import (
    ChargebackAmounts,
    ChargebackFacts,
    CreatorClawback,
    LossPolicy,
    cash_text,
    chargeback_accounts,
    chargeback_amounts,
    chargeback_entry,
    chargeback_won_entry,
    dispute_fee_entry,
    partial_share,
)
from accounting.chargebacks.tables import ChargebackClawbackRow, ChargebackRow, ChargebackTraceRow
from accounting.chargebacks.tracing import (
    Trace,
    clawbacks_by_creator,
    creators_of,
    lock_gifts_in_hold,
    trace_spent_coins,
)
from accounting.gifts.reads import Gift, lock_gifts
from accounting.ledger import chart
from accounting.ledger.money import format_micros, minor_to_micros
from accounting.ledger.pages import Page, newest_first
from accounting.ledger.posting import (
    PostedEntry,
    entry_postings,
    find_entry,
    lock_accounts,
    post_entry,
)
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
    """The provider takes the purchase back in another currency than it was paid in: left for
    finance. (An amount below the price is a partial takeback; above it, refused.)"""
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
    """What the provider takes back, in minor units of ``currency``: at most what is left of
    the price, less makes a partial takeback of the proportional coins; ``None`` is all that
    is left of it."""
    currency: str | None = None
    fee_minor: int = 0
    cumulative: bool = False
    """``amount_minor`` is what the provider has refunded of the charge so far, this refund
    included (a processor's ``amount_refunded``): this one takes what it adds."""


@dataclass(frozen=True, slots=True)
class ChargebackResult:
    outcome: Outcome
    chargeback: ChargebackRow | None
    detail: str


@dataclass(frozen=True, slots=True)
class _Takeback:
    """What a chargeback of one purchase takes back, worked out under the buyer's wallet lock."""

    amount_minor: int
    """What the provider takes back, in the purchase's minor units (the price, or less)."""
    value_paid_micros: int
    """The share taken back of what the purchase put on the wallet (read from its own entry):
    all of it for the whole price."""
    receivable_restored_micros: int
    """The share taken back of what the purchase repaid of the buyer's receivable."""
    amounts: ChargebackAmounts
    traces: list[Trace]
    """Its spent coins, traced to the gifts and unlocks they bought."""
    clawbacks: tuple[CreatorClawback, ...]
    """Per creator, the pending diamonds and payable of the traced gifts still in their hold."""

    @property
    def gifts(self) -> list[Trace]:
        """The traced gifts still in their hold: their diamonds and payable come back."""
        return [trace for trace in self.traces if trace.clawed]


async def charge_back(
    session: AsyncSession,
    claim: ChargebackClaim,
    *,
    functional_currency: str,
    loss_policy: LossPolicy,
) -> ChargebackResult:
    """Post a chargeback of ``claim.purchase_id`` inside the caller's transaction, once: the
    purchase is locked first (a refund of it, or a second chargeback, queues and then finds
    this one), then the buyer's gifts in their hold since the purchase (in id order, in one
    statement: those a trace may claw back from), then every account it may post to, in one
    statement (the buyer's wallet, the platform's, and those of the creators of those gifts:
    accounting/ledger/locks.py); docs/accounting.md, "Lock order"."""
    purchase = await purchase_of(session, claim.purchase_id, lock=True)
    held = await lock_gifts_in_hold(session, purchase)
    await lock_accounts(
        session,
        chargeback_accounts(
            purchase.user_id,
            purchase.provider,
            purchase.currency,
            functional_currency,
            creators=creators_of(held),
            loss_policy=loss_policy,
            receivable_repaid=purchase.receivable_repaid_micros > 0,
        ),
        open_missing=False,
    )
    await _book_fee(session, claim, purchase)
    earlier = await _chargebacks_of(session, purchase.id)
    amount_minor = await _what_it_takes(session, claim, purchase, earlier)
    if isinstance(amount_minor, ChargebackResult):
        return amount_minor
    takeback = await _what_it_takes_back(
        session,
        purchase,
        taken_before_minor=sum(c.cash_minor for c in earlier),
        amount_minor=amount_minor,
        functional_currency=functional_currency,
        held=held,
    )
    case = f"{claim.kind} {claim.case_id}" + (f" ({claim.reason})" if claim.reason else "")
    facts = ChargebackFacts(
        purchase_id=purchase.id,
        user_id=purchase.user_id,
        provider=purchase.provider,
        currency=purchase.currency,
        cash_micros=minor_to_micros(takeback.amount_minor, purchase.currency),
        value_paid_micros=takeback.value_paid_micros,
        receivable_restored_micros=takeback.receivable_restored_micros,
        functional_currency=functional_currency,
        amounts=takeback.amounts,
        clawbacks=takeback.clawbacks,
        loss_policy=loss_policy,
        case=case,
        sequence=len(earlier) + 1,
    )
    posted = await post_entry(session, chargeback_entry(facts, actor=claim.actor))
    row = await _record(
        session, _chargeback_row(claim, purchase, takeback.amount_minor, facts, posted), takeback
    )
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
        f"{cash_text(takeback.amount_minor, purchase.currency)} taken back: "
        f"{takeback.amounts.coins_clawed} coins and {row.diamonds_clawed} pending diamonds "
        f"clawed back; {format_micros(takeback.amounts.loss_micros, functional_currency)} "
        f"{functional_currency} booked to {loss_policy}",
    )


async def _chargebacks_of(session: AsyncSession, purchase_id: int) -> list[ChargebackRow]:
    """The purchase's chargebacks so far, first first (its pieces, if taken back in parts)."""
    rows = await session.scalars(
        select(ChargebackRow)
        .where(ChargebackRow.purchase_id == purchase_id)
        .order_by(ChargebackRow.id)
    )
    return list(rows)


async def _what_it_takes(
    session: AsyncSession, claim: ChargebackClaim, purchase: Purchase, earlier: list[ChargebackRow]
) -> int | ChargebackResult:
    """How much of the price of the purchase (locked) the claim takes back, in its minor
    units, or why it takes nothing: the purchase never granted coins, the claim repeats an
    earlier chargeback (``_repeated``), the purchase was refunded, or the provider takes it
    back in another currency. More than is left of the price is refused
    (``ChargebackExceedsPurchase``)."""
    if purchase.status != "completed" or purchase.entry_id is None:
        return ChargebackResult(
            Outcome.NOT_COMPLETED, None, f"Purchase {purchase.id} is {purchase.status}"
        )
    repeated = _repeated(claim, purchase, earlier)
    if repeated is not None:
        return ChargebackResult(
            Outcome.ALREADY_CHARGED_BACK,
            repeated,
            f"Purchase {purchase.id} was charged back ({repeated.kind} {repeated.case_id})",
        )
    refund = await refund_of(session, purchase.id)
    if refund is not None:
        return ChargebackResult(
            Outcome.ALREADY_REFUNDED, None, f"Purchase {purchase.id} was refunded ({refund.id})"
        )
    left = purchase.price_minor - sum(c.cash_minor for c in earlier)
    if claim.amount_minor is None:
        return left
    if (claim.currency or purchase.currency).upper() != purchase.currency:
        return ChargebackResult(
            Outcome.AMOUNT_MISMATCH,
            None,
            f"The provider takes back {cash_text(claim.amount_minor, claim.currency)}; "
            f"purchase {purchase.id} was {cash_text(purchase.price_minor, purchase.currency)}",
        )
    amount = claim.amount_minor - (_refunded_before(earlier) if claim.cumulative else 0)
    if not 0 < amount <= left:
        raise ChargebackExceedsPurchase(
            f"The provider takes back {cash_text(amount, purchase.currency)} of purchase "
            f"{purchase.id}: {cash_text(left, purchase.currency)} of its price of "
            f"{cash_text(purchase.price_minor, purchase.currency)} is left",
            field="amount",
            purchase_id=purchase.id,
            amount_minor=amount,
            left_minor=left,
        )
    return amount


def _refunded_before(earlier: list[ChargebackRow]) -> int:
    """What the provider refunded of the purchase before, in its minor units."""
    return sum(c.cash_minor for c in earlier if c.kind == ChargebackKind.PROVIDER_REFUND)


def _repeated(
    claim: ChargebackClaim, purchase: Purchase, earlier: list[ChargebackRow]
) -> ChargebackRow | None:
    """The earlier chargeback of the purchase that the claim repeats, if it does: one of the
    same case; the dispute, for a dispute (a charge is disputed once); the latest, for a
    refund that adds nothing to the refunds before it, or once nothing is left of the price
    (a dispute won does not give its part back: the provider decided that case)."""
    for chargeback in reversed(earlier):
        if (chargeback.kind, chargeback.case_id) == (claim.kind, claim.case_id) or (
            chargeback.kind == claim.kind == ChargebackKind.DISPUTE
        ):
            return chargeback
    if not earlier:
        return None
    nothing_new = (
        claim.cumulative
        and claim.amount_minor is not None
        and claim.amount_minor <= _refunded_before(earlier)
    )
    nothing_left = sum(c.cash_minor for c in earlier) >= purchase.price_minor
    return earlier[-1] if nothing_new or nothing_left else None


async def _what_it_takes_back(
    session: AsyncSession,
    purchase: Purchase,
    *,
    taken_before_minor: int,
    amount_minor: int,
    functional_currency: str,
    held: dict[int, Gift],
) -> _Takeback:
    """Lock the buyer's wallet and read it. The provider takes back ``amount_minor`` of the
    price, after earlier pieces took ``taken_before_minor``: the same share of the purchase's
    coins and of the value it paid comes back (``partial_share``: all of them for the whole
    price). Of those coins, as many as the wallet holds come back from it; the rest were spent
    and are traced to what they bought (``held``: the buyer's gifts in their hold, locked)."""
    coins_account = chart.user_coins(purchase.user_id)
    value_account = chart.user_coins_value(purchase.user_id, functional_currency)
    accounts = await lock_accounts(session, (coins_account, value_account))
    wallet_coins = accounts[coins_account.code].normal_balance
    wallet_value = accounts[value_account.code].normal_balance
    share = {"whole": purchase.price_minor, "before": taken_before_minor, "part": amount_minor}
    coins = partial_share(purchase.coins + purchase.bonus_coins - purchase.coins_withheld, **share)
    wallet_paid = await value_paid(session, purchase, functional_currency)
    paid = partial_share(wallet_paid, **share)
    # The repayment's share is what the price's share is worth beyond the wallet's share: the
    # pieces of a purchase add up to exactly what it repaid.
    restored = partial_share(wallet_paid + purchase.receivable_repaid_micros, **share) - paid
    traces = await trace_spent_coins(session, purchase, coins - min(coins, wallet_coins), held)
    clawbacks = clawbacks_by_creator([trace for trace in traces if trace.clawed])
    amounts = chargeback_amounts(
        coins=coins,
        value_paid_micros=paid,
        wallet_coins=wallet_coins,
        wallet_value_micros=wallet_value,
        payable_clawed_micros=sum(c.payable_micros for c in clawbacks),
    )
    return _Takeback(amount_minor, paid, restored, amounts, traces, clawbacks)


def _chargeback_row(
    claim: ChargebackClaim,
    purchase: Purchase,
    amount_minor: int,
    facts: ChargebackFacts,
    posted: PostedEntry,
) -> ChargebackRow:
    amounts = facts.amounts
    return ChargebackRow(
        purchase_id=purchase.id,
        user_id=purchase.user_id,
        provider=purchase.provider,
        kind=str(claim.kind),
        case_id=claim.case_id,
        reason=claim.reason[:500],
        entry_id=posted.id,
        currency=purchase.currency,
        cash_minor=amount_minor,
        value_paid_micros=facts.value_paid_micros,
        coins_clawed=amounts.coins_clawed,
        coins_spent=amounts.coins_spent,
        value_released_micros=amounts.value_released_micros,
        diamonds_clawed=sum(c.diamonds for c in facts.clawbacks),
        payable_clawed_micros=amounts.payable_clawed_micros,
        loss_micros=amounts.loss_micros,
        loss_booked_to=str(facts.loss_policy),
        contra_revenue_micros=amounts.contra_revenue_micros,
        status="open" if claim.kind is ChargebackKind.DISPUTE else "final",
        created_at=posted.posted_at,
    )


async def _record(session: AsyncSession, row: ChargebackRow, takeback: _Takeback) -> ChargebackRow:
    """The chargeback's row, then a trace row per gift or unlock its spent coins bought, then a
    clawback row per traced gift still in its hold."""
    session.add(row)
    await session.flush()
    session.add_all(
        ChargebackTraceRow(
            chargeback_id=row.id,
            spending=trace.spending,
            spending_id=trace.spending_id,
            coins=trace.coins,
        )
        for trace in takeback.traces
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
        for gift in takeback.gifts
    )
    await session.flush()
    return row


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
    gifts = await _lock_for_undoing(session, purchase, functional_currency) if won else {}
    dispute = await _open_dispute(
        session,
        claim,
        purchase,
        won=won,
        functional_currency=functional_currency,
        loss_policy=loss_policy,
    )
    if isinstance(dispute, ChargebackResult):
        return dispute
    now = await session.scalar(select(func.clock_timestamp()))
    if not won:
        await _resolve(session, dispute, status="lost", resolved_at=now)
        return ChargebackResult(Outcome.DISPUTE_LOST, dispute, "The chargeback stands")
    undone = await _undo_chargeback(session, claim, purchase, dispute, gifts)
    await _resolve(session, dispute, status="won", won_entry_id=undone.id, resolved_at=now)
    return ChargebackResult(
        Outcome.DISPUTE_WON,
        dispute,
        f"The chargeback of purchase {purchase.id} is undone; the account stays frozen until "
        "support lifts it",
    )


async def _lock_for_undoing(
    session: AsyncSession, purchase: Purchase, functional_currency: str
) -> dict[int, Gift]:
    """Lock what a dispute won may change, non-account rows before accounts (docs/accounting.md,
    "Lock order"; a hold release locks a gift, then its creator's diamonds): the gifts the
    purchase's chargebacks clawed back from, in id order, in one statement, returned by id;
    then every account it may post to, in one statement: its fee's, and those of the
    purchase's chargebacks with their clawed-back creators' available diamonds (what undoing
    one posts to)."""
    chargebacks = await _chargebacks_of(session, purchase.id)
    accounts = [
        chart.dispute_fees(purchase.currency),
        chart.provider_clearing(purchase.provider, purchase.currency),
    ]
    clawed = await clawbacks_of(session, [chargeback.id for chargeback in chargebacks])
    gifts = await lock_gifts(session, [c.gift_id for found in clawed.values() for c in found])
    for chargeback in chargebacks:
        accounts += [p.account for p in await entry_postings(session, chargeback.entry_id)]
        accounts += [
            chart.creator_diamonds(clawback.creator_id, state)
            for clawback in clawed[chargeback.id]
            for state in ("pending", "available")
        ]
    if chargebacks:
        await lock_accounts(session, accounts, open_missing=False)
    return gifts


async def _open_dispute(
    session: AsyncSession,
    claim: ChargebackClaim,
    purchase: Purchase,
    *,
    won: bool,
    functional_currency: str,
    loss_policy: LossPolicy,
) -> ChargebackRow | ChargebackResult:
    """The purchase's (locked) open dispute, or why there is none to resolve. A dispute lost
    whose opening never reached us is charged back first; otherwise the dispute's fee is
    booked here (once per case)."""
    chargeback = await session.scalar(  # its dispute, else its latest piece
        select(ChargebackRow)
        .where(ChargebackRow.purchase_id == purchase.id)
        .order_by((ChargebackRow.kind == ChargebackKind.DISPUTE).desc(), ChargebackRow.id.desc())
        .limit(1)
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
    return chargeback


async def _undo_chargeback(
    session: AsyncSession,
    claim: ChargebackClaim,
    purchase: Purchase,
    chargeback: ChargebackRow,
    gifts: dict[int, Gift],
) -> PostedEntry:
    """Post the entry that undoes the chargeback: the diamonds of its clawed-back gifts
    (``gifts``, locked by ``_lock_for_undoing``) that have left their hold since go back to
    available."""
    clawed = (
        await session.scalars(
            select(ChargebackClawbackRow).where(
                ChargebackClawbackRow.chargeback_id == chargeback.id
            )
        )
    ).all()
    released: dict[str, int] = defaultdict(int)
    for clawback in clawed:
        if gifts[clawback.gift_id].release_entry_id is not None:
            released[clawback.creator_id] += clawback.diamonds
    return await post_entry(
        session,
        chargeback_won_entry(
            purchase.id,
            tuple(await entry_postings(session, chargeback.entry_id)),
            released=dict(released),
            actor=claim.actor,
            memo=f"dispute {claim.case_id} won: chargeback of purchase {purchase.id} undone",
        ),
    )


async def _resolve(
    session: AsyncSession,
    chargeback: ChargebackRow,
    *,
    status: str,
    resolved_at: datetime | None,
    won_entry_id: int | None = None,
) -> None:
    """The dispute's status and time (and a won one's undoing entry), changed once."""
    resolution: dict[str, object] = {"status": status, "resolved_at": resolved_at}
    if won_entry_id is not None:
        resolution["won_entry_id"] = won_entry_id
    await session.execute(
        update(ChargebackRow).where(ChargebackRow.id == chargeback.id).values(resolution)
    )
    await session.refresh(chargeback)


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
