"""Spending coins, refunding and taking them back, and paying creators out, proved on random
histories against a model, TigerBeetle-auditor style.

A Hypothesis state machine buys coins (every currency, channel and provider; the bonus-coin
package too; some declined), sends gifts of every type and many quantities (some unaffordable,
some to an ended stream or to oneself, some draining the wallet to its last coin, some from a
frozen account) under two rate cards and two holds, unlocks features, releases holds by the job
and on read, retries gifts and unlocks under their idempotency key and reuses keys for other
requests. Support refunds purchases (the refund check's every reason predicted), freezes
accounts and lifts freezes. Providers take purchases back through signed events, each in its
own words (card disputes opened, won and lost, with fees; refunds made at the processor; Apple
refunds; Google voids; some for the wrong amount or an unknown charge; every one delivered again
now and then), with either loss policy. Creators request payouts and finance sends, pays, fails
and rejects them.

Beside PostgreSQL it keeps a plain model of every wallet, creator, receivable, clearing and
revenue account (``gift_model``); each reply is checked against what the model predicts, and
after every step the books are checked against the model (``gift_checks``) and the integrity
check finds nothing.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule
from sqlalchemy.engine import URL

from accounting.chargebacks.provider_events import (
    Accepted,
    accept_event,
    read_event,
    sign,
    verify_signature,
)
from accounting.chargebacks.rules import LossPolicy
from accounting.chargebacks.service import ChargebackKind, Outcome
from accounting.gifts.errors import SelfGift, StreamNotLive
from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest, GiftResult
from accounting.gifts.service import FeatureRequest, GiftService
from accounting.gifts.streams import end_stream, start_stream
from accounting.ledger.errors import (
    AccountFrozen,
    IdempotencyKeyReused,
    InsufficientCoins,
    LedgerError,
)
from accounting.ledger.posting import in_transaction
from accounting.payouts.errors import (
    BelowPayoutMinimum,
    InsufficientDiamonds,
    InvalidPayoutTransition,
)
from accounting.payouts.rules import PayoutPhase
from accounting.payouts.service import PayoutAction
from accounting.policy.standing import set_frozen
from accounting.purchases.fees import CHANNEL_PROVIDERS, fee_schedules
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseService
from accounting.refunds.errors import RefundNotAllowed
from accounting.refunds.service import RefundPolicy, RefundRequest, RefundResult, refund_purchase
from tests.chargebacks.deliveries import apple_refund, dispute, google_voided, provider_refund
from tests.payouts.support import ReadyCreator, make_ready, payout_service
from tests.properties import seeds
from tests.properties.gift_checks import check_books, check_chargeback, clawed_gifts
from tests.properties.gift_model import (
    CREATORS,
    FEATURE_PRICES,
    FUNCTIONAL,
    GIFT_PRICES,
    PAYOUTS,
    PEOPLE,
    PROCESSORS,
    RATE_CARDS,
    VIEWERS,
    Model,
    ModelChargeback,
    ModelGift,
    ModelPurchase,
    ModelUnlock,
    model_diamonds,
    model_payout,
)
from tests.properties.harness import DatabaseMachine, Runs, run_machine
from tests.properties.ledger_model import CUSTOM_PRICES, PRICES, Order
from tests.properties.payout_model import CENT, NEXT, PHASES, ModelPayout

HOLDS = {"no hold": timedelta(0), "a day": timedelta(days=1)}
REFUND_POLICIES = {
    "in the window": RefundPolicy(),
    "after the window": RefundPolicy(window=timedelta(0)),
}
DISPUTE_FEES = (0, 0, 1_500)
"""A dispute's fee in the purchase currency's minor units: most come without one."""
SUPPORT = "user:sam"
FINANCE = "user:fiona"
WEBHOOK_SECRET = "whsec_model"

RUNS = Runs(
    # the paths that matter (derandomized: the same runs every time)
    must_reach=(
        "gift sent",
        "gift refused: insufficient coins",
        "gift emptied the wallet",
        "burst of gifts in one batch",
        "released by the job",
        "released by reading",
        "feature unlocked",
        "gift refused: account frozen",
        "refunded",
        "refund refused: ACCOUNT_FROZEN",
        "provider event: charged_back",
        "charged back: coins held and coins spent",
        "charged back: diamonds clawed back from gifts in their hold",
        "charged back: spent coins traced to an unlock or a released gift",
        "provider event: dispute_won",
        "provider event: dispute_lost",
        "provider event delivered again",
        "freeze lifted",
        "payout requested",
    ),
    max_examples=20,
    stateful_step_count=60,
    seed=seeds.GIFT_MACHINE,
)


@st.composite
def orders(draw: st.DrawFn) -> Order:
    """Completed purchases: the bonus-coin package often, any package, currency, channel and
    provider, or a custom amount on the web."""
    user = draw(st.sampled_from(VIEWERS))
    choice = draw(st.integers(0, 3))
    if choice == 0:
        channel = draw(st.sampled_from(sorted(CHANNEL_PROVIDERS)))
        provider = draw(st.sampled_from(CHANNEL_PROVIDERS[channel]))
        return Order(user, "USD", channel, provider, "tok_success", "coins_17500", None)
    if choice == 1:
        currency = draw(st.sampled_from(sorted(CUSTOM_PRICES)))
        coins = draw(st.integers(CUSTOM_PRICES[currency][1], 2_000))
        provider = draw(st.sampled_from(CHANNEL_PROVIDERS["web"]))
        return Order(user, currency, "web", provider, "tok_success", None, coins)
    currency, package = draw(st.sampled_from(sorted(PRICES)))
    channel = draw(st.sampled_from(sorted(CHANNEL_PROVIDERS)))
    provider = draw(st.sampled_from(CHANNEL_PROVIDERS[channel]))
    return Order(user, currency, channel, provider, "tok_success", package, None)


@dataclass(eq=False)
class Delivery:
    provider: str
    event: dict[str, Any]
    outcome: str


def event_taking_back(
    purchase: ModelPurchase, reference: str, how: str, fee: int
) -> tuple[ChargebackKind, int | None, str, dict[str, Any]]:
    """A provider's event taking the purchase under ``reference`` back, in its own words: the
    kind of chargeback, the amount it names (none: app stores take the whole purchase), the
    dispute's case (if it is one) and the event."""
    amount: int | None = purchase.price_minor + (1 if how == "wrong amount" else 0)
    currency = purchase.currency.lower()
    case_id = ""
    if purchase.provider == "apple":
        kind, amount, event = ChargebackKind.APP_STORE_REFUND, None, apple_refund(reference)
    elif purchase.provider == "google":
        kind, amount, event = ChargebackKind.VOIDED, None, google_voided(reference)
    elif how == "refunded at the provider":
        assert amount is not None
        kind = ChargebackKind.PROVIDER_REFUND
        event = provider_refund(reference, amount=amount, currency=currency)
    else:
        assert amount is not None
        kind, case_id = ChargebackKind.DISPUTE, f"dp_{purchase.id}"
        event = dispute(reference, amount=amount, currency=currency, fee=fee, dispute_id=case_id)
    return kind, amount, case_id, event


