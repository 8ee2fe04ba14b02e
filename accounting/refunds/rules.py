"""What each flow posts, as plain functions from facts to a balanced entry (DESIGN.md, Flows)."""

from __future__ import annotations

from dataclasses import dataclass

from accounting.ledger import chart
from accounting.ledger.chart import AccountSpec
from accounting.ledger.entries import Entry, EntryKind, Posting


@dataclass(frozen=True, slots=True)
class RefundFacts:
    purchase_id: int
    user_id: str
    provider: str
    currency: str
    coins: int
    """The purchase's coins, bonus included, taken back from the wallet."""
    cash_micros: int
    """The price, back to the provider, in the purchase's currency."""
    value_paid_micros: int
    """What the purchase put into the wallet's deferred value (functional currency)."""
    value_released_micros: int
    """The wallet's weighted-average value for the coins, released from deferred value."""
    functional_currency: str
    receivable_restored_micros: int = 0
    """What the purchase repaid of the buyer's receivable, owed again now its cash goes back."""


def refund_accounts(
    user_id: str, provider: str, currency: str, functional_currency: str, *, receivable: bool
) -> list[AccountSpec]:
    """Every account a refund of a purchase by ``user_id`` may post to, its wallet first (the
    refund reads it); the buyer's receivable only if the purchase repaid some of it."""
    accounts = [
        chart.user_coins(user_id),
        chart.user_coins_value(user_id, functional_currency),
        chart.coins_issued(),
        chart.provider_clearing(provider, currency),
        chart.refunds_contra_revenue(functional_currency),
    ]
    if currency != functional_currency:
        accounts += [chart.fx_trading(currency), chart.fx_trading(functional_currency)]
    if receivable:
        accounts.append(chart.user_receivable(user_id, functional_currency))
    return accounts


def refund_entry(facts: RefundFacts, *, actor: str, reason: str) -> Entry:
    """Refund: the purchase's coins back from the wallet; the wallet's weighted-average value
    for them released; the cash back to the provider (through the FX trading accounts, at the
    purchase's own rate, for another currency); what was paid beyond the value released is
    contra revenue (negative when the wallet's average is above what the purchase cost). What
    the purchase repaid of the buyer's receivable is owed again."""
    functional = facts.functional_currency
    restored = facts.receivable_restored_micros
    postings = [
        Posting(chart.user_coins(facts.user_id), facts.coins),
        Posting(chart.coins_issued(), -facts.coins),
        Posting(chart.provider_clearing(facts.provider, facts.currency), -facts.cash_micros),
    ]
    if facts.currency != functional:
        postings += [
            Posting(chart.fx_trading(facts.currency), facts.cash_micros),
            Posting(chart.fx_trading(functional), -facts.value_paid_micros - restored),
        ]
    if restored:
        postings.append(Posting(chart.user_receivable(facts.user_id, functional), restored))
    if facts.value_released_micros:
        postings.append(
            Posting(chart.user_coins_value(facts.user_id, functional), facts.value_released_micros)
        )
    contra = facts.value_paid_micros - facts.value_released_micros
    if contra:
        postings.append(Posting(chart.refunds_contra_revenue(functional), contra))
    return Entry(
        kind=EntryKind.REFUND,
        event_key=f"refund:{facts.purchase_id}",
        postings=tuple(p for p in postings if p.amount),
        actor=actor,
        rates={
            "weighted_average": f"{facts.value_released_micros} micro-{functional} "
            f"for {facts.coins} coins"
        },
        refs={"purchase_id": facts.purchase_id, "user_id": facts.user_id},
        memo=reason,
    )
