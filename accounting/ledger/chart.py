"""The chart of accounts: every account's code, commodity, type and flags, derived from its role.

Per-user and per-creator accounts are opened on first use; fixed platform accounts by migration.

The hot platform accounts (what every gift and unlock posts to) can be split into sub-accounts,
``platform:coins:spent`` and ``platform:coins:spent#1`` to ``#<n-1>``, one chosen per wallet
owner by ``platform_share``; each is a real account, opened on first use, and every report sums
a platform account with its sub-accounts (``PARENT_CODE_SQL``).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, replace
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
def _coins_spent() -> AccountSpec:
    return AccountSpec("platform:coins:spent", COIN.code, AccountType.EQUITY, contra=True)


def coins_spent(owner: str | None = None) -> AccountSpec:
    """Coins spent from ``owner``'s wallet (gifts, unlocks): ``owner``'s share of the account;
    without an owner, the account itself."""
    return platform_share(_coins_spent(), owner)


@cache_spec
def _diamonds_issued() -> AccountSpec:
    return AccountSpec("platform:diamonds:issued", DIAMOND.code, AccountType.EQUITY, contra=True)


def diamonds_issued(creator_id: str | None = None) -> AccountSpec:
    """Diamonds issued to (or clawed back from) ``creator_id``: the creator's share; without
    a creator, the account itself."""
    return platform_share(_diamonds_issued(), creator_id)


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


def gift_revenue(functional_currency: str, creator_id: str) -> AccountSpec:
    """Gift revenue from gifts to ``creator_id``: the creator's share."""
    return platform_share(revenue("gifts", functional_currency), creator_id)


def feature_revenue(functional_currency: str, user_id: str) -> AccountSpec:
    """Feature revenue from ``user_id``'s unlocks: the user's share."""
    return platform_share(revenue("features", functional_currency), user_id)


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
def _promotions(functional_currency: str) -> AccountSpec:
    return AccountSpec(
        "platform:expense:promotions", fiat(functional_currency).code, AccountType.EXPENSE
    )


def promotions(functional_currency: str, creator_id: str | None = None) -> AccountSpec:
    """Creator value paid out of coins that cost the platform nothing (bonus coins), for gifts
    to ``creator_id``: the creator's share; without a creator, the account itself."""
    return platform_share(_promotions(functional_currency), creator_id)


def fixed_platform_accounts(
    functional_currency: str, currencies: tuple[str, ...]
) -> list[AccountSpec]:
    """The platform accounts a migration opens for the configured currencies."""
    specs = [coins_issued(), _coins_spent(), _diamonds_issued(), diamonds_redeemed()]
    for stream in ("gifts", "features", "breakage"):
        specs.append(revenue(stream, functional_currency))
    specs.append(_promotions(functional_currency))
    for currency in currencies:
        specs.append(bank(currency))
        specs.append(fx_trading(currency))
        for provider in PROVIDERS:
            specs.append(provider_clearing(provider, currency))
        specs.append(fee_expense("card", currency))
        specs.append(fee_expense("apple", currency))
    return specs


# --- the hot platform accounts' sub-accounts ------------------------------------------------

MAX_PLATFORM_SHARDS = 64
_shards = 1


def configure_platform_shards(shards: int) -> int:
    """Split the hot platform accounts into ``shards`` sub-accounts from now on (1: not at all,
    every posting on the account itself); answers the count in force before. Lowering it later
    only stops new postings to the higher sub-accounts: their balances stay, and are summed."""
    global _shards
    if not 1 <= shards <= MAX_PLATFORM_SHARDS:
        raise ValueError(f"platform shards are 1 to {MAX_PLATFORM_SHARDS}, not {shards}")
    before, _shards = _shards, shards
    return before


def platform_shards() -> int:
    return _shards


@functools.lru_cache(maxsize=65_536)
def shard_of(owner: str, shards: int) -> int:
    """The sub-account of ``owner`` among ``shards``: a stable hash of the owner's id (BLAKE2b,
    the same in every process and every release, unlike Python's ``hash``)."""
    digest = hashlib.blake2b(owner.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


@cache_spec
def sub_account(parent: AccountSpec, shard: int) -> AccountSpec:
    """Sub-account ``shard`` of a platform account: the account itself for 0, else a twin whose
    code ends ``#<shard>``, with the same commodity, type and flags."""
    return parent if shard == 0 else replace(parent, code=f"{parent.code}#{shard}")


def platform_share(parent: AccountSpec, owner: str | None) -> AccountSpec:
    """The one place that chooses which sub-account of a hot platform account a posting for
    wallet owner ``owner`` uses (every flow posting to one passes its owner); no owner names
    the account itself, as a report or a correction does."""
    return parent if owner is None else sub_account(parent, shard_of(owner, _shards))


def parent_code(code: str) -> str:
    """The platform account a sub-account belongs to (any other code is its own)."""
    return code.split("#", 1)[0]


def with_sub_accounts(code: str) -> list[str]:
    """The codes a report sums for ``code``: a platform account's and every sub-account's it may
    have (whatever the count configured now, since a lower count leaves the higher ones)."""
    if not code.startswith("platform:") or "#" in code:
        return [code]
    return [code, *(f"{code}#{shard}" for shard in range(1, MAX_PLATFORM_SHARDS))]


PARENT_CODE_SQL = "regexp_replace({code}, '#[0-9]+$', '')"
"""``parent_code`` in SQL, for reports that sum the sub-accounts."""
