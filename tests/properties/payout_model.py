"""The payouts' reference model: each creator's diamonds by state and payable, the cash in
transit, paid from the bank and redeemed, with its own arithmetic for whole-cent cash (plain
fractions), and no database. ``phase_moves`` says what each finance action moves; the gift
machine's model follows payouts by it too."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from accounting.payouts.rules import PayoutPhase
from accounting.payouts.service import PayoutAction

CREATORS = ("bo", "cy")
GIFTS = {"rose": 1, "hand_hearts": 100, "galaxy": 1_000}
RATE_CARDS = {"standard": 5_000, "odd": 4_321}
"""Cash value of one diamond, in micro-USD."""
MINIMUM_MICROS = 10_000_000
CENT = 10_000
NEXT = {
    PayoutPhase.REJECTED: "requested",
    PayoutPhase.SENT: "requested",
    PayoutPhase.PAID: "sent",
    PayoutPhase.FAILED: "sent",
}
"""The status a payout must be in for each finance action."""

PHASES = [PayoutPhase.SENT, PayoutPhase.PAID, PayoutPhase.FAILED] * 2 + [PayoutPhase.REJECTED]
"""Finance actions to try, the forward ones more often than rejection."""


@dataclass
class ModelCreator:
    pending: int = 0
    available: int = 0
    reserved: int = 0
    payable: int = 0

    @property
    def held(self) -> int:
        return self.pending + self.available + self.reserved


@dataclass
class ModelPayout:
    id: int
    creator: str
    key: str
    diamonds_requested: int
    diamonds: int
    cash: int
    status: str = "requested"


@dataclass(frozen=True)
class PhaseMoves:
    """What a finance action moves: the creator's reserved and available diamonds and payable,
    and the diamonds redeemed, the cash in transit and the bank (credit-negative)."""

    reserved: int = 0
    available: int = 0
    payable: int = 0
    redeemed: int = 0
    in_transit: int = 0
    bank: int = 0


def phase_moves(phase: PayoutPhase, payout: ModelPayout) -> PhaseMoves:
    """Rejected: the diamonds back to available. Sent: redeemed, the cash on its way. Paid: the
    cash out of the bank. Failed: the diamonds and their cash back to the creator."""
    diamonds, cash = payout.diamonds, payout.cash
    if phase is PayoutPhase.REJECTED:
        return PhaseMoves(reserved=-diamonds, available=diamonds)
    if phase is PayoutPhase.SENT:
        return PhaseMoves(reserved=-diamonds, payable=-cash, redeemed=diamonds, in_transit=cash)
    if phase is PayoutPhase.PAID:
        return PhaseMoves(in_transit=-cash, bank=-cash)
    return PhaseMoves(available=diamonds, payable=cash, redeemed=-diamonds, in_transit=-cash)


def model_cash(payable: int, held: int, diamonds: int) -> tuple[int, int]:
    """(cash, diamonds redeemed): the value floored to a cent, and the fewest diamonds worth
    at least that, by plain fractions."""
    value = Fraction(payable * diamonds, held)
    cash = (value // CENT) * CENT
    redeemed = 0
    while cash and Fraction(payable * redeemed, held) < cash:
        redeemed += 1
    return int(cash), redeemed


@dataclass
class Model:
    creators: dict[str, ModelCreator] = field(
        default_factory=lambda: {c: ModelCreator() for c in CREATORS}
    )
    payouts: list[ModelPayout] = field(default_factory=list)
    in_transit: int = 0
    bank: int = 0
    redeemed: int = 0
    actions: list[tuple[PayoutAction, str]] = field(default_factory=list)
    """Finance actions that succeeded, with the payout status right after them."""

    def gift(self, creator: str, diamonds: int, diamond_value: int) -> None:
        self.creators[creator].pending += diamonds
        self.creators[creator].payable += diamonds * diamond_value

    def release(self, creator: str) -> None:
        """What is due is released: every gift is held for no time."""
        model = self.creators[creator]
        model.available += model.pending
        model.pending = 0

    def request(self, payout: ModelPayout) -> None:
        """A payout requested: what was due released first, then its diamonds reserved."""
        self.release(payout.creator)
        model = self.creators[payout.creator]
        assert payout.diamonds <= model.available, (payout, model)
        model.available -= payout.diamonds
        model.reserved += payout.diamonds
        self.payouts.append(payout)

    def advance(self, action: PayoutAction, payout: ModelPayout) -> None:
        moves = phase_moves(action.phase, payout)
        creator = self.creators[payout.creator]
        creator.reserved += moves.reserved
        creator.available += moves.available
        creator.payable += moves.payable
        self.redeemed += moves.redeemed
        self.in_transit += moves.in_transit
        self.bank += moves.bank
        assert min(creator.reserved, creator.available, self.in_transit) >= 0, (creator, self)
        payout.status = str(action.phase)
        self.actions.append((action, payout.status))
