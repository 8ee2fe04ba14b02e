"""Payouts, proved on random histories against a model, TigerBeetle-auditor style.

A Hypothesis state machine sends two creators gifts under two rate cards (so their average value
per diamond is rarely a round number), has them request payouts of any size (some more than
they hold, some below the minimum, some retried under their idempotency key), and has finance
send, pay, fail and reject them in any order, valid or not, retrying some actions. Beside
PostgreSQL it keeps a plain model of each creator's diamonds by state and payable, the cash in
transit, paid from the bank and redeemed, with its own arithmetic for whole-cent cash; after
every step the books equal the model and the integrity check finds nothing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from accounting import chart
from accounting.balances import account_balance
from accounting.earnings import creator_balances
from accounting.errors import BelowPayoutMinimum, InsufficientDiamonds, InvalidPayoutTransition
from accounting.gifts import GiftRequest, GiftService
from accounting.integrity import check_integrity
from accounting.ledger import in_transaction
from accounting.payments.sandbox import SandboxGateway
from accounting.payouts import PayoutAction, PayoutPolicy, PayoutService
from accounting.posting_rules import CoinRates, PayoutPhase
from accounting.purchases import PurchaseRequest, PurchaseService
from accounting.streams import start_stream
from api.database import create_engine, session_factory
from tests.conftest import drop_database, new_database
from tests.payouts import ReadyCreator, make_ready

T = TypeVar("T")
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


def model_cash(payable: int, held: int, diamonds: int) -> tuple[int, int]:
    """(cash, diamonds redeemed): the value floored to a cent, and the fewest diamonds worth
    at least that, by plain fractions."""
    value = Fraction(payable * diamonds, held)
    cash = (value // CENT) * CENT
    redeemed = 0
    while cash and Fraction(payable * redeemed, held) < cash:
        redeemed += 1
    return int(cash), redeemed


class PayoutMachine(RuleBasedStateMachine):
    server_url: ClassVar[URL]
    template_url: ClassVar[URL]
    outcomes: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.url = new_database(self.server_url, self.template_url)
        self.engine: AsyncEngine = self.run(self._open_engine())
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        self.gifts = {
            card: GiftService(
                self.sessions,
                functional_currency="USD",
                rates=CoinRates(Decimal(1), value),
                hold=timedelta(0),
            )
            for card, value in RATE_CARDS.items()
        }
        self.payouts = PayoutService(
            self.sessions,
            functional_currency="USD",
            policy=PayoutPolicy(minimum_minor=MINIMUM_MICROS // CENT, daily_cap_minor=10**9),
        )
        self.model = Model()
        self.numbers = itertools.count(1)
        purchases = PurchaseService(
            self.sessions, SandboxGateway(self.sessions), functional_currency="USD"
        )
        for n in range(5):
            bought = self.run(
                purchases.purchase_coins(
                    PurchaseRequest(
                        "ana",
                        f"ana-buys-{n}",
                        "USD",
                        "web",
                        "card",
                        "tok_success",
                        package_code="coins_17500",
                    )
                )
            )
            assert bought.purchase.status == "completed"
        self.streams = {creator: self.run(self._go_live(creator)) for creator in CREATORS}
        self.ready: dict[str, ReadyCreator] = {
            creator: self.run(make_ready(self.sessions, creator)) for creator in CREATORS
        }
        for creator in CREATORS:  # something to pay out from the start, at a mixed average
            self.gift(creator, "galaxy", 5, "standard")
            self.gift(creator, "galaxy", 2, "odd")

    async def _go_live(self, creator: str) -> int:
        stream = await in_transaction(self.sessions, lambda s: start_stream(s, creator, "live"))
        return stream.id

    async def _open_engine(self) -> AsyncEngine:
        return create_engine(self.url, pool_size=4, max_overflow=4)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def key(self) -> str:
        return f"key-{next(self.numbers):08d}"

    def teardown(self) -> None:
        try:
            self.run(self.engine.dispose())
        finally:
            self.loop.close()
            drop_database(self.server_url, self.url)

    @rule(
        creator=st.sampled_from(CREATORS),
        gift=st.sampled_from(sorted(GIFTS)),
        quantity=st.integers(1, 3),
        card=st.sampled_from(sorted(RATE_CARDS)),
    )
    def gift(self, creator: str, gift: str, quantity: int, card: str) -> None:
        request = GiftRequest("ana", self.key(), self.streams[creator], gift, quantity)
        self.run(self.gifts[card].send_gift(request))
        diamonds = GIFTS[gift] * quantity
        self.model.creators[creator].pending += diamonds
        self.model.creators[creator].payable += diamonds * RATE_CARDS[card]

    @rule(
        creator=st.sampled_from(CREATORS),
        diamonds=st.one_of(st.integers(2_100, 7_000), st.integers(1, 2_100)),
    )
    def request_payout(self, creator: str, diamonds: int) -> None:
        model = self.model.creators[creator]
        key = self.key()
        try:
            result = self.run(
                self.payouts.request_payout(self.ready[creator].request(key, diamonds))
            )
        except InsufficientDiamonds:
            assert diamonds > model.available + model.pending
            self.outcomes["request refused: insufficient diamonds"] += 1
            return
        except BelowPayoutMinimum:
            assert diamonds <= model.available + model.pending
            assert model_cash(model.payable, model.held, diamonds)[0] < MINIMUM_MICROS
            self.outcomes["request refused: below the minimum"] += 1
            return
        cash, redeemed = model_cash(model.payable, model.held, diamonds)
        assert diamonds <= model.available + model.pending and cash >= MINIMUM_MICROS
        payout = result.payout
        assert (payout.amount_micros, payout.diamonds) == (cash, redeemed)
        self.outcomes["requested" if redeemed == diamonds else "requested, a remainder kept"] += 1
        model.available += model.pending - redeemed
        model.pending = 0
        model.reserved += redeemed
        self.model.payouts.append(ModelPayout(payout.id, creator, key, diamonds, redeemed, cash))

    @precondition(lambda self: self.model.payouts)
    @rule(data=st.data())
    def retry_request(self, data: st.DataObject) -> None:
        payout = data.draw(st.sampled_from(self.model.payouts))
        ready = self.ready[payout.creator]
        result = self.run(
            self.payouts.request_payout(ready.request(payout.key, payout.diamonds_requested))
        )
        assert result.replayed and result.payout.id == payout.id
        self.outcomes["request replayed"] += 1
        # a retry releases what is due before it finds the first payout, as any request does
        creator = self.model.creators[payout.creator]
        creator.available += creator.pending
        creator.pending = 0

    @precondition(lambda self: self.model.payouts)
    @rule(data=st.data(), phase=st.sampled_from(PHASES))
    def advance(self, data: st.DataObject, phase: PayoutPhase) -> None:
        """Any action on any payout: in order or not."""
        self._advance(data.draw(st.sampled_from(self.model.payouts)), phase)

    @precondition(lambda self: any(p.status in ("requested", "sent") for p in self.model.payouts))
    @rule(data=st.data(), forward=st.booleans())
    def resolve_in_flight(self, data: st.DataObject, forward: bool) -> None:
        """The next phase of a payout in flight: sent or rejected, then paid or failed."""
        in_flight = [p for p in self.model.payouts if p.status in ("requested", "sent")]
        payout = data.draw(st.sampled_from(in_flight))
        if payout.status == "requested":
            phase = PayoutPhase.SENT if forward else PayoutPhase.REJECTED
        else:
            phase = PayoutPhase.PAID if forward else PayoutPhase.FAILED
        self._advance(payout, phase)

    def _advance(self, payout: ModelPayout, phase: PayoutPhase) -> None:
        action = PayoutAction(payout.id, phase, "user:fiona", self.key(), reason="because")
        try:
            result = self.run(self.payouts.advance(action))
        except InvalidPayoutTransition:
            assert payout.status != NEXT[phase]
            self.outcomes[f"refused: {payout.status} cannot be {phase}"] += 1
            return
        assert payout.status == NEXT[phase] and not result.replayed
        creator = self.model.creators[payout.creator]
        if phase is PayoutPhase.REJECTED:
            creator.reserved -= payout.diamonds
            creator.available += payout.diamonds
        elif phase is PayoutPhase.SENT:
            creator.reserved -= payout.diamonds
            creator.payable -= payout.cash
            self.model.redeemed += payout.diamonds
            self.model.in_transit += payout.cash
        elif phase is PayoutPhase.PAID:
            self.model.in_transit -= payout.cash
            self.model.bank -= payout.cash
        else:
            creator.available += payout.diamonds
            creator.payable += payout.cash
            self.model.redeemed -= payout.diamonds
            self.model.in_transit -= payout.cash
        payout.status = str(phase)
        self.model.actions.append((action, payout.status))
        self.outcomes[str(phase)] += 1

    @precondition(lambda self: self.model.actions)
    @rule(data=st.data())
    def retry_action(self, data: st.DataObject) -> None:
        action, _ = data.draw(st.sampled_from(self.model.actions))
        result = self.run(self.payouts.advance(action))
        current = next(p for p in self.model.payouts if p.id == action.payout_id)
        assert result.replayed and result.payout.status == current.status
        self.outcomes["action replayed"] += 1

    @invariant()
    def books_match_the_model(self) -> None:
        self.run(self._check_books())

    async def _check_books(self) -> None:
        async with self.sessions() as session:
            for creator, model in self.model.creators.items():
                found = await creator_balances(session, creator, "USD")
                assert (
                    found.diamonds_pending,
                    found.diamonds_available,
                    found.diamonds_reserved,
                    found.payable_micros,
                ) == (model.pending, model.available, model.reserved, model.payable), creator
            for spec, expected in (
                (chart.payouts_in_transit("USD"), self.model.in_transit),
                (chart.bank("USD"), self.model.bank),
                (chart.diamonds_redeemed(), -self.model.redeemed),
            ):
                balance = await account_balance(session, spec.code)
                assert (balance.balance if balance else 0) == expected, spec.code
        async with self.sessions() as session, session.begin():
            report = await check_integrity(session)
        assert report.violations == []


@pytest.fixture
def payout_machine(server_url: URL, template_url: URL) -> type[PayoutMachine]:
    PayoutMachine.server_url = server_url
    PayoutMachine.template_url = template_url
    PayoutMachine.outcomes = Counter()
    return PayoutMachine


def test_payout_books_match_the_model_after_every_step(
    payout_machine: type[PayoutMachine],
) -> None:
    run_state_machine_as_test(
        payout_machine,
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    outcomes = payout_machine.outcomes
    print(dict(sorted(outcomes.items())))
    for path in (
        "requested",
        "requested, a remainder kept",
        "request refused: insufficient diamonds",
        "request refused: below the minimum",
        "request replayed",
        "sent",
        "paid",
        "failed",
        "rejected",
        "action replayed",
    ):
        assert outcomes[path] > 0, (path, dict(outcomes))
