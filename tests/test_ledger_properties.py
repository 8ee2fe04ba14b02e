"""The books against a model, TigerBeetle-auditor style.

A Hypothesis state machine drives random sequences of ledger operations against PostgreSQL
and, beside it, a plain in-memory model of what each wallet must hold: purchases (every
package, currency, channel and provider; payments that succeed, are declined, or time out),
settlement of pending purchases, coin transfers between wallets and ``coins:spent`` (some of
them overdrawing), replays of earlier requests under their idempotency key, reversals of earlier
entries, and unbalanced entries. After every step the database's wallets equal the model's, the
trial balance balances per commodity, and the integrity check finds nothing.

Each example gets a database of its own, cloned from the migrated template, and an event loop
of its own (state machines are synchronous).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import itertools
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
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
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from accounting import chart
from accounting.balances import account_balance
from accounting.chart import AccountSpec
from accounting.entries import Entry, EntryKind, Posting
from accounting.errors import (
    AlreadyReversed,
    IdempotencyKeyReused,
    InsufficientCoins,
    Overdraft,
    UnbalancedEntry,
)
from accounting.fees import CHANNEL_PROVIDERS
from accounting.integrity import check_integrity
from accounting.ledger import PostedEntry, in_transaction, post_entry, reverse_entry
from accounting.money import fiat
from accounting.payments.sandbox import SandboxGateway
from accounting.purchases import PurchaseRequest, PurchaseService
from accounting.reports import trial_balance
from accounting.tables import JournalEntryRow, PurchaseRow
from api.database import create_engine, session_factory
from tests.conftest import drop_database, new_database

T = TypeVar("T")

SEED = importlib.import_module("migrations.versions.0002_seed")
PRICES: dict[tuple[str, str], tuple[int, int]] = SEED.PRICES
"""(currency, package) -> (web price, app-store price), in minor units."""
CUSTOM_PRICES: dict[str, tuple[int, int, int]] = SEED.CUSTOM_PRICES
FX_RATES: dict[str, str] = SEED.FX_RATES
PACKAGES: dict[str, tuple[int, int]] = SEED.PACKAGES
FUNCTIONAL = "USD"

USERS = ("ana", "bo", "cy")
SPENT = "spent"
WALLETS = (*USERS, SPENT)

SUCCEEDS = ("tok_success", "tok_success_again")
DECLINES = ("tok_declined", "tok_insufficient_funds", "tok_expired_card", "tok_nonsense")
TIMES_OUT = ("tok_timeout", "tok_timeout_declined", "tok_timeout_lost")
TOKENS = (*SUCCEEDS, *SUCCEEDS, *DECLINES, *TIMES_OUT)


def status_now(token: str) -> str:
    """What the purchase is right after the request."""
    if token in SUCCEEDS:
        return "completed"
    return "pending" if token in TIMES_OUT else "failed"


def status_settled(token: str) -> str:
    """What a pending purchase becomes once the provider is asked about it again."""
    return "completed" if token == "tok_timeout" else "failed"


@dataclass(frozen=True)
class Order:
    user_id: str
    currency: str
    channel: str
    provider: str
    token: str
    package_code: str | None
    custom_coins: int | None

    def request(self, key: str) -> PurchaseRequest:
        return PurchaseRequest(
            user_id=self.user_id,
            idempotency_key=key,
            currency=self.currency,
            channel=self.channel,
            provider=self.provider,
            payment_token=self.token,
            package_code=self.package_code,
            custom_coins=self.custom_coins,
        )

    @property
    def coins(self) -> int:
        if self.custom_coins is not None:
            return self.custom_coins
        assert self.package_code is not None
        coins, bonus = PACKAGES[self.package_code]
        return coins + bonus

    @property
    def price_minor(self) -> int:
        if self.custom_coins is not None:
            per_coin_micros = CUSTOM_PRICES[self.currency][0]
            step = fiat(self.currency).micros_per_minor_unit
            return -(-(self.custom_coins * per_coin_micros) // step)  # rounded up
        assert self.package_code is not None
        web, app_store = PRICES[(self.currency, self.package_code)]
        return web if self.channel == "web" else app_store

    @property
    def value_micros(self) -> int:
        """What the coins are worth in the functional currency: the price, converted."""
        price_micros = self.price_minor * fiat(self.currency).micros_per_minor_unit
        if self.currency == FUNCTIONAL:
            return price_micros
        converted = Decimal(price_micros) * Decimal(FX_RATES[self.currency])
        return int(converted.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


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


def wallet_spec(wallet: str) -> AccountSpec:
    return chart.coins_spent() if wallet == SPENT else chart.user_coins(wallet)


def coins_code(user_id: str) -> str:
    return chart.user_coins(user_id).code


def value_code(user_id: str) -> str:
    return chart.user_coins_value(user_id, FUNCTIONAL).code


NO_OVERDRAFT = {coins_code(u) for u in USERS} | {value_code(u) for u in USERS}
ISSUED = chart.coins_issued().code


@dataclass
class ModelEntry:
    id: int
    deltas: dict[str, int]
    """Debit-positive change of each account the model follows."""
    reversed_by: int | None = None


@dataclass
class ModelPurchase:
    id: int
    key: str
    order: Order
    status: str
    entry_id: int | None = None


@dataclass
class Model:
    balances: Counter[str] = field(default_factory=Counter)
    """Debit-positive balances of user wallets, their deferred values, coins issued and spent."""
    entries: dict[int, ModelEntry] = field(default_factory=dict)
    purchases: dict[int, ModelPurchase] = field(default_factory=dict)
    transfers: list[tuple[Entry, int]] = field(default_factory=list)

    def held(self, code: str) -> int:
        """A liability's natural reading: what the wallet holds."""
        return -self.balances[code]

    def overdrawn_by(self, deltas: dict[str, int]) -> list[str]:
        return [
            code
            for code, delta in deltas.items()
            if code in NO_OVERDRAFT and -(self.balances[code] + delta) < 0
        ]

    def post(self, entry_id: int, deltas: dict[str, int]) -> None:
        assert entry_id not in self.entries, f"entry {entry_id} posted twice"
        self.entries[entry_id] = ModelEntry(entry_id, deltas)
        self.balances.update(deltas)

    def complete(self, purchase: ModelPurchase, entry_id: int | None) -> None:
        assert entry_id is not None, f"completed purchase {purchase.id} has no entry"
        purchase.status, purchase.entry_id = "completed", entry_id
        order = purchase.order
        self.post(
            entry_id,
            {
                ISSUED: order.coins,
                coins_code(order.user_id): -order.coins,
                value_code(order.user_id): -order.value_micros,
            },
        )


