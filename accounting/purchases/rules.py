"""What a purchase posts (DESIGN.md, Flows), as plain functions from facts to a balanced entry."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.money import format_micros, minor_to_micros, mul_rate


@dataclass(frozen=True, slots=True)
class PurchaseFacts:
    purchase_id: int
    user_id: str
    coins: int
    bonus_coins: int
    provider: str
    currency: str
    price_minor: int
    fee_minor: int
    functional_currency: str
    fx_rate: Decimal | None
    """Units of functional currency per unit of ``currency``; ``None`` when they are the same."""
    provider_reference: str
    package_code: str | None
    receivable_repaid_micros: int = 0
    """What of the value paid repays the buyer's receivable first (purchases/repayment.py)."""
    coins_withheld: int = 0
    """Coins not granted for what was repaid: ``N − ⌊N × (V − repaid) / V⌋``."""

    @property
    def coins_granted(self) -> int:
        return self.coins + self.bonus_coins - self.coins_withheld


def purchase_value_micros(facts: PurchaseFacts) -> int:
    """What the user paid, in the functional currency: the deferred value of the coins."""
    price_micros = minor_to_micros(facts.price_minor, facts.currency)
    if facts.currency == facts.functional_currency:
        return price_micros
    if facts.fx_rate is None:
        raise ValueError("a purchase in another currency needs an FX rate")
    return mul_rate(price_micros, facts.fx_rate)


def purchase_entry(facts: PurchaseFacts, actor: str) -> Entry:
    """Purchase: coins issued to the user; cash owed by the provider, less its fee; the value
    paid deferred on the user's wallet (through the FX trading accounts for other currencies),
    except what repays the user's receivable first, for which fewer coins are granted."""
    total_coins = facts.coins + facts.bonus_coins
    granted = facts.coins_granted
    repaid = facts.receivable_repaid_micros
    price_micros = minor_to_micros(facts.price_minor, facts.currency)
    fee_micros = minor_to_micros(facts.fee_minor, facts.currency)
    value_micros = purchase_value_micros(facts)
    functional = facts.functional_currency
    clearing = chart.provider_clearing(facts.provider, facts.currency)

    postings = [
        Posting(chart.coins_issued(), granted),
        Posting(chart.user_coins(facts.user_id), -granted),
        Posting(clearing, price_micros),
    ]
    rates: dict[str, str] = {}
    if facts.currency != functional:
        assert facts.fx_rate is not None
        rates["fx"] = f"{facts.currency}/{functional}={facts.fx_rate}"
        postings += [
            Posting(chart.fx_trading(facts.currency), -price_micros),
            Posting(chart.fx_trading(functional), value_micros),
        ]
    postings += [
        Posting(chart.user_coins_value(facts.user_id, functional), repaid - value_micros),
        Posting(chart.user_receivable(facts.user_id, functional), -repaid),
    ]
    if fee_micros:
        postings += [
            Posting(chart.fee_expense(facts.provider, facts.currency), fee_micros),
            Posting(clearing, -fee_micros),
        ]
    rates["price"] = f"{facts.price_minor} minor units of {facts.currency} for {total_coins} coins"
    refs = {
        "purchase_id": facts.purchase_id,
        "user_id": facts.user_id,
        "provider": facts.provider,
        "provider_reference": facts.provider_reference,
        "package": facts.package_code,
    }
    memo = f"{granted} coins bought through {facts.provider}"
    if repaid:
        rates["repaid"] = (
            f"{repaid} micro-{functional} of {value_micros} repaid: "
            f"{granted} of {total_coins} coins granted"
        )
        refs["receivable_repaid_micros"] = repaid
        memo += f"; {format_micros(repaid, functional)} {functional} of the receivable repaid"
    return Entry(
        kind=EntryKind.PURCHASE,
        event_key=f"purchase:{facts.purchase_id}",
        postings=tuple(p for p in postings if p.amount),
        actor=actor,
        rates=rates,
        refs=refs,
        memo=memo,
    )
