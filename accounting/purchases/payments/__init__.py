"""Payment providers behind one interface. The domain asks a gateway to charge and to look a
charge up; what it answers decides whether a purchase completes, fails or stays pending. An app
store is the other kind: the buyer pays the store, and the store's signed transaction, verified
here (``TransactionVerifier``), is the proof (docs/payments.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class ChargeOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    UNKNOWN = "unknown"
    """No answer (a timeout): the provider may or may not have taken the money."""
    NOT_FOUND = "not_found"
    """A lookup found no charge under this reference: the request never reached the provider."""


@dataclass(frozen=True, slots=True)
class ChargeResult:
    outcome: ChargeOutcome
    reference: str | None = None
    decline_code: str | None = None
    message: str = ""


class PaymentGateway(Protocol):
    async def charge(
        self,
        *,
        provider: str,
        merchant_reference: str,
        payment_token: str,
        amount_minor: int,
        currency: str,
    ) -> ChargeResult:
        """Charge once per ``merchant_reference``: a repeated call returns the first charge."""
        ...

    async def lookup(self, *, provider: str, merchant_reference: str) -> ChargeResult:
        """What the provider knows of the charge made under ``merchant_reference``."""
        ...


class NoGateway:
    """Where no payment provider charges tokens (production, which has no sandbox): the service
    refuses such purchases before recording them, so this is never asked to charge; a lookup
    answers that nothing is known yet, which leaves a pending purchase pending."""

    async def charge(
        self,
        *,
        provider: str,
        merchant_reference: str,
        payment_token: str,
        amount_minor: int,
        currency: str,
    ) -> ChargeResult:
        return ChargeResult(ChargeOutcome.DECLINED, message=f"{provider} charges no tokens here")

    async def lookup(self, *, provider: str, merchant_reference: str) -> ChargeResult:
        return ChargeResult(ChargeOutcome.UNKNOWN, message=f"{provider} is not asked here")


class ProviderGateways:
    """One gateway per provider, for a service where providers are reached differently (the
    sandbox for some, none for a store whose purchases arrive as signed transactions)."""

    def __init__(self, gateways: Mapping[str, PaymentGateway], default: PaymentGateway) -> None:
        self._gateways = dict(gateways)
        self._default = default

    def _of(self, provider: str) -> PaymentGateway:
        return self._gateways.get(provider, self._default)

    async def charge(
        self,
        *,
        provider: str,
        merchant_reference: str,
        payment_token: str,
        amount_minor: int,
        currency: str,
    ) -> ChargeResult:
        return await self._of(provider).charge(
            provider=provider,
            merchant_reference=merchant_reference,
            payment_token=payment_token,
            amount_minor=amount_minor,
            currency=currency,
        )

    async def lookup(self, *, provider: str, merchant_reference: str) -> ChargeResult:
        return await self._of(provider).lookup(
            provider=provider, merchant_reference=merchant_reference
        )


@dataclass(frozen=True, slots=True)
class VerifiedPayment:
    """A payment a store took, as its signed transaction proves it: what the buyer bought and
    paid, and the store's own id of the transaction (the purchase's provider reference)."""

    provider: str
    reference: str
    product_id: str
    package_code: str
    currency: str | None
    price_micros: int | None
    """What the buyer paid, when the store says it, in micro-units of ``currency``."""
    environment: str
    account_token: str | None = None
    """The account token the app set on the purchase, as signed (Apple's ``appAccountToken``):
    whose purchase it is (accounting/purchases/account_tokens.py); None when it set none."""


class TransactionVerifier(Protocol):
    """A store whose purchases arrive as signed transactions, verified here (offline)."""

    provider: str
    channel: str

    def verify_transaction(self, signed_transaction: str) -> VerifiedPayment:
        """The payment ``signed_transaction`` proves, or a typed error
        (accounting/purchases/errors.py) saying why it proves none."""
        ...

    def verify_notification(self, signed_payload: str) -> dict[str, Any]:
        """A store's signed server notification, verified, as the webhook reads it."""
        ...