class LedgerMachine(RuleBasedStateMachine):
    server_url: ClassVar[URL]
    template_url: ClassVar[URL]
    outcomes: ClassVar[Counter[str]] = Counter()
    """What the runs exercised, across examples: the test asserts the interesting paths ran."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.url = new_database(self.server_url, self.template_url)
        self.engine: AsyncEngine = self.run(self._open_engine())
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        # no grace period for charges the provider has no record of (as the ``purchases``
        # fixture): the model settles a lost charge as failed at once
        self.purchases = PurchaseService(
            self.sessions,
            SandboxGateway(self.sessions),
            functional_currency=FUNCTIONAL,
            unanswered_grace=timedelta(0),
        )
        self.model = Model()
        self.numbers = itertools.count(1)

    async def _open_engine(self) -> AsyncEngine:
        return create_engine(self.url, pool_size=4, max_overflow=4)

    def saw(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        try:
            self.run(self.engine.dispose())
        finally:
            self.loop.close()
            drop_database(self.server_url, self.url)

    # -----------------------------------------------------------------------------------------
    # Purchases
    # -----------------------------------------------------------------------------------------

    @rule(order=orders())
    def buy_coins(self, order: Order) -> None:
        key = f"key-{next(self.numbers):08d}"
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
            purchase.status = "failed"
            assert bought.entry_id is None and bought.failure_code

    @precondition(lambda self: bool(self.model.purchases))
    @rule(data=st.data())
    def retry_purchase(self, data: st.DataObject) -> None:
        """The same request again: the first purchase's latest state, nothing charged or posted
        again (a pending one is asked about once more, and settles)."""
        purchase = data.draw(st.sampled_from(sorted(self.model.purchases.values(), key=_id)))
        result = self.run(self.purchases.purchase_coins(purchase.order.request(purchase.key)))
        assert result.replayed
        assert result.purchase.id == purchase.id
        self.saw(f"retried a {purchase.status} purchase")
        if purchase.status == "pending":
            assert result.purchase.status == status_settled(purchase.order.token)
            if result.purchase.status == "completed":
                self.model.complete(purchase, result.purchase.entry_id)
            else:
                purchase.status = "failed"
        assert result.purchase.status == purchase.status
        assert result.purchase.entry_id == purchase.entry_id

    @precondition(lambda self: bool(self.model.purchases))
    @rule(data=st.data())
    def reuse_purchase_key_for_another_request(self, data: st.DataObject) -> None:
        purchase = data.draw(st.sampled_from(sorted(self.model.purchases.values(), key=_id)))
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
                purchase.status = "failed"

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
        original = data.draw(st.sampled_from(sorted(self.model.entries.values(), key=_id)))
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

    # -----------------------------------------------------------------------------------------
    # After every step
    # -----------------------------------------------------------------------------------------

    @invariant()
    def books_match_the_model(self) -> None:
        self.run(self._check_books())

    async def _check_books(self) -> None:
        model = self.model
        async with self.sessions() as session:
            for user in USERS:
                for code in (coins_code(user), value_code(user)):
                    found = await account_balance(session, code)
                    assert (found.balance if found else 0) == model.held(code), code
            for code in (ISSUED, chart.coins_spent().code):
                found = await account_balance(session, code)
                assert found is not None
                assert found.balance == model.balances[code], code  # both debit-normal

            books = await trial_balance(session)
            assert books.balanced, books.totals
            for total in books.totals:
                assert total.debit == total.credit, total

            entries = await session.scalar(select(func.count()).select_from(JournalEntryRow))
            assert entries == len(model.entries)
            purchases = {
                row.id: (row.status, row.entry_id)
                for row in (await session.scalars(select(PurchaseRow))).all()
            }
            assert purchases == {p.id: (p.status, p.entry_id) for p in model.purchases.values()}
            paid_but_failed = (
                await session.scalars(
                    text(
                        "SELECT pu.id FROM purchase pu JOIN sandbox_payment s"
                        " ON s.merchant_reference = 'purchase:' || pu.id"
                        " WHERE s.status = 'succeeded' AND pu.status = 'failed'"
                    )
                )
            ).all()
            assert paid_but_failed == [], "the provider took money for a failed purchase"

        async with self.sessions() as session, session.begin():
            report = await check_integrity(session)
        assert report.violations == []


def _id(item: ModelEntry | ModelPurchase) -> int:
    return item.id


@pytest.fixture
def machine_databases(server_url: URL, template_url: URL) -> type[LedgerMachine]:
    """The machine, told where its examples create their databases."""
    LedgerMachine.server_url = server_url
    LedgerMachine.template_url = template_url
    LedgerMachine.outcomes = Counter()
    return LedgerMachine


def test_books_match_the_model_after_every_step(machine_databases: type[LedgerMachine]) -> None:
    run_state_machine_as_test(
        machine_databases,
        settings=settings(
            max_examples=15,
            stateful_step_count=15,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    outcomes = machine_databases.outcomes
    print(dict(sorted(outcomes.items())))
    # the runs reached the paths that matter (each is all but certain in 15 x 15 steps)
    assert outcomes["purchase completed"] > 0, outcomes
    assert outcomes["transfer posted"] > 0, outcomes
    assert outcomes["transfer refused: insufficient coins"] > 0, outcomes


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
