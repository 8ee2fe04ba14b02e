"""The account token of a user: the UUID an app sets on every store purchase it makes for that
user (Apple: ``Product.purchase(options: [.appAccountToken(token)])``), which the store signs
into the transaction (``appAccountToken``). A transaction whose token is another user's is
refused, so a signed transaction that leaks (it passes through the app, logs, support tickets)
buys nothing for whoever presents it but its buyer.

The token is a UUIDv5 of the user id under a namespace UUID: the same for a user on every
device and every release, computed again on every request, never stored. It is no secret:
knowing another user's token only lets one pay for coins that user gets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from accounting.ledger.chart import check_user_id
from accounting.purchases.errors import PaymentForAnotherAccount, PaymentWithoutAccountToken

DEFAULT_NAMESPACE = uuid.UUID("a56da3ae-2030-4157-b55c-4ac12d56ac9c")
"""Coinbooks' own namespace of account tokens (``COINBOOKS_APPLE_ACCOUNT_TOKEN_NAMESPACE``)."""


def account_token(user_id: str, namespace: uuid.UUID = DEFAULT_NAMESPACE) -> uuid.UUID:
    """The user's account token: ``uuid5(namespace, user_id)``."""
    return uuid.uuid5(namespace, check_user_id(user_id))


@dataclass(frozen=True, slots=True)
class AccountTokens:
    """Whose a store transaction is, by the account token signed into it."""

    namespace: uuid.UUID = DEFAULT_NAMESPACE
    required: bool = True
    """False: a transaction without a token (an app release from before tokens) is taken, for
    whichever user presents it first."""

    def of(self, user_id: str) -> uuid.UUID:
        return account_token(user_id, self.namespace)

    def check(self, signed_token: str | None, user_id: str) -> None:
        """Refuse a transaction whose token is not ``user_id``'s, or (when tokens are required)
        that carries none; the field at fault is the signed transaction."""
        if signed_token is None:
            if self.required:
                raise PaymentWithoutAccountToken(
                    "The transaction carries no account token (appAccountToken): the app must "
                    "set the buyer's token on the purchase",
                    field="signedTransaction",
                )
            return
        if _uuid_or_none(signed_token) != self.of(user_id):
            raise PaymentForAnotherAccount(
                "The transaction was bought for another account (its appAccountToken is not yours)",
                field="signedTransaction",
            )


def _uuid_or_none(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
