"""What each flow posts, as plain functions from facts to a balanced entry (DESIGN.md, Flows)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.money import minor_to_micros


@dataclass(frozen=True, slots=True)
class PayoutAmounts:
    """What a payout of some diamonds pays and redeems (see :func:`payout_amounts`)."""

    diamonds: int
    """The diamonds the cash pays for: at most those requested."""
    amount_minor: int
    """The cash paid, in whole minor units (cents)."""
    amount_micros: int


def payout_amounts(
    diamonds_requested: int, *, payable_micros: int, diamonds_held: int, currency: str
) -> PayoutAmounts:
    """A payout of ``diamonds_requested`` from a creator owed ``payable_micros`` for the
    ``diamonds_held`` diamonds they hold in every state.

    The requested diamonds are worth ``payable × requested / held`` at the creator's weighted
    average. The cash paid is that value floored to a whole minor unit; the diamonds redeemed
    are the fewest whose value covers the cash (``⌈cash × held / payable⌉``), so never more
    than requested. The payable released is exactly the cash paid: whatever value the
    redeemed diamonds hold above it stays owed to the creator, on the diamonds they keep.
    """
    if not 0 < diamonds_requested <= diamonds_held:
        raise ValueError(f"cannot pay out {diamonds_requested} of {diamonds_held} diamonds")
    if payable_micros <= 0:
        return PayoutAmounts(0, 0, 0)
    step = minor_to_micros(1, currency)
    amount_minor = (payable_micros * diamonds_requested) // (diamonds_held * step)
    amount_micros = amount_minor * step
    diamonds = -((-amount_micros * diamonds_held) // payable_micros)  # ceiling division
    assert diamonds <= diamonds_requested
    return PayoutAmounts(diamonds, amount_minor, amount_micros)


class PayoutPhase(StrEnum):
    REQUESTED = "requested"
    REJECTED = "rejected"
    SENT = "sent"
    PAID = "paid"
    FAILED = "failed"
    RETURNED = "returned"
    """Paid, then the bank sent the cash back (a bounce days later)."""


@dataclass(frozen=True, slots=True)
class PayoutFacts:
    payout_id: int
    creator_id: str
    diamonds: int
    amount_micros: int
    currency: str
    """The functional currency: payouts are paid in it, from the creator's payable."""


def payout_entry(facts: PayoutFacts, phase: PayoutPhase, *, actor: str, memo: str = "") -> Entry:
    """The entry of one payout phase (DESIGN.md, Payout), keyed ``payout:<id>:<phase>``.

    requested: the diamonds move available -> reserved. rejected (before sending): reserved ->
    available. sent: reserved -> ``diamonds:redeemed``, and the cash from the creator's payable
    to ``payouts_in_transit``. paid: in transit -> bank. failed (after sending): the sent entry
    undone, except that the diamonds go back to available. returned (after paid): the cash back
    into the bank, the creator owed it again on their payable, and the diamonds available again:
    the sent and paid entries undone together, the diamonds to available."""
    diamonds = facts.diamonds
    cash = facts.amount_micros
    available = chart.creator_diamonds(facts.creator_id, "available")
    reserved = chart.creator_diamonds(facts.creator_id, "reserved")
    payable = chart.creator_payable(facts.creator_id, facts.currency)
    in_transit = chart.payouts_in_transit(facts.currency)
    postings: tuple[Posting, ...]
    if phase is PayoutPhase.REQUESTED:
        postings = (Posting(available, diamonds), Posting(reserved, -diamonds))
    elif phase is PayoutPhase.REJECTED:
        postings = (Posting(reserved, diamonds), Posting(available, -diamonds))
    elif phase is PayoutPhase.SENT:
        postings = (
            Posting(reserved, diamonds),
            Posting(chart.diamonds_redeemed(), -diamonds),
            Posting(payable, cash),
            Posting(in_transit, -cash),
        )
    elif phase is PayoutPhase.PAID:
        postings = (Posting(in_transit, cash), Posting(chart.bank(facts.currency), -cash))
    else:
        cash_from = in_transit if phase is PayoutPhase.FAILED else chart.bank(facts.currency)
        postings = (
            Posting(chart.diamonds_redeemed(), diamonds),
            Posting(available, -diamonds),
            Posting(cash_from, cash),
            Posting(payable, -cash),
        )
    return Entry(
        kind=EntryKind.PAYOUT,
        event_key=f"payout:{facts.payout_id}:{phase}",
        postings=postings,
        actor=actor,
        refs={"payout_id": facts.payout_id, "creator_id": facts.creator_id, "phase": str(phase)},
        memo=memo or f"payout {facts.payout_id} {phase}: {diamonds} diamonds",
    )
