"""The books against a model, TigerBeetle-auditor style.

A Hypothesis state machine drives random sequences of ledger operations against PostgreSQL
and, beside it, a plain in-memory model of what each wallet must hold (``ledger_model``):
purchases (every package, currency, channel and provider; payments that succeed, are declined,
or time out), settlement of pending purchases, coin transfers between wallets and
``coins:spent`` (some of them overdrawing), replays of earlier requests under their idempotency
key, reversals of earlier entries, and unbalanced entries. After every step the database's
wallets equal the model's, the trial balance balances per commodity, and the integrity check
finds nothing (``ledger_checks``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import timedelta

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from sqlalchemy import select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.errors import (
    AlreadyReversed,
    IdempotencyKeyReused,
    InsufficientCoins,
    Overdraft,
    UnbalancedEntry,
)
from accounting.ledger.posting import PostedEntry, in_transaction, post_entry, reverse_entry
from accounting.purchases.fees import CHANNEL_PROVIDERS
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseService
from accounting.purchases.tables import PurchaseRow
from tests.properties import seeds
from tests.properties.harness import DatabaseMachine, Runs, run_machine
from tests.properties.ledger_checks import check_books
from tests.properties.ledger_model import (
    CUSTOM_PRICES,
    FUNCTIONAL,
    ISSUED,
    PRICES,
    SPENT,
    TOKENS,
    USERS,
    WALLETS,
    Model,
    ModelPurchase,
    Order,
    by_id,
    status_now,
    status_settled,
    wallet_spec,
)

RUNS = Runs(
    # the paths that matter (each is all but certain in 15 x 15 steps)
    must_reach=("purchase completed", "transfer posted", "transfer refused: insufficient coins"),
    max_examples=15,
    stateful_step_count=15,
    seed=seeds.LEDGER_MACHINE,
)


@st.composite
def orders(draw: st.DrawFn) -> Order:
    user_id = draw(st.sampled_from(USERS))
    token = draw(st.sampled_from(TOKENS))
    if draw(st.integers(0, 4)) == 0:  # a custom amount, on the web
        currency = draw(st.sampled_from(sorted(CUSTOM_PRICES)))
        lowest = CUSTOM_PRICES[currency][1]
        coins = draw(st.integers(lowest, 3_000))
        provider = draw(st.sampled_from(CHANNEL_PROVIDERS["web"]))
        return Order(user_id, currency, "web", provider, token, None, coins)
    currency, package_code = draw(st.sampled_from(sorted(PRICES)))
    channel = draw(st.sampled_from(sorted(CHANNEL_PROVIDERS)))
    provider = draw(st.sampled_from(CHANNEL_PROVIDERS[channel]))
    return Order(user_id, currency, channel, provider, token, package_code, None)


class LedgerMachine(DatabaseMachine):
    def __init__(self) -> None:
        super().__init__()
        # no grace period for charges the provider has no record of (as the ``purchases``
        # fixture): the model settles a lost charge as failed at once
        self.purchases = PurchaseService(
            self.sessions,
            SandboxGateway(self.sessions),
            functional_currency=FUNCTIONAL,
            unanswered_grace=timedelta(0),
        )
        self.model = Model()

    async def audit(self) -> None:
        await check_books(self.sessions, self.model)

    # -----------------------------------------------------------------------------------------
    # Purchases
    # -----------------------------------------------------------------------------------------

    @rule(order=orders())
    def buy_coins(self, order: Order) -> None:
        key = self.key()
        result = self.run(self.purchases.purchase_coins(order.request(key)))
        bought = result.purchase
        assert not result.replayed
        assert (bought.coins + bought.bonus_coins, bought.price_minor) == (
            order.coins,
            order.price_minor,
        )
        assert bought.status == status_now(order.token), (order, bought.failure_code)
        self.saw(f"purchase {bought.status}")
        purchase = ModelPurchase(bought.id, key, order, "pending")
        self.model.purchases[bought.id] = purchase
        if bought.status == "completed":
            self.model.complete(purchase, bought.entry_id)
        elif bought.status == "failed":
            self.model.fail(purchase)
            assert bought.entry_id is None and bought.failure_code

    @precondition(lambda self: bool(self.model.purchases))
    @rule(data=st.data())
    def retry_purchase(self, data: st.DataObject) -> None:
        """The same request again: the first purchase's latest state, nothing charged or posted
        again (a pending one is asked about once more, and settles)."""
        purchase = data.draw(st.sampled_from(sorted(self.model.purchases.values(), key=by_id)))
        result = self.run(self.purchases.purchase_coins(purchase.order.request(purchase.key)))
        assert result.replayed
        assert result.purchase.id == purchase.id
        self.saw(f"retried a {purchase.status} purchase")
        if purchase.status == "pending":
            assert result.purchase.status == status_settled(purchase.order.token)
            if result.purchase.status == "completed":
                self.model.complete(purchase, result.purchase.entry_id)
            else:
                self.model.fail(purchase)
        assert result.purchase.status == purchase.status
        assert result.purchase.entry_id == purchase.entry_id

    @precondition(lambda self: bool(self.model.purchases))
    @rule(data=st.data())
    def reuse_purchase_key_for_another_request(self, data: st.DataObject) -> None:
        purchase = data.draw(st.sampled_from(sorted(self.model.purchases.values(), key=by_id)))
        other = dataclasses.replace(
            purchase.order.request(purchase.key),
            payment_token=purchase.order.token + "_changed",
        )
        try:
            self.run(self.purchases.purchase_coins(other))
        except IdempotencyKeyReused as refused:
            self.saw("purchase key reused: refused")
            assert refused.facts == {"purchase_id": purchase.id}
        else:
            raise AssertionError("a reused idempotency key was accepted")

    @precondition(lambda self: any(p.status == "pending" for p in self.model.purchases.values()))
    @rule()
    def settle_pending_purchases(self) -> None:
        pending = [p for p in self.model.purchases.values() if p.status == "pending"]
        counts = self.run(self.purchases.settle_pending())
        self.saw(f"settled {len(pending)} pending purchase(s)")
        expected = Counter(status_settled(p.order.token) for p in pending)
        assert counts == {
            "completed": expected["completed"],
            "failed": expected["failed"],
            "pending": 0,
        }
        entry_ids = self.run(self._purchase_entries([p.id for p in pending]))
        for purchase in pending:
            if status_settled(purchase.order.token) == "completed":
                self.model.complete(purchase, entry_ids[purchase.id])
            else:
                self.model.fail(purchase)

    async def _purchase_entries(self, ids: list[int]) -> dict[int, int | None]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(PurchaseRow.id, PurchaseRow.entry_id).where(PurchaseRow.id.in_(ids))
            )
            return {purchase_id: entry_id for purchase_id, entry_id in rows}

    # -----------------------------------------------------------------------------------------
    # Transfers through post_entry
    # -----------------------------------------------------------------------------------------

    async def _post(self, entry: Entry) -> PostedEntry:
        return await in_transaction(self.sessions, lambda session: post_entry(session, entry))

    @rule(
        source=st.sampled_from(WALLETS),
        destination=st.sampled_from(WALLETS),
        coins=st.integers(1, 800),
        near_the_edge=st.one_of(st.none(), st.integers(-2, 2)),
    )
    def transfer_coins(
        self, source: str, destination: str, coins: int, near_the_edge: int | None
    ) -> None:
        """Coins move between wallets and ``coins:spent``; with ``near_the_edge`` the amount is
        what the source holds, give or take two coins, to probe the no-overdraft boundary."""
        if source == destination:
            destination = SPENT if source != SPENT else USERS[0]
        if near_the_edge is not None and source != SPENT:
            coins = max(1, self.model.held(wallet_spec(source).code) + near_the_edge)
        entry = Entry(
            kind=EntryKind.TRANSFER,
            event_key=f"transfer:{next(self.numbers)}",
            postings=(
                Posting(wallet_spec(source), coins),
                Posting(wallet_spec(destination), -coins),
            ),
            actor="test:machine",
        )
        deltas = {wallet_spec(source).code: coins, wallet_spec(destination).code: -coins}
        overdrawn = self.model.overdrawn_by(deltas)
        try:
            posted = self.run(self._post(entry))
        except InsufficientCoins as refused:
            self.saw("transfer refused: insufficient coins")
            assert overdrawn == [wallet_spec(source).code], (source, coins, refused)
            held = self.model.held(wallet_spec(source).code)
            assert refused.facts == {
                "account": wallet_spec(source).code,
                "held": held,
                "needed": coins,
            }
            return
        self.saw("transfer posted")
        assert not overdrawn, f"{source} paid {coins} coins it did not hold"
        assert not posted.replayed
        self.model.post(posted.id, deltas)
        self.model.transfers.append((entry, posted.id))
        if source != SPENT and self.model.held(wallet_spec(source).code) == 0:
            self.saw("transfer drained a wallet to zero")

    @precondition(lambda self: bool(self.model.transfers))
    @rule(data=st.data())
    def replay_transfer(self, data: st.DataObject) -> None:
        entry, entry_id = data.draw(st.sampled_from(self.model.transfers))
        posted = self.run(self._post(entry))
        self.saw("transfer replayed")
        assert (posted.id, posted.replayed) == (entry_id, True)

    @precondition(lambda self: bool(self.model.transfers))
    @rule(data=st.data())
    def reuse_transfer_key_for_other_postings(self, data: st.DataObject) -> None:
        entry, entry_id = data.draw(st.sampled_from(self.model.transfers))
        first, second = entry.postings
        other = dataclasses.replace(
            entry,
            postings=(
                Posting(first.account, first.amount + 1),
                Posting(second.account, second.amount - 1),
            ),
        )
        try:
            self.run(self._post(other))
        except IdempotencyKeyReused as refused:
            self.saw("transfer key reused: refused")
            assert refused.facts == {"event_key": entry.event_key, "entry_id": entry_id}
        else:
            raise AssertionError("a reused event key with other postings was accepted")

    # -----------------------------------------------------------------------------------------
    # Reversals
    # -----------------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.model.entries))
    @rule(data=st.data())
    def reverse_an_entry(self, data: st.DataObject) -> None:
        original = data.draw(st.sampled_from(sorted(self.model.entries.values(), key=by_id)))
        negated = {code: -delta for code, delta in original.deltas.items()}
        overdrawn = self.model.overdrawn_by(negated)
        try:
            reversal = self.run(
                in_transaction(
                    self.sessions,
                    lambda session: reverse_entry(
                        session, original.id, actor="test:machine", reason="property test"
                    ),
                )
            )
        except AlreadyReversed as refused:
            self.saw("reversal refused: already reversed")
            assert original.reversed_by is not None
            assert refused.facts == {
                "entry_id": original.id,
                "reversal_id": original.reversed_by,
            }
            return
        except Overdraft as refused:
            self.saw(f"reversal refused: {refused.code}")
            assert original.reversed_by is None
            assert refused.facts["account"] in overdrawn, (overdrawn, refused)
            assert isinstance(refused, InsufficientCoins) == any(
                code.endswith(":coins") for code in overdrawn
            )
            return
        self.saw("reversal posted")
        assert original.reversed_by is None, "an entry was reversed twice"
        assert not overdrawn, f"reversing entry {original.id} overdrew {overdrawn}"
        assert not reversal.replayed
        original.reversed_by = reversal.id
        self.model.post(reversal.id, negated)

    # -----------------------------------------------------------------------------------------
    # Unbalanced entries: refused in Python, and by the database when Python is bypassed
    # -----------------------------------------------------------------------------------------

    @rule(
        debit=st.integers(1, 1_000),
        credit=st.integers(1, 1_000),
        user=st.sampled_from(USERS),
        raw_sql=st.booleans(),
    )
    def attempt_unbalanced_entry(self, debit: int, credit: int, user: str, raw_sql: bool) -> None:
        if debit == credit:
            credit += 1
        if raw_sql:  # around the Python layer: the database refuses the statement
            self.run(self._raw_unbalanced(f"raw:{next(self.numbers)}", debit, credit))
            return
        try:
            Entry(
                kind=EntryKind.TRANSFER,
                event_key=f"unbalanced:{next(self.numbers)}",
                postings=(
                    Posting(chart.coins_issued(), debit),
                    Posting(wallet_spec(user), -credit),
                ),
                actor="test:machine",
            )
        except UnbalancedEntry as refused:
            self.saw("unbalanced entry refused")
            assert refused.facts == {"sums": {"COIN": debit - credit}}
        else:
            raise AssertionError("an unbalanced entry was built")

    async def _raw_unbalanced(self, key: str, debit: int, credit: int) -> None:
        async with self.sessions() as session:
            try:
                async with session.begin():
                    entry_id, posted_at = (
                        await session.execute(
                            text(
                                "INSERT INTO journal_entry (kind, event_key, fingerprint,"
                                " posted_at, actor) VALUES ('transfer', :key, 'raw',"
                                " clock_timestamp(), 'test:raw') RETURNING id, posted_at"
                            ),
                            {"key": key},
                        )
                    ).one()
                    await session.execute(
                        text(
                            "INSERT INTO posting (entry_id, posted_at, account_id, commodity,"
                            " amount, account_seq, balance_after)"
                            " SELECT :entry, :at, a.id, a.commodity, x.amount,"
                            "        a.posting_count + 1, a.balance + x.amount"
                            "   FROM (VALUES (:issued, CAST(:debit AS bigint)),"
                            "                (:spent, CAST(:credit AS bigint))) AS x(code, amount)"
                            "   JOIN account a ON a.code = x.code"
                        ),
                        {
                            "entry": entry_id,
                            "at": posted_at,
                            "issued": ISSUED,
                            "debit": debit,
                            "spent": chart.coins_spent().code,
                            "credit": -credit,
                        },
                    )
            except IntegrityError as refused:
                self.saw("raw unbalanced entry refused")
                assert f"COIN postings sum to {debit - credit}" in str(refused.orig)
            else:
                raise AssertionError("the database committed an unbalanced entry")


def test_books_match_the_model_after_every_step(server_url: URL, template_url: URL) -> None:
    run_machine(LedgerMachine, server_url, template_url, RUNS)


def test_model_prices_what_the_catalog_charges() -> None:
    """The model's own arithmetic, checked on worked examples so the oracle is not wrong in
    the same way as the code: EUR 4.99 at 1.08 is $5.3892; 1,234 custom coins at $0.0143
    cost $17.65 (rounded up to the cent); JPY 800 at 0.0067 is $5.36."""
    eur = Order("ana", "EUR", "web", "paypal", "tok_success", "coins_500", None)
    custom = Order("ana", "USD", "web", "card", "tok_success", None, 1_234)
    yen = Order("ana", "JPY", "web", "card", "tok_success", "coins_350", None)
    assert (eur.coins, eur.price_minor, eur.value_micros) == (500, 499, 5_389_200)
    assert (custom.coins, custom.price_minor, custom.value_micros) == (1_234, 1_765, 17_650_000)
    assert (yen.coins, yen.price_minor, yen.value_micros) == (350, 800, 5_360_000)
    bonus = Order("ana", "USD", "ios", "apple", "tok_success", "coins_17500", None)
    assert (bonus.coins, bonus.price_minor) == (18_375, 26_499)
