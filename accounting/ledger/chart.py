"""The chart of accounts: every account's code, commodity, type and flags, derived from its role.

Per-user and per-creator accounts are opened on first use; fixed platform accounts by migration.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from accounting.ledger.errors import InvalidUserId
from accounting.ledger.money import COIN, DIAMOND, fiat


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"


_DEBIT_NORMAL = {AccountType.ASSET, AccountType.EXPENSE}


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What an account is. Amounts are debit-positive; ``normal_sign`` turns them into the
    account's natural reading (a liability's credit balance reads as a positive number)."""

    code: str
    commodity: str
    type: AccountType
    contra: bool = False
    no_overdraft: bool = False

    @property
    def normal_sign(self) -> int:
        debit_normal = self.type in _DEBIT_NORMAL
        if self.contra:
            debit_normal = not debit_normal
        return 1 if debit_normal else -1


_USER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

PROVIDERS = ("card", "paypal", "mobile_wallet", "apple", "google")

cache_spec = functools.lru_cache(maxsize=65_536)
"""An account's spec is a pure function of its names: worked out once per process for the
accounts in use (a gift names seven), not on every posting."""


def check_user_id(user_id: str, *, field: str = "userId") -> str:
    if not _USER_ID.fullmatch(user_id):
        raise InvalidUserId(
            "A user id is 1-64 letters, digits, '_', '.' or '-'", field=field, user_id=user_id
        )
    return user_id


@cache_spec
def user_coins(user_id: str) -> AccountSpec:
    check_user_id(user_id)
    return AccountSpec(f"user:{user_id}:coins", COIN.code, AccountType.LIABILITY, no_overdraft=True)


@cache_spec
def user_coins_value(user_id: str, functional_currency: str) -> AccountSpec:
    check_user_id(user_id)
    return AccountSpec(
        f"user:{user_id}:coins_value",
        fiat(functional_currency).code,
        AccountType.LIABILITY,
        no_overdraft=True,
    )


@cache_spec
def coins_issued() -> AccountSpec:
    return AccountSpec("platform:coins:issued", COIN.code, AccountType.EQUITY, contra=True)


@cache_spec
def coins_spent() -> AccountSpec:
    return AccountSpec("platform:coins:spent", COIN.code, AccountType.EQUITY, contra=True)


@cache_spec
def diamonds_issued() -> AccountSpec:
    return AccountSpec("platform:diamonds:issued", DIAMOND.code, AccountType.EQUITY, contra=True)


@cache_spec
def diamonds_redeemed() -> AccountSpec:
    return AccountSpec("platform:diamonds:redeemed", DIAMOND.code, AccountType.EQUITY, contra=True)


@cache_spec
def provider_clearing(provider: str, currency: str) -> AccountSpec:
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}")
    return AccountSpec(
        f"platform:clearing:{provider}:{currency}", fiat(currency).code, AccountType.ASSET
    )


@cache_spec
def bank(currency: str) -> AccountSpec:
    return AccountSpec(f"platform:bank:{currency}", fiat(currency).code, AccountType.ASSET)


@cache_spec
def fee_expense(provider: str, currency: str) -> AccountSpec:
    """Processor fees for card, PayPal and wallets; app-store commission for Apple and Google."""
    kind = "app_store_fees" if provider in ("apple", "google") else "processor_fees"
    return AccountSpec(
        f"platform:expense:{kind}:{currency}", fiat(currency).code, AccountType.EXPENSE
    )


@cache_spec
def payouts_in_transit(currency: str) -> AccountSpec:
    """Payouts sent to creators, not yet confirmed paid by the bank or PayPal."""
    return AccountSpec(
        f"platform:payouts_in_transit:{currency}", fiat(currency).code, AccountType.LIABILITY
    )


@cache_spec
def fx_trading(currency: str) -> AccountSpec:
    return AccountSpec(f"platform:fx:{currency}", fiat(currency).code, AccountType.EQUITY)


