"""The purchase flow's errors."""

from __future__ import annotations

from accounting.ledger.errors import LedgerError, LimitExceeded


class PackageNotFound(LedgerError):
    code = "PACKAGE_NOT_FOUND"


class PriceNotAvailable(LedgerError):
    code = "PRICE_NOT_AVAILABLE"


class CustomAmountOutOfRange(LedgerError):
    code = "CUSTOM_AMOUNT_OUT_OF_RANGE"


class ProviderNotAvailable(LedgerError):
    code = "PROVIDER_NOT_AVAILABLE"


class PurchaseNotFound(LedgerError):
    code = "PURCHASE_NOT_FOUND"


class PurchaseLimitExceeded(LimitExceeded):
    """Coins bought per user per calendar day (UTC); facts ``limit_coins``,
    ``bought_today_coins``, ``asked_coins``."""

    code = "PURCHASE_LIMIT_EXCEEDED"


class PaymentNotVerified(LedgerError):
    """A store's signed transaction whose signature, certificate chain (to the configured
    roots, each certificate valid when it was signed) or form does not hold."""

    code = "PAYMENT_NOT_VERIFIED"


class PaymentForAnotherApp(LedgerError):
    """A store's transaction signed for another app (bundle id, app id)."""

    code = "PAYMENT_FOR_ANOTHER_APP"


class PaymentWrongEnvironment(LedgerError):
    """A store's transaction from another environment (a sandbox one where production is
    configured)."""

    code = "PAYMENT_WRONG_ENVIRONMENT"


class ProductNotSold(LedgerError):
    """A store's product that maps to no coin package."""

    code = "PRODUCT_NOT_SOLD"


class PaymentRevoked(LedgerError):
    """A store's transaction refunded or revoked before it was presented."""

    code = "PAYMENT_REVOKED"


class PaymentAlreadyUsed(LedgerError):
    """A store's transaction that granted another user's purchase: a transaction grants once."""

    code = "PAYMENT_ALREADY_USED"


class PaymentForAnotherAccount(LedgerError):
    """A store's transaction bought for another user: the account token signed into it
    (Apple's ``appAccountToken``) is not the presenting user's."""

    code = "PAYMENT_FOR_ANOTHER_ACCOUNT"


class PaymentWithoutAccountToken(LedgerError):
    """A store's transaction that carries no account token, where one is required."""

    code = "PAYMENT_WITHOUT_ACCOUNT_TOKEN"
