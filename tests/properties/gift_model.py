"""The gift machine's reference model: every wallet, creator, receivable, clearing and revenue
account, computed with its own arithmetic, in plain Python and no database.

It knows who is frozen, which purchases are refunded or charged back and how each chargeback
traced its purchase's spent coins: to the buyer's gifts and unlocks from the purchase on,
earliest first, skipping coins that other standing chargebacks claim; diamonds come back only
from gifts still in their hold. It predicts what the system must answer (every reason the
refund check gives, what a provider taking a purchase back comes to), and takes in what
happened.
"""

from __future__ import annotations

import importlib
import math
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import TypeAlias

from accounting.chargebacks.rules import LossPolicy
from accounting.chargebacks.service import ChargebackKind, Outcome
from accounting.gifts.posting import GiftRequest
from accounting.gifts.rules import CoinRates
from accounting.gifts.service import FeatureRequest
from accounting.ledger.money import minor_to_micros
from accounting.payouts.rules import PayoutPhase
from accounting.payouts.service import PayoutPolicy
from accounting.refunds.service import RefundBlock
from tests.properties.payout_model import CENT, ModelPayout, phase_moves

GIFTS_MIGRATION = importlib.import_module("migrations.versions.0003_gifts")
GIFT_PRICES: dict[str, int] = {code: price for code, _, price, _, _ in GIFTS_MIGRATION.GIFTS}
FEATURE_PRICES: dict[str, int] = {code: price for code, _, _, price in GIFTS_MIGRATION.FEATURES}
FUNCTIONAL = "USD"

VIEWERS = ("ana", "bo", "cy")
CREATORS = ("bo", "dee")
"""Bo streams and gifts; a gift from Bo to his own stream is refused."""
PEOPLE = ("ana", "bo", "cy", "dee")

RATE_CARDS = {
    "default": CoinRates(),
    # a diamond worth more than a coin costs: the shortfall is promotional expense
    "generous": CoinRates(diamonds_per_coin=Decimal("0.8"), diamond_value_micros=20_000),
}
PROCESSORS = ("card", "paypal", "mobile_wallet")
"""Providers whose buyers dispute charges, and who refund what support asks them to."""
PAYOUTS = PayoutPolicy(minimum_minor=100, daily_cap_minor=10**9)
"""A dollar at least, so that payouts happen often; no daily cap to speak of."""


