"""What each flow posts, as plain functions from facts to a balanced entry (DESIGN.md, Flows)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from accounting.ledger import chart
from accounting.ledger.chart import AccountSpec
from accounting.ledger.entries import Entry, EntryKind, Posting, merge_postings, reversal_postings
from accounting.ledger.money import FIAT_CODES, format_micros, minor_to_micros
from accounting.ledger.valuation import release_value


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


def partial_share(total: int, *, whole: int, before: int, part: int) -> int:
    """The part of ``total`` (a purchase's coins, or the value it paid) that a takeback of
    ``part`` of ``whole`` (the purchase's price, in minor units) takes, after takebacks of
    ``before`` of it: the ceiling of ``total × part / whole`` taken on the running total,

        ⌈total × (before + part) / whole⌉ − ⌈total × before / whole⌉,

    so a fraction of a coin goes against the buyer who took the cash back, never more than
    one coin in a piece, and the pieces of a purchase never add up beyond ``total``: takebacks
    of the whole price, in one piece or several, take exactly ``total``."""
    if whole <= 0 or part <= 0 or before < 0 or before + part > whole:
        raise ValueError(f"a takeback of {part} after {before} of {whole} is not a part of it")
    return -(-total * (before + part) // whole) + (-total * before // whole)


def cash_text(minor: int, currency: str | None) -> str:
    """``minor`` minor units of ``currency`` as a message writes them, in the currency's unit
    (``cash_text(300, "USD") == "3.00 USD"``); a code that is no currency we know keeps its
    minor units, and says so."""
    code = (currency or "").upper()
    if code not in FIAT_CODES:
        return f"{minor} minor units of {currency or 'an unnamed currency'}"
    return f"{format_micros(minor_to_micros(minor, code), code)} {code}"


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
    sequence: int = 1
    """The chargeback's place among its purchase's (a purchase taken back in pieces)."""
    receivable_restored_micros: int = 0
    """The share taken back of what the purchase repaid of the buyer's receivable: owed again."""


def chargeback_key(purchase_id: int, sequence: int) -> str:
    """The key of a purchase's ``sequence``-th chargeback entry: ``chargeback:<purchase>`` for
    the first (the only one of a purchase taken back whole), ``chargeback:<purchase>:<n>``
    for the n-th piece after it."""
    return f"chargeback:{purchase_id}" + (f":{sequence}" if sequence > 1 else "")


def chargeback_accounts(
    user_id: str,
    provider: str,
    currency: str,
    functional_currency: str,
    *,
    creators: list[str],
    loss_policy: LossPolicy,
    receivable_repaid: bool,
) -> list[AccountSpec]:
    """Every account a chargeback of a purchase by ``user_id`` and its dispute fee may post to,
    clawing back from ``creators``: the buyer's receivable only where the policy books the
    loss to it or the purchase repaid some of it."""
    functional = functional_currency
    accounts = [
        chart.user_coins(user_id),
        chart.user_coins_value(user_id, functional),
        chart.coins_issued(),
        chart.provider_clearing(provider, currency),
        chart.dispute_fees(currency),
        *(chart.diamonds_issued(creator) for creator in creators),
        chart.chargebacks_contra_revenue(functional),
    ]
    if currency != functional:
        accounts += [chart.fx_trading(currency), chart.fx_trading(functional)]
    if loss_policy == LossPolicy.RECEIVABLE or receivable_repaid:
        accounts.append(chart.user_receivable(user_id, functional))
    if loss_policy != LossPolicy.RECEIVABLE:
        accounts.append(chart.fraud_losses(functional))
    for creator in creators:
        accounts += [
            chart.creator_diamonds(creator, "pending"),
            chart.creator_payable(creator, functional),
        ]
    return accounts


def chargeback_entry(facts: ChargebackFacts, *, actor: str) -> Entry:
    """Chargeback (DESIGN.md): the cash back to the provider from clearing (through the FX
    trading accounts at the purchase's own rate for another currency); the coins the user still
    holds back to ``coins:issued`` with their weighted-average value; each creator's pending
    diamonds the purchase funded back to ``diamonds:issued`` with their payable; the loss on
    coins already spent to the user's receivable or to fraud losses, by policy; the rest to
    chargebacks' contra revenue. What the purchase repaid of the user's receivable (its share
    of it) is owed again."""
    functional = facts.functional_currency
    amounts = facts.amounts
    restored = facts.receivable_restored_micros
    postings = [
        Posting(chart.provider_clearing(facts.provider, facts.currency), -facts.cash_micros),
    ]
    if facts.currency != functional:
        postings += [
            Posting(chart.fx_trading(facts.currency), facts.cash_micros),
            Posting(chart.fx_trading(functional), -facts.value_paid_micros - restored),
        ]
    if restored:
        postings.append(Posting(chart.user_receivable(facts.user_id, functional), restored))
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
    issued: dict[AccountSpec, int] = {}  # per sub-account of diamonds issued (the creator's)
    for clawback in facts.clawbacks:
        if clawback.diamonds:
            share = chart.diamonds_issued(clawback.creator_id)
            issued[share] = issued.get(share, 0) + clawback.diamonds
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
    postings += [Posting(share, -diamonds) for share, diamonds in issued.items()]
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
        event_key=chargeback_key(facts.purchase_id, facts.sequence),
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


def receivable_write_off_entry(
    user_id: str, owed_micros: int, functional: str, *, key: str, actor: str, reason: str
) -> Entry:
    """A user's whole receivable written off to fraud losses, keyed
    ``receivable_write_off:<user>:<key>``: finance gave up claiming it."""
    return Entry(
        kind=EntryKind.RECEIVABLE_WRITE_OFF,
        event_key=f"receivable_write_off:{user_id}:{key}",
        postings=(
            Posting(chart.fraud_losses(functional), owed_micros),
            Posting(chart.user_receivable(user_id, functional), -owed_micros),
        ),
        actor=actor,
        refs={"user_id": user_id},
        memo=f"receivable of {user_id} written off: {reason}"[:500],
    )
