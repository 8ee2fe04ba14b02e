"""Payouts, proved on random histories against a model, TigerBeetle-auditor style.

A Hypothesis state machine sends two creators gifts under two rate cards (so their average value
per diamond is rarely a round number), has them request payouts of any size (some more than
they hold, some below the minimum, some retried under their idempotency key), and has finance
send, pay, fail and reject them in any order, valid or not, retrying some actions. Beside
PostgreSQL it keeps a plain model of each creator's diamonds by state and payable, the cash in
transit, paid from the bank and redeemed, with its own arithmetic for whole-cent cash
(``payout_model``); after every step the books equal the model and the integrity check finds
nothing (``payout_checks``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from sqlalchemy.engine import URL

from accounting.gifts.posting import GiftRequest
from accounting.gifts.rules import CoinRates
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger.posting import in_transaction
from accounting.payouts.errors import (
    BelowPayoutMinimum,
    InsufficientDiamonds,
    InvalidPayoutTransition,
)
from accounting.payouts.rules import PayoutPhase
from accounting.payouts.service import PayoutAction, PayoutPolicy
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseRequest, PurchaseService
from tests.payouts.support import ReadyCreator, make_ready, payout_service
from tests.properties import seeds
from tests.properties.harness import DatabaseMachine, Runs, run_machine
from tests.properties.payout_checks import check_books
from tests.properties.payout_model import (
    CENT,
    CREATORS,
    GIFTS,
    MINIMUM_MICROS,
    NEXT,
    PHASES,
    RATE_CARDS,
    Model,
    ModelPayout,
    model_cash,
)

RUNS = Runs(
    must_reach=(
        "requested",
        "requested, a remainder kept",
        "request refused: insufficient diamonds",
        "request refused: below the minimum",
        "request replayed",
        *sorted({str(phase) for phase in PHASES}),  # every action finance takes
        "action replayed",
    ),
    max_examples=15,
    stateful_step_count=25,
    seed=seeds.PAYOUT_MACHINE,
)


class PayoutMachine(DatabaseMachine):
    def __init__(self) -> None:
        super().__init__()
        self.gifts = {
            card: GiftService(
                self.sessions,
                functional_currency="USD",
                rates=CoinRates(Decimal(1), value),
                hold=timedelta(0),
            )
            for card, value in RATE_CARDS.items()
        }
        self.payouts = payout_service(
            self.sessions, PayoutPolicy(minimum_minor=MINIMUM_MICROS // CENT, daily_cap_minor=10**9)
        )
        self.model = Model()
        self._ana_buys_coins()
        self.streams = {creator: self.run(self._go_live(creator)) for creator in CREATORS}
        self.ready: dict[str, ReadyCreator] = {
            creator: self.run(make_ready(self.sessions, creator)) for creator in CREATORS
        }
        for creator in CREATORS:  # something to pay out from the start, at a mixed average
            self.gift(creator, "galaxy", 5, "standard")
            self.gift(creator, "galaxy", 2, "odd")

    def _ana_buys_coins(self) -> None:
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

    async def _go_live(self, creator: str) -> int:
        stream = await in_transaction(self.sessions, lambda s: start_stream(s, creator, "live"))
        return stream.id

    async def audit(self) -> None:
        await check_books(self.sessions, self.model)

    @rule(
        creator=st.sampled_from(CREATORS),
        gift=st.sampled_from(sorted(GIFTS)),
        quantity=st.integers(1, 3),
        card=st.sampled_from(sorted(RATE_CARDS)),
    )
    def gift(self, creator: str, gift: str, quantity: int, card: str) -> None:
        request = GiftRequest("ana", self.key(), self.streams[creator], gift, quantity)
        self.run(self.gifts[card].send_gift(request))
        self.model.gift(creator, GIFTS[gift] * quantity, RATE_CARDS[card])

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
            self.saw("request refused: insufficient diamonds")
            return
        except BelowPayoutMinimum:
            assert diamonds <= model.available + model.pending
            assert model_cash(model.payable, model.held, diamonds)[0] < MINIMUM_MICROS
            self.saw("request refused: below the minimum")
            return
        cash, redeemed = model_cash(model.payable, model.held, diamonds)
        assert diamonds <= model.available + model.pending and cash >= MINIMUM_MICROS
        payout = result.payout
        assert (payout.amount_micros, payout.diamonds) == (cash, redeemed)
        self.saw("requested" if redeemed == diamonds else "requested, a remainder kept")
        self.model.request(ModelPayout(payout.id, creator, key, diamonds, redeemed, cash))

    @precondition(lambda self: self.model.payouts)
    @rule(data=st.data())
    def retry_request(self, data: st.DataObject) -> None:
        payout = data.draw(st.sampled_from(self.model.payouts))
        ready = self.ready[payout.creator]
        result = self.run(
            self.payouts.request_payout(ready.request(payout.key, payout.diamonds_requested))
        )
        assert result.replayed and result.payout.id == payout.id
        self.saw("request replayed")
        # a retry releases what is due before it finds the first payout, as any request does
        self.model.release(payout.creator)

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
            self.saw(f"refused: {payout.status} cannot be {phase}")
            return
        assert payout.status == NEXT[phase] and not result.replayed
        self.model.advance(action, payout)
        self.saw(str(phase))

    @precondition(lambda self: self.model.actions)
    @rule(data=st.data())
    def retry_action(self, data: st.DataObject) -> None:
        action, _ = data.draw(st.sampled_from(self.model.actions))
        result = self.run(self.payouts.advance(action))
        current = next(p for p in self.model.payouts if p.id == action.payout_id)
        assert result.replayed and result.payout.status == current.status
        self.saw("action replayed")


def test_payout_books_match_the_model_after_every_step(server_url: URL, template_url: URL) -> None:
    run_machine(PayoutMachine, server_url, template_url, RUNS)
