"""What a gift and a feature unlock post (DESIGN.md, Flows), as plain functions from facts to a
balanced entry: coins spent at the wallet's weighted average value, diamonds issued to the
creator at the gift rate, the platform's share as revenue."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from accounting.ledger import chart
from accounting.ledger.chart import AccountSpec
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.valuation import release_value


@dataclass(frozen=True, slots=True)
class CoinRates:
    """How coins become diamonds and diamonds cash. Recorded on every entry that uses them."""

    diamonds_per_coin: Decimal = Decimal(1)
    diamond_value_micros: int = 5_000
    """Cash value of one diamond in functional micro-units ($0.005)."""

    def diamonds_for(self, coins: int) -> int:
        if self.diamonds_per_coin == 1:
            return coins
        return int((Decimal(coins) * self.diamonds_per_coin).to_integral_value(ROUND_FLOOR))


@dataclass(frozen=True, slots=True)
class Spending:
    """What spending ``coins`` from a wallet releases, and what the wallet held before."""

    user_id: str
    coins: int
    wallet_coins: int
    wallet_value_micros: int

    @property
    def value_micros(self) -> int:
        return release_value(self.wallet_value_micros, self.wallet_coins, self.coins)


def _spend_coins(spending: Spending, functional_currency: str) -> list[Posting]:
    value = spending.value_micros
    postings = [
        Posting(chart.user_coins(spending.user_id), spending.coins),
        Posting(chart.coins_spent(spending.user_id), -spending.coins),
    ]
    if value:
        postings.append(
            Posting(chart.user_coins_value(spending.user_id, functional_currency), value)
        )
    return postings


@dataclass(frozen=True, slots=True)
class GiftAmounts:
    value_micros: int
    diamonds: int
    payable_micros: int
    revenue_micros: int
    promotion_micros: int


def gift_amounts(spending: Spending, rates: CoinRates) -> GiftAmounts:
    value = spending.value_micros
    diamonds = rates.diamonds_for(spending.coins)
    payable = diamonds * rates.diamond_value_micros
    return GiftAmounts(
        value_micros=value,
        diamonds=diamonds,
        payable_micros=payable,
        revenue_micros=max(value - payable, 0),
        promotion_micros=max(payable - value, 0),
    )


def gift_entry(
    spending: Spending,
    *,
    creator_id: str,
    event_key: str,
    rates: CoinRates,
    functional_currency: str,
    refs: dict[str, object],
    actor: str,
) -> tuple[Entry, GiftAmounts]:
    """Gift: the coins are spent; their weighted-average value is released; the creator gets
    diamonds (pending) and their cash value as payable; the rest is gift revenue, or, where
    the value is smaller (bonus coins), the shortfall is promotional expense."""
    amounts = gift_amounts(spending, rates)
    postings = _spend_coins(spending, functional_currency)
    if amounts.revenue_micros:
        postings.append(
            Posting(chart.gift_revenue(functional_currency, creator_id), -amounts.revenue_micros)
        )
    if amounts.promotion_micros:
        promotions = chart.promotions(functional_currency, creator_id)
        postings.append(Posting(promotions, amounts.promotion_micros))
    if amounts.payable_micros:
        postings.append(
            Posting(chart.creator_payable(creator_id, functional_currency), -amounts.payable_micros)
        )
    if amounts.diamonds:
        postings += [
            Posting(chart.diamonds_issued(creator_id), amounts.diamonds),
            Posting(chart.creator_diamonds(creator_id, "pending"), -amounts.diamonds),
        ]
    entry = Entry(
        kind=EntryKind.GIFT,
        event_key=event_key,
        postings=tuple(postings),
        actor=actor,
        rates=_rates_used(spending, rates, functional_currency),
        refs=refs,
        memo=f"{spending.coins} coins gifted to {creator_id}",
    )
    return entry, amounts


def feature_entry(
    spending: Spending,
    *,
    feature_code: str,
    event_key: str,
    functional_currency: str,
    actor: str,
) -> Entry:
    """Premium feature unlock: like a gift, with all the released value to feature revenue."""
    postings = _spend_coins(spending, functional_currency)
    if spending.value_micros:
        postings.append(
            Posting(
                chart.feature_revenue(functional_currency, spending.user_id), -spending.value_micros
            )
        )
    return Entry(
        kind=EntryKind.FEATURE,
        event_key=event_key,
        postings=tuple(postings),
        actor=actor,
        rates={
            "weighted_average": f"{spending.value_micros} of {spending.wallet_value_micros} "
            f"micro-{functional_currency} for {spending.coins} of {spending.wallet_coins} coins"
        },
        refs={"feature": feature_code, "user_id": spending.user_id},
        memo=f"{feature_code} unlocked for {spending.coins} coins",
    )


def feature_accounts(user_id: str, functional_currency: str) -> list[AccountSpec]:
    """Every account an unlock by ``user_id`` may post to, its wallet first (a spend reads it)."""
    return [
        chart.user_coins(user_id),
        chart.user_coins_value(user_id, functional_currency),
        chart.coins_spent(user_id),
        chart.feature_revenue(functional_currency, user_id),
    ]


def _rates_used(spending: Spending, rates: CoinRates, functional_currency: str) -> dict[str, str]:
    return {
        "diamonds_per_coin": str(rates.diamonds_per_coin),
        "diamond_value": f"{rates.diamond_value_micros} micro-{functional_currency}",
        "weighted_average": f"{spending.value_micros} of {spending.wallet_value_micros} "
        f"micro-{functional_currency} for {spending.coins} of {spending.wallet_coins} coins",
    }
