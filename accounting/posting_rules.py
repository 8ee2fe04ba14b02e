"""What each flow posts, as plain functions from facts to a balanced entry (DESIGN.md, Flows)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

from accounting import chart
from accounting.entries import Entry, EntryKind, Posting, merge_postings, reversal_postings
from accounting.money import minor_to_micros, mul_rate


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
    paid deferred on the user's wallet (through the FX trading accounts for other currencies)."""
    total_coins = facts.coins + facts.bonus_coins
    price_micros = minor_to_micros(facts.price_minor, facts.currency)
    fee_micros = minor_to_micros(facts.fee_minor, facts.currency)
    value_micros = purchase_value_micros(facts)
    clearing = chart.provider_clearing(facts.provider, facts.currency)

    postings = [
        Posting(chart.coins_issued(), total_coins),
        Posting(chart.user_coins(facts.user_id), -total_coins),
        Posting(clearing, price_micros),
    ]
    rates: dict[str, str] = {}
    if facts.currency == facts.functional_currency:
        postings.append(
            Posting(chart.user_coins_value(facts.user_id, facts.functional_currency), -price_micros)
        )
    else:
        assert facts.fx_rate is not None
        rates["fx"] = f"{facts.currency}/{facts.functional_currency}={facts.fx_rate}"
        postings += [
            Posting(chart.fx_trading(facts.currency), -price_micros),
            Posting(chart.fx_trading(facts.functional_currency), value_micros),
            Posting(
                chart.user_coins_value(facts.user_id, facts.functional_currency), -value_micros
            ),
        ]
    if fee_micros:
        postings += [
            Posting(chart.fee_expense(facts.provider, facts.currency), fee_micros),
            Posting(clearing, -fee_micros),
        ]
    rates["price"] = f"{facts.price_minor} minor units of {facts.currency} for {total_coins} coins"
    return Entry(
        kind=EntryKind.PURCHASE,
        event_key=f"purchase:{facts.purchase_id}",
        postings=tuple(postings),
        actor=actor,
        rates=rates,
        refs={
            "purchase_id": facts.purchase_id,
            "user_id": facts.user_id,
            "provider": facts.provider,
            "provider_reference": facts.provider_reference,
            "package": facts.package_code,
        },
        memo=f"{total_coins} coins bought through {facts.provider}",
    )