@cache_spec
def revenue(stream: str, functional_currency: str) -> AccountSpec:
    return AccountSpec(
        f"platform:revenue:{stream}", fiat(functional_currency).code, AccountType.REVENUE
    )


@cache_spec
def refunds_contra_revenue(functional_currency: str) -> AccountSpec:
    """Refunded cash above the deferred value the refund released (contra revenue)."""
    return AccountSpec(
        "platform:contra_revenue:refunds",
        fiat(functional_currency).code,
        AccountType.REVENUE,
        contra=True,
    )


@cache_spec
def chargebacks_contra_revenue(functional_currency: str) -> AccountSpec:
    """What a chargeback took back beyond the value it released and the loss it booked: the
    averaging difference between the purchase's own price and the wallet's (contra revenue)."""
    return AccountSpec(
        "platform:contra_revenue:chargebacks",
        fiat(functional_currency).code,
        AccountType.REVENUE,
        contra=True,
    )


@cache_spec
def user_receivable(user_id: str, functional_currency: str) -> AccountSpec:
    """What a user owes after a chargeback on coins they had already spent."""
    check_user_id(user_id)
    return AccountSpec(
        f"user:{user_id}:receivable", fiat(functional_currency).code, AccountType.ASSET
    )


@cache_spec
def fraud_losses(functional_currency: str) -> AccountSpec:
    """Charged-back value already spent, written off rather than claimed from the user."""
    return AccountSpec(
        "platform:expense:fraud_losses", fiat(functional_currency).code, AccountType.EXPENSE
    )


@cache_spec
def dispute_fees(currency: str) -> AccountSpec:
    """What card networks charge for a dispute, win or lose."""
    return AccountSpec(
        f"platform:expense:dispute_fees:{currency}", fiat(currency).code, AccountType.EXPENSE
    )


CREATOR_DIAMOND_STATES = ("pending", "available", "reserved")


@cache_spec
def creator_diamonds(creator_id: str, state: str) -> AccountSpec:
    """A creator's diamonds: pending (inside the hold), available (withdrawable), reserved (in a
    payout in flight). None of them ever goes below zero."""
    check_user_id(creator_id, field="creatorId")
    if state not in CREATOR_DIAMOND_STATES:
        raise ValueError(f"unknown diamond state {state!r}")
    return AccountSpec(
        f"creator:{creator_id}:diamonds:{state}",
        DIAMOND.code,
        AccountType.LIABILITY,
        no_overdraft=True,
    )


@cache_spec
def creator_payable(creator_id: str, functional_currency: str) -> AccountSpec:
    """The cash value owed to a creator for their diamonds, in every state."""
    check_user_id(creator_id, field="creatorId")
    return AccountSpec(
        f"creator:{creator_id}:payable", fiat(functional_currency).code, AccountType.LIABILITY
    )


@cache_spec
def promotions(functional_currency: str) -> AccountSpec:
    """Creator value paid out of coins that cost the platform nothing (bonus coins)."""
    return AccountSpec(
        "platform:expense:promotions", fiat(functional_currency).code, AccountType.EXPENSE
    )


def fixed_platform_accounts(
    functional_currency: str, currencies: tuple[str, ...]
) -> list[AccountSpec]:
    """The platform accounts a migration opens for the configured currencies."""
    specs = [coins_issued(), coins_spent(), diamonds_issued(), diamonds_redeemed()]
    for stream in ("gifts", "features", "breakage"):
        specs.append(revenue(stream, functional_currency))
    specs.append(promotions(functional_currency))
    for currency in currencies:
        specs.append(bank(currency))
        specs.append(fx_trading(currency))
        for provider in PROVIDERS:
            specs.append(provider_clearing(provider, currency))
        specs.append(fee_expense("card", currency))
        specs.append(fee_expense("apple", currency))
    return specs
