"""The ledger's reference model: what each wallet must hold after purchases, transfers and
reversals, in plain Python with its own arithmetic (the catalog's prices, converted at the
seeded rates), and no database."""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from accounting.ledger import chart
from accounting.ledger.chart import AccountSpec
from accounting.ledger.entries import Entry
from accounting.ledger.money import fiat
from accounting.purchases.service import PurchaseRequest

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


def by_id(item: ModelEntry | ModelPurchase) -> int:
    return item.id


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
        assert purchase.status == "pending", f"purchase {purchase.id} was {purchase.status}"
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

    def fail(self, purchase: ModelPurchase) -> None:
        assert purchase.status == "pending", f"purchase {purchase.id} was {purchase.status}"
        purchase.status = "failed"
