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
