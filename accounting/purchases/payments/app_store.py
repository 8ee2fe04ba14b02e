"""Apple in-app purchases, verified from the App Store's signed data with Apple's
``app-store-server-library``, offline: the JWS's signature by the leaf of its ``x5c`` chain, the
chain to the configured Apple roots (each certificate valid when the data was signed, the
intermediate and the leaf carrying Apple's markers), then the bundle id, the app's Apple id (for
notifications), the environment, and the product, mapped to a coin package. Apple's transaction
id is the purchase's provider reference: one transaction grants once. The transaction's
``appAccountToken`` says whose it is (checked in accounting/purchases/store.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.JWSTransactionDecodedPayload import (
    JWSTransactionDecodedPayload,
)
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
)

from accounting.ledger.errors import LedgerError
from accounting.ledger.money import fiat
from accounting.purchases.errors import (
    PaymentForAnotherApp,
    PaymentNotVerified,
    PaymentRevoked,
    PaymentWrongEnvironment,
    ProductNotSold,
)
from accounting.purchases.payments import VerifiedPayment

ENVIRONMENTS = tuple(e.value for e in Environment)
"""``Production``, ``Sandbox``, ``Xcode``, ``LocalTesting``."""
UNSIGNED_ENVIRONMENTS = (Environment.XCODE.value, Environment.LOCAL_TESTING.value)
"""Environments whose data Apple does not sign: the library skips the signature checks."""
MAX_SIGNED_BYTES = 32 * 1024
MICROS_PER_MILLIUNIT = 1_000
"""Apple states prices in milliunits of the currency (4990 for 4.99 USD)."""


@dataclass(frozen=True, slots=True)
class AppStoreConfig:
    root_certificates: tuple[bytes, ...]
    """Apple's root certificates (DER), the only roots a chain may end in."""
    bundle_id: str
    environment: str = Environment.PRODUCTION.value
    app_apple_id: int | None = None
    """The app's Apple id: required by the library in the Production environment."""
    products: Mapping[str, str] = field(default_factory=dict)
    """Each product id sold in the app, and the coin package it grants."""


class AppStoreVerifier:
    """Apple as a :class:`~accounting.purchases.payments.TransactionVerifier`."""

    provider = "apple"
    channel = "ios"

    def __init__(self, config: AppStoreConfig) -> None:
        if not config.root_certificates:
            raise ValueError("the App Store verifier needs Apple's root certificates")
        self.config = config
        self._verifier = SignedDataVerifier(
            list(config.root_certificates),
            False,
            Environment(config.environment),
            config.bundle_id,
            config.app_apple_id,
        )

    def verify_transaction(self, signed_transaction: str) -> VerifiedPayment:
        _check_size(signed_transaction, "signedTransaction")
        try:
            transaction = self._verifier.verify_and_decode_signed_transaction(signed_transaction)
        except VerificationException as error:
            raise _refusal(error, "signedTransaction") from None
        return self._payment(transaction)

    def verify_notification(self, signed_payload: str) -> dict[str, Any]:
        """The notification, verified, with its transaction (verified too) in the shape the
        webhook reads: ``data.transactionId`` and ``data.revocationReason``."""
        _check_size(signed_payload, "signedPayload")
        try:
            note = self._verifier.verify_and_decode_notification(signed_payload)
            signed = note.data.signedTransactionInfo if note.data is not None else None
            transaction = (
                self._verifier.verify_and_decode_signed_transaction(signed) if signed else None
            )
        except VerificationException as error:
            raise _refusal(error, "signedPayload") from None
        data = None
        if transaction is not None:
            data = {
                "transactionId": transaction.transactionId,
                "revocationReason": transaction.rawRevocationReason,
            }
        return {
            "notificationType": note.rawNotificationType,
            "subtype": note.rawSubtype,
            "notificationUUID": note.notificationUUID,
            "signedDate": note.signedDate,
            "data": data,
        }

    def _payment(self, transaction: JWSTransactionDecodedPayload) -> VerifiedPayment:
        product = transaction.productId or ""
        package = self.config.products.get(product)
        if package is None:
            raise ProductNotSold(
                f"The App Store product {product[:100]!r} grants no coin package here",
                field="signedTransaction",
                product_id=product[:100],
            )
        if transaction.quantity not in (None, 1):
            raise ProductNotSold("Coin packages are sold one at a time", field="signedTransaction")
        if transaction.revocationDate is not None:
            raise PaymentRevoked(
                "Apple revoked this transaction (refunded)", field="signedTransaction"
            )
        if not transaction.transactionId:
            raise PaymentNotVerified("The transaction has no id", field="signedTransaction")
        return VerifiedPayment(
            provider=self.provider,
            reference=transaction.transactionId,
            product_id=product,
            package_code=package,
            currency=transaction.currency,
            price_micros=_price_micros(transaction),
            environment=self.config.environment,
            account_token=transaction.appAccountToken,
        )


def _price_micros(transaction: JWSTransactionDecodedPayload) -> int | None:
    if transaction.price is None or transaction.currency is None:
        return None
    try:
        fiat(transaction.currency)
    except LedgerError:
        raise PaymentNotVerified(
            f"The transaction's currency {transaction.currency[:10]!r} is not one we sell in",
            field="signedTransaction",
        ) from None
    return transaction.price * MICROS_PER_MILLIUNIT


def _check_size(signed: str, field: str) -> None:
    if not 1 <= len(signed) <= MAX_SIGNED_BYTES:
        raise PaymentNotVerified(
            f"A signed App Store object is 1-{MAX_SIGNED_BYTES} characters", field=field
        )


def _refusal(error: VerificationException, field: str) -> LedgerError:
    """The typed error for the library's verdict."""
    if error.status is VerificationStatus.INVALID_APP_IDENTIFIER:
        return PaymentForAnotherApp("Signed for another app (its bundle id or app id)", field=field)
    if error.status is VerificationStatus.INVALID_ENVIRONMENT:
        return PaymentWrongEnvironment(
            "Signed in another App Store environment than the one configured", field=field
        )
    return PaymentNotVerified(
        "The App Store's signature does not verify: a bad signature, a certificate chain "
        "that does not end in Apple's root or was not valid when signed, or not signed data",
        field=field,
        status=error.status.name,
    )