def release_value(value_micros: int, coins_held: int, coins_spent: int) -> int:
    """The deferred value released when ``coins_spent`` of ``coins_held`` coins are spent: the
    wallet's weighted average, rounded half-even, and all that is left for the last coin.

    Exact by construction: spending a wallet down to zero coins releases exactly its value, in
    any order and any sizes of spending, because each step releases a share of what remains.
    """
    if not 0 < coins_spent <= coins_held:
        raise ValueError(f"cannot spend {coins_spent} of {coins_held} coins")
    if value_micros < 0:
        raise ValueError("a wallet's value is never negative")
    if coins_spent == coins_held:
        return value_micros
    share, remainder = divmod(value_micros * coins_spent, coins_held)
    if 2 * remainder > coins_held or (2 * remainder == coins_held and share % 2):
        share += 1  # half-even, as round() does
    return min(value_micros, share)


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
        Posting(chart.coins_spent(), -spending.coins),
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
            Posting(chart.revenue("gifts", functional_currency), -amounts.revenue_micros)
        )
    if amounts.promotion_micros:
        postings.append(Posting(chart.promotions(functional_currency), amounts.promotion_micros))
    if amounts.payable_micros:
        postings.append(
            Posting(chart.creator_payable(creator_id, functional_currency), -amounts.payable_micros)
        )
    if amounts.diamonds:
        postings += [
            Posting(chart.diamonds_issued(), amounts.diamonds),
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
            Posting(chart.revenue("features", functional_currency), -spending.value_micros)
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


def _rates_used(spending: Spending, rates: CoinRates, functional_currency: str) -> dict[str, str]:
    return {
        "diamonds_per_coin": str(rates.diamonds_per_coin),
        "diamond_value": f"{rates.diamond_value_micros} micro-{functional_currency}",
        "weighted_average": f"{spending.value_micros} of {spending.wallet_value_micros} "
        f"micro-{functional_currency} for {spending.coins} of {spending.wallet_coins} coins",
    }


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
    undone, except that the diamonds go back to available."""
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
        postings = (
            Posting(chart.diamonds_redeemed(), diamonds),
            Posting(available, -diamonds),
            Posting(in_transit, cash),
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


def refund_entry(facts: RefundFacts, *, actor: str, reason: str) -> Entry:
    """Refund: the purchase's coins back from the wallet; the wallet's weighted-average value
    for them released; the cash back to the provider (through the FX trading accounts, at the
    purchase's own rate, for another currency); what was paid beyond the value released is
    contra revenue (negative when the wallet's average is above what the purchase cost)."""
    functional = facts.functional_currency
    postings = [
        Posting(chart.user_coins(facts.user_id), facts.coins),
        Posting(chart.coins_issued(), -facts.coins),
        Posting(chart.provider_clearing(facts.provider, facts.currency), -facts.cash_micros),
    ]
    if facts.currency != functional:
        postings += [
            Posting(chart.fx_trading(facts.currency), facts.cash_micros),
            Posting(chart.fx_trading(functional), -facts.value_paid_micros),
        ]
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
        postings=tuple(postings),
        actor=actor,
        rates={
            "weighted_average": f"{facts.value_released_micros} micro-{functional} "
            f"for {facts.coins} coins"
        },
        refs={"purchase_id": facts.purchase_id, "user_id": facts.user_id},
        memo=reason,
    )


class LossPolicy(StrEnum):
    """Where the charged-back value of coins already spent is booked."""

    RECEIVABLE = "receivable"
    """Claimed from the user (``user:U:receivable``)."""
    FRAUD_LOSS = "fraud_loss"
    """Written off at once (``platform:expense:fraud_losses``)."""


@dataclass(frozen=True, slots=True)
class CreatorClawback:
    """Diamonds a charged-back purchase funded that are still pending at one creator."""

    creator_id: str
    diamonds: int
    payable_micros: int


@dataclass(frozen=True, slots=True)
class ChargebackAmounts:
    coins_clawed: int
    """The purchase's coins the wallet still holds, taken back (at most all of them)."""
    coins_spent: int
    value_released_micros: int
    """The wallet's weighted-average value for the coins taken back."""
    spent_value_micros: int
    """What the spent coins cost, at this purchase's own price."""
    payable_clawed_micros: int
    loss_micros: int
    """Spent value the creators' clawed-back payable does not cover: a receivable or a loss."""
    contra_revenue_micros: int
    """The rest of the value paid: the averaging difference (negative when the wallet's
    average, or the clawed-back payable, is above what the purchase cost)."""


def chargeback_amounts(
    *,
    coins: int,
    value_paid_micros: int,
    wallet_coins: int,
    wallet_value_micros: int,
    payable_clawed_micros: int,
) -> ChargebackAmounts:
    """Split a charged-back purchase of ``coins`` that put ``value_paid_micros`` on the wallet.

    As many of its coins as the wallet holds come back, releasing the wallet's weighted average
    for them. The rest were spent: their share of the value paid, less the payable clawed back
    from creators with the diamonds they still had pending, is the loss (never negative). What
    remains balances the entry as contra revenue, so released + clawed payable + loss + contra
    revenue is always exactly the value paid."""
    clawed = min(coins, wallet_coins)
    spent = coins - clawed
    released = release_value(wallet_value_micros, wallet_coins, clawed) if clawed else 0
    spent_value = release_value(value_paid_micros, coins, spent) if spent else 0
    loss = max(spent_value - payable_clawed_micros, 0)
    return ChargebackAmounts(
        coins_clawed=clawed,
        coins_spent=spent,
        value_released_micros=released,
        spent_value_micros=spent_value,
        payable_clawed_micros=payable_clawed_micros,
        loss_micros=loss,
        contra_revenue_micros=value_paid_micros - released - payable_clawed_micros - loss,
    )


@dataclass(frozen=True, slots=True)
class ChargebackFacts:
    purchase_id: int
    user_id: str
    provider: str
    currency: str
    cash_micros: int
    """The price, taken back by the provider, in the purchase's currency."""
    value_paid_micros: int
    functional_currency: str
    amounts: ChargebackAmounts
    clawbacks: tuple[CreatorClawback, ...]
    loss_policy: LossPolicy
    case: str
    """What the provider called it (``dispute dp_1``, ``Apple REFUND``): the entry's memo."""


def chargeback_entry(facts: ChargebackFacts, *, actor: str) -> Entry:
    """Chargeback (DESIGN.md): the cash back to the provider from clearing (through the FX
    trading accounts at the purchase's own rate for another currency); the coins the user still
    holds back to ``coins:issued`` with their weighted-average value; each creator's pending
    diamonds the purchase funded back to ``diamonds:issued`` with their payable; the loss on
    coins already spent to the user's receivable or to fraud losses, by policy; the rest to
    chargebacks' contra revenue."""
    functional = facts.functional_currency
    amounts = facts.amounts
    postings = [
        Posting(chart.provider_clearing(facts.provider, facts.currency), -facts.cash_micros),
    ]
    if facts.currency != functional:
        postings += [
            Posting(chart.fx_trading(facts.currency), facts.cash_micros),
            Posting(chart.fx_trading(functional), -facts.value_paid_micros),
        ]
    if amounts.coins_clawed:
        postings += [
            Posting(chart.user_coins(facts.user_id), amounts.coins_clawed),
            Posting(chart.coins_issued(), -amounts.coins_clawed),
        ]
    if amounts.value_released_micros:
        postings.append(
            Posting(
                chart.user_coins_value(facts.user_id, functional), amounts.value_released_micros
            )
        )
    diamonds = 0
    for clawback in facts.clawbacks:
        if clawback.diamonds:
            diamonds += clawback.diamonds
            postings.append(
                Posting(chart.creator_diamonds(clawback.creator_id, "pending"), clawback.diamonds)
            )
        if clawback.payable_micros:
            postings.append(
                Posting(
                    chart.creator_payable(clawback.creator_id, functional),
                    clawback.payable_micros,
                )
            )
    if diamonds:
        postings.append(Posting(chart.diamonds_issued(), -diamonds))
    if amounts.loss_micros:
        loss_account = (
            chart.user_receivable(facts.user_id, functional)
            if facts.loss_policy == LossPolicy.RECEIVABLE
            else chart.fraud_losses(functional)
        )
        postings.append(Posting(loss_account, amounts.loss_micros))
    if amounts.contra_revenue_micros:
        postings.append(
            Posting(chart.chargebacks_contra_revenue(functional), amounts.contra_revenue_micros)
        )
    return Entry(
        kind=EntryKind.CHARGEBACK,
        event_key=f"chargeback:{facts.purchase_id}",
        postings=merge_postings(postings),
        actor=actor,
        rates={
            "weighted_average": f"{amounts.value_released_micros} micro-{functional} "
            f"for {amounts.coins_clawed} coins",
            "loss_policy": str(facts.loss_policy),
        },
        refs={"purchase_id": facts.purchase_id, "user_id": facts.user_id},
        memo=f"chargeback of purchase {facts.purchase_id}: {facts.case}",
    )


def chargeback_won_entry(
    purchase_id: int,
    chargeback: tuple[Posting, ...],
    *,
    released: dict[str, int],
    actor: str,
    memo: str,
) -> Entry:
    """A dispute won: the chargeback's postings undone, except that clawed-back diamonds whose
    gifts have left their hold since (``released``: diamonds per creator) go back to available,
    where the hold release would have put them, rather than to pending."""
    postings = list(reversal_postings(chargeback))
    for creator_id, diamonds in released.items():
        if diamonds:
            postings += [
                Posting(chart.creator_diamonds(creator_id, "pending"), diamonds),
                Posting(chart.creator_diamonds(creator_id, "available"), -diamonds),
            ]
    return Entry(
        kind=EntryKind.CHARGEBACK_WON,
        event_key=f"chargeback:{purchase_id}:won",
        postings=merge_postings(postings),
        actor=actor,
        refs={"purchase_id": purchase_id},
        memo=memo,
    )


def dispute_fee_entry(
    *, provider: str, currency: str, fee_micros: int, case_id: str, purchase_id: int, actor: str
) -> Entry:
    """A dispute's fee: an expense, taken from what the provider owes us."""
    return Entry(
        kind=EntryKind.DISPUTE_FEE,
        event_key=f"dispute_fee:{provider}:{case_id}"[:200],
        postings=(
            Posting(chart.dispute_fees(currency), fee_micros),
            Posting(chart.provider_clearing(provider, currency), -fee_micros),
        ),
        actor=actor,
        refs={"purchase_id": purchase_id, "case_id": case_id},
        memo=f"dispute fee for {case_id}",
    )