def model_release(value: int, held: int, spent: int) -> int:
    """The weighted average, in the model's own arithmetic (Decimal, half to even)."""
    if spent == held:
        return value
    with localcontext() as context:
        context.prec = 60
        share = Decimal(value) * spent / held
        return int(share.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def model_diamonds(coins: int, rates: CoinRates) -> int:
    return int((coins * rates.diamonds_per_coin).to_integral_value(rounding=ROUND_FLOOR))


def model_payout(payable: int, held: int, diamonds: int) -> tuple[int, int]:
    """(cash, diamonds redeemed) of a payout of ``diamonds`` of ``held``: their value at the
    creator's average, floored to a cent, and the fewest diamonds worth at least that."""
    cash = int(Fraction(payable * diamonds, held) // CENT) * CENT
    redeemed = math.ceil(Fraction(cash * held, payable)) if cash else 0
    return cash, redeemed


@dataclass(eq=False)
class ModelGift:
    id: int
    request: GiftRequest
    creator: str
    coins: int
    diamonds: int
    payable: int
    due: bool
    """Held for no time, with diamonds to release."""
    released: bool = False


@dataclass(eq=False)
class ModelUnlock:
    id: int
    request: FeatureRequest
    coins: int


Spend: TypeAlias = ModelGift | ModelUnlock
"""What a viewer spent coins on: a chargeback traces a purchase's spent coins to these."""


@dataclass(eq=False)
class ModelPurchase:
    id: int
    user: str
    provider: str
    currency: str
    price_minor: int
    coins: int
    """Bonus coins included: those granted, less any withheld for a receivable repaid."""
    value: int
    """What it put on the wallet's deferred value, in the functional currency."""
    reference: str
    completed: bool
    since: int
    """How many things the buyer had spent coins on before it: its coins are spent after."""
    repaid: int = 0
    """What of its value repaid the buyer's receivable first (not on the wallet)."""
    refunded: bool = False
    chargeback: ModelChargeback | None = None

    @property
    def cash(self) -> int:
        return minor_to_micros(self.price_minor, self.currency)


@dataclass(eq=False)
class Claim:
    """Coins of one spend that a chargeback traced its purchase's spent coins to."""

    spend: Spend
    coins: int
    clawed: bool
    """A gift still in its hold: its diamonds for these coins came back, with their payable."""
    diamonds: int = 0
    payable: int = 0


@dataclass(eq=False)
class ModelChargeback:
    purchase: ModelPurchase
    kind: ChargebackKind
    policy: LossPolicy
    status: str
    coins_clawed: int
    coins_spent: int
    released: int
    payable: int
    loss: int
    contra: int
    claims: list[Claim]

    @property
    def standing(self) -> bool:
        """Not undone by a dispute won."""
        return self.status != "won"

    @property
    def clawbacks(self) -> list[Claim]:
        return [claim for claim in self.claims if claim.clawed]


@dataclass
class Model:
    coins: Counter[str] = field(default_factory=Counter)
    value: Counter[str] = field(default_factory=Counter)
    pending: Counter[str] = field(default_factory=Counter)
    available: Counter[str] = field(default_factory=Counter)
    reserved: Counter[str] = field(default_factory=Counter)
    payable: Counter[str] = field(default_factory=Counter)
    receivable: Counter[str] = field(default_factory=Counter)
    clearing: Counter[tuple[str, str]] = field(default_factory=Counter)
    """What each provider owes us, per (provider, currency), in micro-units."""
    dispute_fees: Counter[str] = field(default_factory=Counter)
    revenue_gifts: int = 0
    revenue_features: int = 0
    promotions: int = 0
    contra_refunds: int = 0
    contra_chargebacks: int = 0
    fraud_losses: int = 0
    in_transit: int = 0
    bank: int = 0
    redeemed: int = 0
    purchased_value: int = 0
    """What the completed purchases brought in, less those refunded or charged back."""
    entries: int = 0
    events: int = 0
    gifts: list[ModelGift] = field(default_factory=list)
    unlocks: list[ModelUnlock] = field(default_factory=list)
    spending: dict[str, list[Spend]] = field(default_factory=lambda: {u: [] for u in PEOPLE})
    """Each viewer's gifts and unlocks, in the order they were made."""
    purchases: list[ModelPurchase] = field(default_factory=list)
    chargebacks: list[ModelChargeback] = field(default_factory=list)
    fee_cases: set[tuple[str, str]] = field(default_factory=set)
    frozen: set[str] = field(default_factory=set)
    payouts: list[ModelPayout] = field(default_factory=list)

    def spend(self, user: str, coins: int) -> int:
        """Take ``coins`` out of the wallet; the value they release."""
        assert 0 < coins <= self.coins[user], (user, coins, self.coins[user])
        released = model_release(self.value[user], self.coins[user], coins)
        self.coins[user] -= coins
        self.value[user] -= released
        return released

    # Coins in and out ------------------------------------------------------------------------

    def repayment(self, user: str, coins: int, value: int) -> tuple[int, int]:
        """What a purchase of ``coins`` worth ``value`` repays of what ``user`` owes first, and
        the coins it grants: ``⌊coins × (value − repaid) ÷ value⌋``."""
        repaid = min(max(self.receivable[user], 0), value)
        return repaid, coins * (value - repaid) // value

    def bought(self, purchase: ModelPurchase, fee_minor: int) -> None:
        """A completed purchase: its coins and value in the wallet (less what repaid the
        receivable), its cash less the provider's fee owed by the provider."""
        self.coins[purchase.user] += purchase.coins
        self.value[purchase.user] += purchase.value
        self.receivable[purchase.user] -= purchase.repaid
        self.purchased_value += purchase.value + purchase.repaid
        self.clearing[(purchase.provider, purchase.currency)] += purchase.cash - minor_to_micros(
            fee_minor, purchase.currency
        )
        self.entries += 1

    def gave(self, gift: ModelGift, value: int) -> None:
        """A gift sent (its coins already spent, releasing ``value``): its diamonds pending,
        their payable owed to the creator, the rest revenue, or the shortfall promotions."""
        self.pending[gift.creator] += gift.diamonds
        self.payable[gift.creator] += gift.payable
        self.revenue_gifts += max(value - gift.payable, 0)
        self.promotions += max(gift.payable - value, 0)
        self.entries += 1
        self.gifts.append(gift)
        self.spending[gift.request.sender_id].append(gift)

    def unlocked(self, unlock: ModelUnlock, value: int) -> None:
        """A feature unlocked (its coins already spent, releasing ``value``): all revenue."""
        self.revenue_features += value
        self.entries += 1
        self.unlocks.append(unlock)
        self.spending[unlock.request.user_id].append(unlock)

    # Holds -----------------------------------------------------------------------------------

    def diamonds_left(self, gift: ModelGift) -> int:
        """The gift's diamonds less those standing chargebacks clawed back from it."""
        return gift.diamonds - sum(
            claim.diamonds
            for chargeback in self.chargebacks
            if chargeback.standing
            for claim in chargeback.clawbacks
            if claim.spend is gift
        )

    def due(self, creator: str | None = None) -> list[ModelGift]:
        """Gifts whose hold has passed, unreleased, with diamonds left to release (a gift that
        chargebacks took every diamond from stays in its hold)."""
        return [
            g
            for g in self.gifts
            if g.due
            and not g.released
            and self.diamonds_left(g) > 0
            and (creator is None or g.creator == creator)
        ]

    def release(self, gifts: list[ModelGift]) -> None:
        """One release batch: the diamonds each gift has left, one entry per creator."""
        for gift in gifts:
            left = self.diamonds_left(gift)
            assert not gift.released and left > 0, gift
            gift.released = True
            self.pending[gift.creator] -= left
            self.available[gift.creator] += left
        self.entries += len({g.creator for g in gifts})

    # Refunds ---------------------------------------------------------------------------------

    def refund_blocks(self, purchase: ModelPurchase, *, in_window: bool) -> set[str]:
        """Every reason the refund check gives against refunding ``purchase`` now."""
        blocks: set[str] = set()
        charged_back = purchase.chargeback is not None and purchase.chargeback.standing
        if not purchase.completed:
            blocks.add(RefundBlock.NOT_COMPLETED)
        if purchase.refunded:
            blocks.add(RefundBlock.ALREADY_REFUNDED)
        if charged_back:
            blocks.add(RefundBlock.CHARGED_BACK)
        if not in_window:
            blocks.add(RefundBlock.WINDOW_PASSED)
        if purchase.provider not in PROCESSORS:
            blocks.add(RefundBlock.PROVIDER_DOES_NOT_REFUND)
        if purchase.user in self.frozen:
            blocks.add(RefundBlock.ACCOUNT_FROZEN)
        if purchase.completed and not purchase.refunded and not charged_back:
            if purchase.coins == 0:
                blocks.add(RefundBlock.NOTHING_GRANTED)
            elif self.coins[purchase.user] < purchase.coins:
                blocks.add(RefundBlock.COINS_SPENT)
        return blocks

    def refund(self, purchase: ModelPurchase) -> int:
        """Refund ``purchase``; the wallet value its coins released."""
        assert purchase.completed and not purchase.refunded, purchase
        released = self.spend(purchase.user, purchase.coins)
        self.contra_refunds += purchase.value - released
        self.receivable[purchase.user] += purchase.repaid
        self.purchased_value -= purchase.value + purchase.repaid
        self.clearing[(purchase.provider, purchase.currency)] -= purchase.cash
        self.entries += 1
        purchase.refunded = True
        return released

    # Chargebacks -----------------------------------------------------------------------------

    def taking_back(
        self, purchase: ModelPurchase, amount_minor: int | None, currency: str | None
    ) -> Outcome:
        """What a provider taking ``purchase`` back (for ``amount_minor``) comes to."""
        if not purchase.completed:
            return Outcome.NOT_COMPLETED
        if purchase.chargeback is not None:
            return Outcome.ALREADY_CHARGED_BACK
        if purchase.refunded:
            return Outcome.ALREADY_REFUNDED
        if amount_minor is not None:
            if (currency or purchase.currency).upper() != purchase.currency:
                return Outcome.AMOUNT_MISMATCH
            if amount_minor > purchase.price_minor:  # more than the price: refused
                return Outcome.REFUSED
        return Outcome.CHARGED_BACK

    def claimed(self, spend: Spend) -> int:
        """The coins of ``spend`` that standing chargebacks traced their purchases to."""
        return sum(
            claim.coins
            for chargeback in self.chargebacks
            if chargeback.standing
            for claim in chargeback.claims
            if claim.spend is spend
        )

    def spent_of(self, purchase: ModelPurchase) -> int:
        """The purchase's coins the buyer no longer holds."""
        return purchase.coins - min(purchase.coins, self.coins[purchase.user])

    def trace(self, purchase: ModelPurchase) -> list[Claim]:
        """The purchase's spent coins traced to what they bought: the buyer's gifts and unlocks
        from the purchase on, earliest first, skipping coins that standing chargebacks already
        traced. A gift still in its hold gives back its diamonds and payable for the coins
        traced to it, floored on the running total of its traced coins (so a gift traced in
        pieces gives back all of them once every coin is traced)."""
        left = self.spent_of(purchase)
        claims: list[Claim] = []
        for spend in self.spending[purchase.user][purchase.since :]:
            if left <= 0:
                break
            before = self.claimed(spend)
            taken = min(left, spend.coins - before)
            if taken <= 0:
                continue
            left -= taken
            if isinstance(spend, ModelGift) and not spend.released:
                after, coins = before + taken, spend.coins
                claims.append(
                    Claim(
                        spend,
                        taken,
                        clawed=True,
                        diamonds=spend.diamonds * after // coins - spend.diamonds * before // coins,
                        payable=spend.payable * after // coins - spend.payable * before // coins,
                    )
                )
            else:
                claims.append(Claim(spend, taken, clawed=False))
        return claims

    def book_fee(self, purchase: ModelPurchase, case_id: str, fee_minor: int) -> None:
        """A dispute's fee, once per case."""
        if fee_minor and (purchase.provider, case_id) not in self.fee_cases:
            self.fee_cases.add((purchase.provider, case_id))
            fee = minor_to_micros(fee_minor, purchase.currency)
            self.dispute_fees[purchase.currency] += fee
            self.clearing[(purchase.provider, purchase.currency)] -= fee
            self.entries += 1

    def _loss(self, chargeback: ModelChargeback, sign: int) -> None:
        if chargeback.policy is LossPolicy.RECEIVABLE:
            self.receivable[chargeback.purchase.user] += sign * chargeback.loss
        else:
            self.fraud_losses += sign * chargeback.loss

    def take_back(
        self, purchase: ModelPurchase, kind: ChargebackKind, policy: LossPolicy
    ) -> ModelChargeback:
        """Charge ``purchase`` back: the coins the buyer still holds, with their weighted
        average; the diamonds its spent coins paid for that are still in their hold, with
        their payable; what the spent coins cost beyond that is the loss; the buyer frozen."""
        assert purchase.completed and purchase.chargeback is None and not purchase.refunded
        user = purchase.user
        wallet = self.coins[user]
        clawed = min(purchase.coins, wallet)
        spent = purchase.coins - clawed
        released = model_release(self.value[user], wallet, clawed) if clawed else 0
        claims = self.trace(purchase)
        payable = sum(claim.payable for claim in claims)
        spent_value = model_release(purchase.value, purchase.coins, spent) if spent else 0
        loss = max(spent_value - payable, 0)
        chargeback = ModelChargeback(
            purchase=purchase,
            kind=kind,
            policy=policy,
            status="open" if kind is ChargebackKind.DISPUTE else "final",
            coins_clawed=clawed,
            coins_spent=spent,
            released=released,
            payable=payable,
            loss=loss,
            contra=purchase.value - released - payable - loss,
            claims=claims,
        )
        self.coins[user] -= clawed
        self.value[user] -= released
        for claim in chargeback.clawbacks:
            assert isinstance(claim.spend, ModelGift)
            self.pending[claim.spend.creator] -= claim.diamonds
            self.payable[claim.spend.creator] -= claim.payable
        self._loss(chargeback, +1)
        self.contra_chargebacks += chargeback.contra
        self.receivable[user] += purchase.repaid
        self.purchased_value -= purchase.value + purchase.repaid
        self.clearing[(purchase.provider, purchase.currency)] -= purchase.cash
        self.entries += 1
        self.frozen.add(user)
        purchase.chargeback = chargeback
        self.chargebacks.append(chargeback)
        return chargeback

    def dispute_won(self, chargeback: ModelChargeback) -> None:
        """Everything the chargeback moved, moved back; diamonds whose gift has left its hold
        since go back to available, where the release would have put them. The buyer stays
        frozen."""
        assert (chargeback.kind, chargeback.status) == (ChargebackKind.DISPUTE, "open")
        purchase = chargeback.purchase
        chargeback.status = "won"
        self.coins[purchase.user] += chargeback.coins_clawed
        self.value[purchase.user] += chargeback.released
        for claim in chargeback.clawbacks:
            assert isinstance(claim.spend, ModelGift)
            gift = claim.spend
            (self.available if gift.released else self.pending)[gift.creator] += claim.diamonds
            self.payable[gift.creator] += claim.payable
        self._loss(chargeback, -1)
        self.contra_chargebacks -= chargeback.contra
        self.receivable[purchase.user] -= purchase.repaid
        self.purchased_value += purchase.value + purchase.repaid
        self.clearing[(purchase.provider, purchase.currency)] += purchase.cash
        self.entries += 1

    def dispute_lost(self, chargeback: ModelChargeback) -> None:
        """The chargeback stands for good: nothing moves."""
        assert (chargeback.kind, chargeback.status) == (ChargebackKind.DISPUTE, "open")
        chargeback.status = "lost"

    # Payouts ---------------------------------------------------------------------------------

    def reserve(self, payout: ModelPayout) -> None:
        """A payout requested (what was due released first): its diamonds reserved."""
        assert payout.diamonds <= self.available[payout.creator], payout
        self.available[payout.creator] -= payout.diamonds
        self.reserved[payout.creator] += payout.diamonds
        self.entries += 1
        self.payouts.append(payout)

    def move_payout(self, payout: ModelPayout, phase: PayoutPhase) -> None:
        """Finance sent, paid, failed or rejected ``payout``."""
        moves = phase_moves(phase, payout)
        creator = payout.creator
        self.reserved[creator] += moves.reserved
        self.available[creator] += moves.available
        self.payable[creator] += moves.payable
        self.redeemed += moves.redeemed
        self.in_transit += moves.in_transit
        self.bank += moves.bank
        assert min(self.reserved[creator], self.in_transit) >= 0, (payout, phase)
        self.entries += 1
        payout.status = str(phase)