class GiftMachine(DatabaseMachine):
    def __init__(self) -> None:
        super().__init__()
        self.purchases = PurchaseService(
            self.sessions, SandboxGateway(self.sessions), functional_currency=FUNCTIONAL
        )
        self.fees = fee_schedules()
        self.services = {
            (card, hold): GiftService(
                self.sessions, functional_currency=FUNCTIONAL, rates=rates, hold=held_for
            )
            for card, rates in RATE_CARDS.items()
            for hold, held_for in HOLDS.items()
        }
        self.payouts = payout_service(self.sessions, PAYOUTS)
        self.model = Model()
        self.streams: dict[str, int] = {}
        """creator -> their live stream (every creator is always live)."""
        self.ended: list[tuple[str, int]] = []
        self.deliveries: list[Delivery] = []
        """Provider events accepted, to deliver again."""
        for creator in CREATORS:
            self._go_live(creator)
        self.ready: dict[str, ReadyCreator] = {
            creator: self.run(make_ready(self.sessions, creator)) for creator in CREATORS
        }

    async def audit(self) -> None:
        await check_books(self.sessions, self.model)

    # -----------------------------------------------------------------------------------------
    # Coins in
    # -----------------------------------------------------------------------------------------

    @initialize(
        bought=st.lists(orders(), min_size=1, max_size=4),
        gifts=st.lists(
            st.tuples(
                st.sampled_from(VIEWERS),
                st.sampled_from(CREATORS),
                st.sampled_from(sorted(g for g, price in GIFT_PRICES.items() if price <= 100)),
                st.integers(1, 40),
                st.sampled_from(sorted(HOLDS)),
            ),
            max_size=6,
        ),
    )
    def viewers_buy_coins_and_send_gifts_first(
        self, bought: list[Order], gifts: list[tuple[str, str, str, int, str]]
    ) -> None:
        """Coins to spend, refund and take back, and diamonds to claw back and pay out, from
        the first step."""
        for order in bought:
            self.buy_coins(order, declined=1)
        for sender, creator, gift, quantity, hold in gifts:
            self._send(sender, creator, gift, quantity, "default", hold)

    @rule(order=orders(), declined=st.integers(0, 5))
    def buy_coins(self, order: Order, declined: int) -> None:
        """A purchase, now and then declined; a frozen account may not buy."""
        if declined == 0:
            order = replace(order, token="tok_declined")
        try:
            result = self.run(self.purchases.purchase_coins(order.request(self.key())))
        except AccountFrozen:
            assert order.user_id in self.model.frozen
            self.saw("purchase refused: account frozen")
            return
        assert order.user_id not in self.model.frozen
        bought = result.purchase
        assert bought.coins + bought.bonus_coins == order.coins
        # a buyer who owes after a chargeback repays it first, for proportionally fewer coins
        repaid, granted = self.model.repayment(order.user_id, order.coins, order.value_micros)
        if bought.status != "completed":
            repaid, granted = 0, order.coins
        assert (bought.receivable_repaid_micros, bought.coins_withheld) == (
            repaid,
            order.coins - granted,
        )
        if repaid:
            self.saw("bought while owing: the receivable repaid first")
        assert (bought.provider, bought.currency, bought.price_minor) == (
            order.provider,
            order.currency,
            order.price_minor,
        )
        assert bought.provider_reference is not None
        purchase = ModelPurchase(
            id=bought.id,
            user=order.user_id,
            provider=order.provider,
            currency=order.currency,
            price_minor=order.price_minor,
            coins=granted,
            value=order.value_micros - repaid,
            repaid=repaid,
            reference=bought.provider_reference,
            completed=bought.status == "completed",
            since=len(self.model.spending[order.user_id]),
        )
        self.model.purchases.append(purchase)
        if declined == 0:
            assert bought.status == "failed", bought.status
            self.saw("purchase declined")
            return
        assert bought.status == "completed", bought.failure_code
        self.saw("bought the bonus package" if order.package_code == "coins_17500" else "bought")
        fee = self.fees[order.provider].fee_minor(order.price_minor, order.currency)
        self.model.bought(purchase, fee)

    # -----------------------------------------------------------------------------------------
    # Streams
    # -----------------------------------------------------------------------------------------

    def _go_live(self, creator: str) -> None:
        stream = self.run(
            in_transaction(self.sessions, lambda s: start_stream(s, creator, "live now"))
        )
        self.streams[creator] = stream.id

    @precondition(lambda self: len(self.ended) < 3)
    @rule(creator=st.sampled_from(CREATORS))
    def end_stream_and_start_another(self, creator: str) -> None:
        stream_id = self.streams[creator]
        self.run(in_transaction(self.sessions, lambda s: end_stream(s, creator, stream_id)))
        self.ended.append((creator, stream_id))
        self._go_live(creator)
        self.saw("stream ended")

    @precondition(lambda self: bool(self.ended))
    @rule(data=st.data(), sender=st.sampled_from(VIEWERS))
    def gift_to_an_ended_stream(self, data: st.DataObject, sender: str) -> None:
        creator, stream_id = data.draw(st.sampled_from(self.ended))
        request = GiftRequest(sender, self.key(), stream_id, "rose", 1)
        refused = SelfGift if sender == creator else StreamNotLive
        with pytest.raises(refused):
            self.run(self.services[("default", "no hold")].send_gift(request))
        self.saw(f"gift refused: {refused.code}")

    # -----------------------------------------------------------------------------------------
    # Gifts
    # -----------------------------------------------------------------------------------------

    @rule(
        sender=st.sampled_from(VIEWERS),
        creator=st.sampled_from(CREATORS),
        gift=st.sampled_from(sorted(GIFT_PRICES)),
        quantity=st.one_of(st.integers(1, 5), st.integers(1, 9_999)),
        card=st.sampled_from(sorted(RATE_CARDS)),
        hold=st.sampled_from(sorted(HOLDS)),
    )
    def send_any_gift(
        self, sender: str, creator: str, gift: str, quantity: int, card: str, hold: str
    ) -> None:
        """Any gift in any quantity: many are more than the sender holds."""
        self._send(sender, creator, gift, quantity, card, hold)

    def _can_spend(self) -> list[str]:
        return [v for v in VIEWERS if self.model.coins[v] and v not in self.model.frozen]

    @precondition(lambda self: bool(self._can_spend()))
    @rule(
        data=st.data(),
        drain=st.booleans(),
        card=st.sampled_from(sorted(RATE_CARDS)),
        hold=st.sampled_from(sorted(HOLDS)),
    )
    def send_affordable_gift(self, data: st.DataObject, drain: bool, card: str, hold: str) -> None:
        """A gift the sender can pay for, to a creator other than themselves; with ``drain``,
        roses for every coin the sender holds (down to the last coin)."""
        sender = data.draw(st.sampled_from(self._can_spend()))
        creator = data.draw(st.sampled_from([c for c in CREATORS if c != sender]))
        held = self.model.coins[sender]
        if drain:
            while held:
                self._send(sender, creator, "rose", min(held, 9_999), card, hold)
                held = self.model.coins[sender]
            return
        gift = data.draw(st.sampled_from([g for g, p in GIFT_PRICES.items() if p <= held]))
        most = min(held // GIFT_PRICES[gift], 9_999)
        quantity = data.draw(st.one_of(st.integers(1, min(most, 5)), st.just(most)))
        self._send(sender, creator, gift, quantity, card, hold)

    @rule(
        gifts=st.lists(
            st.tuples(
                st.sampled_from(VIEWERS),
                st.sampled_from(CREATORS),
                st.sampled_from(sorted(GIFT_PRICES)),
                st.integers(1, 40),
            ),
            min_size=2,
            max_size=8,
        ),
        card=st.sampled_from(sorted(RATE_CARDS)),
        hold=st.sampled_from(sorted(HOLDS)),
    )
    def send_a_burst_of_gifts(
        self, gifts: list[tuple[str, str, str, int]], card: str, hold: str
    ) -> None:
        """Several gifts at once through one service: they share a batch, and each must come
        out exactly as if they had been sent one after another in the order they were sent
        (a sender's later gift sees what the earlier ones spent)."""
        requests = [
            GiftRequest(sender, self.key(), self.streams[creator], gift, quantity)
            for sender, creator, gift, quantity in gifts
        ]
        service = self.services[(card, hold)]
        batches_before = service.batches.batches_written

        async def burst() -> list[GiftResult | BaseException]:
            return await asyncio.gather(
                *(service.send_gift(request) for request in requests), return_exceptions=True
            )

        outcomes = self.run(burst())
        assert service.batches.batches_written == batches_before + 1
        for (_, creator, _, _), request, outcome in zip(gifts, requests, outcomes, strict=True):
            self._expect(request, creator, card, hold, outcome)
        self.saw("burst of gifts in one batch")

    def _send(
        self, sender: str, creator: str, gift: str, quantity: int, card: str, hold: str
    ) -> None:
        request = GiftRequest(sender, self.key(), self.streams[creator], gift, quantity)
        service = self.services[(card, hold)]
        try:
            outcome: GiftResult | BaseException = self.run(service.send_gift(request))
        except LedgerError as refused:
            outcome = refused
        self._expect(request, creator, card, hold, outcome)

    def _expect(
        self,
        request: GiftRequest,
        creator: str,
        card: str,
        hold: str,
        outcome: GiftResult | BaseException,
    ) -> None:
        """Check one gift's outcome against the model, and apply it to the model."""
        sender, gift, quantity = request.sender_id, request.gift_code, request.quantity
        held = self.model.coins[sender]
        coins = GIFT_PRICES[gift] * quantity
        if isinstance(outcome, SelfGift):
            self.saw("gift refused: to oneself")
            assert sender == creator
            return
        if isinstance(outcome, AccountFrozen):
            self.saw("gift refused: account frozen")
            assert sender != creator and sender in self.model.frozen
            return
        assert sender not in self.model.frozen, (sender, outcome)
        if isinstance(outcome, InsufficientCoins):
            refused = outcome
            self.saw("gift refused: insufficient coins")
            assert sender != creator
            assert coins > held
            assert refused.facts == {"held": held, "needed": coins}
            assert refused.code == "INSUFFICIENT_COINS"
            return
        assert isinstance(outcome, GiftResult), outcome
        result = outcome
        assert sender != creator and coins <= held, (sender, creator, held)
        rates = RATE_CARDS[card]
        value = self.model.spend(sender, coins)
        diamonds = model_diamonds(coins, rates)
        payable = diamonds * rates.diamond_value_micros
        sent = result.gift
        assert not result.replayed
        assert (sent.creator_id, sent.coins, sent.value_micros, sent.diamonds) == (
            creator,
            coins,
            value,
            diamonds,
        )
        assert sent.payable_micros == payable
        due = HOLDS[hold] == timedelta(0) and diamonds > 0
        self.model.gave(ModelGift(sent.id, request, creator, coins, diamonds, payable, due), value)
        self.saw("gift sent")
        if payable > value:
            self.saw("gift partly paid by promotions")
        if not diamonds:
            self.saw("gift worth no whole diamond")
        if self.model.coins[sender] == 0:
            self.saw("gift emptied the wallet")

    @precondition(lambda self: bool(self.model.gifts))
    @rule(data=st.data(), card=st.sampled_from(sorted(RATE_CARDS)))
    def retry_gift(self, data: st.DataObject, card: str) -> None:
        """The same gift again (say, after a timeout): the first gift, nothing charged again,
        whatever the rates, the stream or the sender's standing are now."""
        gift = data.draw(st.sampled_from(self.model.gifts))
        result = self.run(self.services[(card, "no hold")].send_gift(gift.request))
        assert result.replayed
        assert result.gift.id == gift.id
        self.saw("gift retried")

    @precondition(lambda self: bool(self.model.gifts))
    @rule(data=st.data())
    def reuse_gift_key_for_another_gift(self, data: st.DataObject) -> None:
        gift = data.draw(st.sampled_from(self.model.gifts))
        other = replace(gift.request, quantity=gift.request.quantity % 9_999 + 1)
        with pytest.raises(IdempotencyKeyReused) as refused:
            self.run(self.services[("default", "no hold")].send_gift(other))
        assert refused.value.facts == {"gift_id": gift.id}
        self.saw("gift key reused: refused")

    # -----------------------------------------------------------------------------------------
    # Premium features
    # -----------------------------------------------------------------------------------------

    @precondition(lambda self: any(self.model.coins[v] for v in VIEWERS))
    @rule(data=st.data(), feature=st.sampled_from(sorted(FEATURE_PRICES)))
    def unlock_feature(self, data: st.DataObject, feature: str) -> None:
        """A viewer with coins unlocks a feature (some hold fewer coins than it costs, some
        are frozen)."""
        user = data.draw(st.sampled_from([v for v in VIEWERS if self.model.coins[v]]))
        request = FeatureRequest(user, self.key(), feature)
        coins, held = FEATURE_PRICES[feature], self.model.coins[user]
        try:
            result = self.run(self.services[("default", "no hold")].unlock_feature(request))
        except AccountFrozen:
            self.saw("unlock refused: account frozen")
            assert user in self.model.frozen
            return
        except InsufficientCoins as refused:
            self.saw("unlock refused: insufficient coins")
            assert user not in self.model.frozen
            assert coins > held
            assert refused.facts == {"held": held, "needed": coins}
            return
        assert coins <= held and user not in self.model.frozen
        value = self.model.spend(user, coins)
        assert (result.unlock.coins, result.unlock.value_micros) == (coins, value)
        assert not result.replayed
        self.model.unlocked(ModelUnlock(result.unlock.id, request, coins), value)
        self.saw("feature unlocked")

    @precondition(lambda self: bool(self.model.unlocks))
    @rule(data=st.data())
    def retry_unlock(self, data: st.DataObject) -> None:
        unlock = data.draw(st.sampled_from(self.model.unlocks))
        result = self.run(self.services[("generous", "a day")].unlock_feature(unlock.request))
        assert result.replayed and result.unlock.id == unlock.id
        self.saw("unlock retried")

    # -----------------------------------------------------------------------------------------
    # Holds
    # -----------------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.model.due()))
    @rule(limit=st.integers(1, 5))
    def release_holds_by_the_job(self, limit: int) -> None:
        """The release job, in batches of ``limit`` gifts: one entry per creator per batch."""
        self._release(None, limit)

    @precondition(lambda self: bool(self.model.due()))
    @rule(data=st.data(), limit=st.integers(1, 5))
    def release_holds_on_read(self, data: st.DataObject, limit: int) -> None:
        """A creator with gifts due reads their balances: what is due to them is released
        first, in batches of ``limit`` gifts."""
        creator = data.draw(st.sampled_from(sorted({g.creator for g in self.model.due()})))
        self._release(creator, limit)

    def _release(self, creator: str | None, limit: int) -> None:
        due = self.model.due(creator)
        released = self.run(release_due(self.sessions, creator_id=creator, limit=limit))
        assert released == len(due)
        for start in range(0, len(due), limit):
            self.model.release(due[start : start + limit])
        if due:
            self.saw(f"released by {'the job' if creator is None else 'reading'}")
        if any(self.model.diamonds_left(g) < g.diamonds for g in due):
            self.saw("released a gift less what chargebacks clawed back")

    # -----------------------------------------------------------------------------------------
    # Refunds
    # -----------------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.model.purchases))
    @rule(data=st.data(), task=st.sampled_from(["refund", "refund", "refund", "standing"]))
    def support_steps_in(self, data: st.DataObject, task: str) -> None:
        """Support refunds a purchase, or lifts a freeze (or freezes an account)."""
        if task == "refund":
            self._refund(data)
        else:
            self._set_standing(data)

    def _refund(self, data: st.DataObject) -> None:
        """Support refunds a purchase (with ``refundable``, one the model says may be): the
        refund check's every reason against it must be the model's, and a refund it allows
        moves what the model says; the same request again gives the first refund back."""
        refundable = data.draw(st.sampled_from([True, True, False]), label="refundable")
        again = data.draw(st.booleans(), label="again")
        purchases = self.model.purchases
        allowed = [p for p in purchases if not self.model.refund_blocks(p, in_window=True)]
        if refundable and allowed:
            policy, purchase = "in the window", data.draw(st.sampled_from(allowed))
        else:
            policy = data.draw(st.sampled_from(sorted(REFUND_POLICIES)), label="policy")
            purchase = data.draw(st.sampled_from(purchases))
        in_window = policy == "in the window"
        blocks = self.model.refund_blocks(purchase, in_window=in_window)
        request = RefundRequest(purchase.id, self.key(), SUPPORT, "asked for it back")

        def refund() -> RefundResult:
            return self.run(
                refund_purchase(
                    self.sessions,
                    request,
                    policy=REFUND_POLICIES[policy],
                    functional_currency=FUNCTIONAL,
                )
            )

        try:
            result = refund()
        except RefundNotAllowed as refused:
            assert set(refused.facts["reasons"]) == blocks, (refused.facts, blocks)
            for block in sorted(blocks):
                self.saw(f"refund refused: {block}")
            return
        assert not blocks, blocks
        released = self.model.refund(purchase)
        refunded = result.refund
        assert not result.replayed
        assert (
            refunded.purchase_id,
            refunded.coins,
            refunded.cash_minor,
            refunded.value_released_micros,
            refunded.contra_revenue_micros,
        ) == (
            purchase.id,
            purchase.coins,
            purchase.price_minor,
            released,
            purchase.value - released,
        )
        self.saw("refunded")
        if purchase.chargeback is not None:
            self.saw("refunded after a dispute won")
        if again:
            replayed = refund()
            assert replayed.replayed and replayed.refund.id == refunded.id
            self.saw("refund replayed")

    # -----------------------------------------------------------------------------------------
    # Chargebacks, from signed provider events
    # -----------------------------------------------------------------------------------------

    def deliver(self, provider: str, event: dict[str, Any], policy: LossPolicy) -> Accepted:
        """A provider's signed delivery, verified, read and accepted as the webhook does."""
        body = json.dumps(event).encode()
        now = datetime.now(UTC)
        signed_at = verify_signature(
            sign(WEBHOOK_SECRET, int(now.timestamp()), body),
            body,
            secret=WEBHOOK_SECRET,
            now=now,
            tolerance_seconds=300,
        )
        return self.run(
            accept_event(
                self.sessions,
                read_event(provider, body),
                signed_at=signed_at,
                functional_currency=FUNCTIONAL,
                loss_policy=policy,
            )
        )

    @precondition(lambda self: bool(self.model.purchases))
    @rule(
        data=st.data(),
        event=st.sampled_from(
            ["take back", "take back", "dispute from start to end", "close a dispute", "again"]
        ),
    )
    def provider_sends_an_event(self, data: st.DataObject, event: str) -> None:
        """A payment provider or app store sends a signed event: taking a purchase back,
        closing a dispute, or delivering an event again; or a processor opens a dispute on a
        purchase and closes it."""
        disputable = [
            p
            for p in self.model.purchases
            if p.provider in PROCESSORS and p.completed and p.chargeback is None and not p.refunded
        ]
        if event == "again" and self.deliveries:
            self._deliver_again(data)
        elif event == "dispute from start to end" and disputable:
            purchase = data.draw(st.sampled_from(disputable), label="disputed")
            self._take_back(data, purchase, "dispute")
            self._close_dispute(data, purchase)
        elif event == "close a dispute" and any(
            p.provider in PROCESSORS for p in self.model.purchases
        ):
            self._close_dispute(data)
        else:
            self._take_back(data)

    def _take_back(
        self, data: st.DataObject, purchase: ModelPurchase | None = None, how: str | None = None
    ) -> None:
        """A provider takes a purchase back, each in its own words: a card dispute opened
        (with or without a fee), a refund made at the processor, an Apple refund, a Google
        void; some for another amount than the purchase's, some for a charge nobody knows.
        Often a purchase still standing, or one whose coins were partly spent."""
        how = how or data.draw(
            st.sampled_from(
                [
                    "dispute",
                    "dispute",
                    "dispute",
                    "refunded at the provider",
                    "wrong amount",
                    "unknown charge",
                ]
            ),
            label="how",
        )
        fee = data.draw(st.sampled_from(DISPUTE_FEES), label="fee")
        policy = data.draw(st.sampled_from(sorted(LossPolicy)), label="policy")
        which = data.draw(
            st.sampled_from(["partly spent", "standing", "disputable", "any"]), label="which"
        )
        purchases = self.model.purchases
        standing = [p for p in purchases if p.completed and p.chargeback is None and not p.refunded]
        partly_spent = [p for p in standing if self.model.spent_of(p)]
        candidates = {
            "partly spent": partly_spent,
            "standing": standing,
            "disputable": [p for p in standing if p.provider in PROCESSORS],
            "any": purchases,
        }
        purchase = purchase or data.draw(st.sampled_from(candidates[which] or purchases))
        provider, reference = purchase.provider, purchase.reference
        if how == "unknown charge":
            reference = f"sbx_{provider}_unknown_{next(self.numbers)}"
        currency = purchase.currency.lower()
        kind, amount, case_id, event = event_taking_back(purchase, reference, how, fee)
        if how == "unknown charge":
            expected = Outcome.UNKNOWN_PURCHASE
        else:
            expected = self.model.taking_back(purchase, amount, currency)
        accepted = self.deliver(provider, event, policy)
        assert not accepted.duplicate
        assert accepted.event.outcome == expected, (accepted.event.detail, expected)
        self.model.events += 1
        self.deliveries.append(Delivery(provider, event, expected))
        self.saw(f"provider event: {expected}")
        if how != "unknown charge" and case_id and expected is not Outcome.REFUSED:
            self.model.book_fee(purchase, case_id, fee)
        if expected is Outcome.CHARGED_BACK:
            chargeback = self.model.take_back(purchase, kind, policy)
            assert accepted.event.chargeback_id is not None
            self._check_chargeback(accepted.event.chargeback_id, chargeback)

    def _close_dispute(self, data: st.DataObject, purchase: ModelPurchase | None = None) -> None:
        """The processor closes a dispute, won or lost: on an open dispute (with
        ``an_open_one``, when there is one) or on any purchase of theirs, whose dispute may
        never have been opened here, may be closed already, or may not be a dispute at all."""
        won = data.draw(st.booleans(), label="won")
        an_open_one = data.draw(st.sampled_from([True, True, False]), label="an_open_one")
        fee = data.draw(st.sampled_from(DISPUTE_FEES), label="fee")
        policy = data.draw(st.sampled_from(sorted(LossPolicy)), label="policy")
        disputed = [p for p in self.model.purchases if p.provider in PROCESSORS]
        still_open = [
            p for p in disputed if p.chargeback is not None and p.chargeback.status == "open"
        ]
        purchase = purchase or data.draw(
            st.sampled_from(still_open if an_open_one and still_open else disputed)
        )
        case_id = f"dp_{purchase.id}"
        event = dispute(
            purchase.reference,
            status="won" if won else "lost",
            closed=True,
            amount=purchase.price_minor,
            currency=purchase.currency.lower(),
            fee=fee,
            dispute_id=case_id,
        )
        chargeback = purchase.chargeback
        opened_now = False
        if chargeback is None and not won:  # lost, never opened here: charged back first
            expected = self.model.taking_back(purchase, purchase.price_minor, purchase.currency)
            if expected is Outcome.CHARGED_BACK:
                expected, opened_now = Outcome.DISPUTE_LOST, True
        elif chargeback is None or chargeback.kind is not ChargebackKind.DISPUTE:
            expected = Outcome.NO_OPEN_DISPUTE
        elif chargeback.status != "open":
            expected = Outcome.ALREADY_RESOLVED
        else:
            expected = Outcome.DISPUTE_WON if won else Outcome.DISPUTE_LOST
        accepted = self.deliver(purchase.provider, event, policy)
        assert not accepted.duplicate
        assert accepted.event.outcome == expected, (accepted.event.detail, expected)
        self.model.events += 1
        self.deliveries.append(Delivery(purchase.provider, event, expected))
        self.saw(f"provider event: {expected}" + (" (never opened)" if opened_now else ""))
        self.model.book_fee(purchase, case_id, fee)
        if opened_now:
            chargeback = self.model.take_back(purchase, ChargebackKind.DISPUTE, policy)
        if expected is Outcome.DISPUTE_LOST:
            assert chargeback is not None
            self.model.dispute_lost(chargeback)
        elif expected is Outcome.DISPUTE_WON:
            assert chargeback is not None
            if any(
                isinstance(c.spend, ModelGift) and c.spend.released for c in chargeback.clawbacks
            ):
                self.saw("dispute won after a clawed-back gift left its hold")
            self.model.dispute_won(chargeback)
        if expected in (Outcome.DISPUTE_LOST, Outcome.DISPUTE_WON):
            assert chargeback is not None and accepted.event.chargeback_id is not None
            self._check_chargeback(accepted.event.chargeback_id, chargeback)

    def _deliver_again(self, data: st.DataObject) -> None:
        """Providers deliver at least once: an event seen before is answered as it was the
        first time, and nothing moves, whatever happened since."""
        policy = data.draw(st.sampled_from(sorted(LossPolicy)), label="policy")
        delivery = data.draw(st.sampled_from(self.deliveries))
        accepted = self.deliver(delivery.provider, delivery.event, policy)
        assert accepted.duplicate
        assert accepted.event.outcome == delivery.outcome
        self.saw("provider event delivered again")

    def _check_chargeback(self, chargeback_id: int, expected: ModelChargeback) -> None:
        """The chargeback's record says what the model says; what kind of chargeback it was."""
        self.run(check_chargeback(self.sessions, chargeback_id, expected))
        if expected.status in ("open", "final"):
            self.saw(f"charged back: {expected.kind}, loss to {expected.policy}")
            if clawed_gifts(expected):
                self.saw("charged back: diamonds clawed back from gifts in their hold")
            if any(not c.clawed for c in expected.claims):
                self.saw("charged back: spent coins traced to an unlock or a released gift")
            if any(c.coins < c.spend.coins for c in expected.claims):
                self.saw("charged back: part of a gift's coins")
            if expected.coins_clawed and expected.coins_spent:
                self.saw("charged back: coins held and coins spent")

    # -----------------------------------------------------------------------------------------
    # Standing
    # -----------------------------------------------------------------------------------------

    def _set_standing(self, data: st.DataObject) -> None:
        """Support lifts a freeze (most often), or freezes an account."""
        thaw = data.draw(st.sampled_from([True, True, False]), label="thaw")
        frozen = sorted(self.model.frozen)
        if thaw and frozen:
            user, freeze = data.draw(st.sampled_from(frozen)), False
        else:
            user, freeze = data.draw(st.sampled_from(PEOPLE)), True
        self.run(
            in_transaction(
                self.sessions,
                lambda s: set_frozen(s, user, frozen=freeze, reason="looked into", actor=SUPPORT),
            )
        )
        if freeze:
            self.model.frozen.add(user)
            self.saw("account frozen by support")
        else:
            self.model.frozen.discard(user)
            self.saw("freeze lifted")

    # -----------------------------------------------------------------------------------------
    # Payouts
    # -----------------------------------------------------------------------------------------

    def _can_be_paid(self) -> list[str]:
        return [
            c
            for c in CREATORS
            if c not in self.model.frozen
            and self.model.available[c]
            + sum(self.model.diamonds_left(g) for g in self.model.due(c))
        ]

    @rule(data=st.data(), step=st.sampled_from(["request", "request", "move", "move", "move"]))
    def payouts_go_on(self, data: st.DataObject, step: str) -> None:
        """A creator requests a payout, or finance moves one on."""
        if step == "move" and self.model.payouts:
            self._move_payout(data)
        else:
            self._request_payout(data)

    def _request_payout(self, data: st.DataObject) -> None:
        """A creator asks for a payout of any size (some more than is available, some worth
        less than the minimum, some while frozen), or asks again under an earlier key. With
        ``can_be_paid``, a creator with diamonds to pay out, when there is one. A request
        releases the creator's diamonds whose hold has passed first (if it goes through: a
        refused request leaves no trace)."""
        creator = data.draw(st.sampled_from(CREATORS), label="creator")
        can_be_paid = data.draw(st.sampled_from([True, True, False]), label="can_be_paid")
        again = data.draw(st.booleans(), label="again")
        model = self.model
        if can_be_paid and self._can_be_paid():
            creator = data.draw(st.sampled_from(self._can_be_paid()))
        ready = self.ready[creator]
        due = model.due(creator)
        theirs = [p for p in model.payouts if p.creator == creator]
        if again and theirs:
            self._request_payout_again(data.draw(st.sampled_from(theirs)), due)
            return
        available = model.available[creator] + sum(model.diamonds_left(g) for g in due)
        diamonds = data.draw(
            st.sampled_from(["some", "some", "all", "too many", "any"]).flatmap(
                lambda size: {
                    "some": st.integers(1, max(available, 1)),
                    "all": st.just(max(available, 1)),
                    "too many": st.just(available + 1),
                    "any": st.integers(1, 3_000),
                }[size]
            ),
            label="diamonds",
        )
        key = self.key()
        try:
            result = self.run(self.payouts.request_payout(ready.request(key, diamonds)))
        except AccountFrozen:
            assert creator in model.frozen
            self.saw("payout refused: account frozen")
            return
        except InsufficientDiamonds:
            assert creator not in model.frozen and diamonds > available
            self.saw("payout refused: insufficient diamonds")
            return
        except BelowPayoutMinimum:
            held = model.pending[creator] + available + model.reserved[creator]
            assert creator not in model.frozen and diamonds <= available
            assert (
                model_payout(model.payable[creator], held, diamonds)[0]
                < PAYOUTS.minimum_minor * CENT
            )
            self.saw("payout refused: below the minimum")
            return
        assert creator not in model.frozen and diamonds <= available
        model.release(due)
        held = model.pending[creator] + model.available[creator] + model.reserved[creator]
        cash, redeemed = model_payout(model.payable[creator], held, diamonds)
        assert cash >= PAYOUTS.minimum_minor * CENT
        requested = result.payout
        assert not result.replayed
        assert (requested.amount_micros, requested.diamonds) == (cash, redeemed)
        model.reserve(ModelPayout(requested.id, creator, key, diamonds, redeemed, cash))
        self.saw("payout requested")

    def _request_payout_again(self, payout: ModelPayout, due: list[ModelGift]) -> None:
        """The same request again gives the first payout back; like any request, it releases
        the creator's diamonds whose hold has passed first."""
        ready = self.ready[payout.creator]
        result = self.run(
            self.payouts.request_payout(ready.request(payout.key, payout.diamonds_requested))
        )
        assert result.replayed and result.payout.id == payout.id
        self.model.release(due)
        self.saw("payout request replayed")

    def _move_payout(self, data: st.DataObject) -> None:
        """Finance sends, pays, fails or rejects a payout: with ``in_order``, the next phase of
        one in flight (forward, or back for a failing phase); otherwise any phase of any
        payout. With ``again``, the same action repeated gives the payout back as it is."""
        phase = data.draw(st.sampled_from(PHASES), label="phase")
        in_order = data.draw(st.booleans(), label="in_order")
        again = data.draw(st.booleans(), label="again")
        in_flight = [p for p in self.model.payouts if p.status in ("requested", "sent")]
        if in_order and in_flight:
            payout = data.draw(st.sampled_from(in_flight))
            forward = phase in (PayoutPhase.SENT, PayoutPhase.PAID)
            if payout.status == "requested":
                phase = PayoutPhase.SENT if forward else PayoutPhase.REJECTED
            else:
                phase = PayoutPhase.PAID if forward else PayoutPhase.FAILED
        else:
            payout = data.draw(st.sampled_from(self.model.payouts))
        action = PayoutAction(payout.id, phase, FINANCE, self.key(), reason="checked")
        try:
            result = self.run(self.payouts.advance(action))
        except InvalidPayoutTransition:
            assert payout.status != NEXT[phase]
            self.saw("payout refused: out of order")
            return
        assert payout.status == NEXT[phase] and not result.replayed
        self.model.move_payout(payout, phase)
        self.saw(f"payout {phase}")
        if again:
            replayed = self.run(self.payouts.advance(action))
            assert replayed.replayed and replayed.payout.status == payout.status
            self.saw("payout action replayed")


def test_gift_books_match_the_model_after_every_step(server_url: URL, template_url: URL) -> None:
    run_machine(GiftMachine, server_url, template_url, RUNS)
