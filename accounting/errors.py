"""Domain errors. One root, each with a stable code and the facts that caused it."""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Root of every expected business failure. ``code`` is stable; ``field`` names the input."""

    code: str = "LEDGER_ERROR"

    def __init__(self, message: str, *, field: str | None = None, **facts: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.facts = facts


class UnbalancedEntry(LedgerError):
    code = "UNBALANCED_ENTRY"


class InvalidEntry(LedgerError):
    code = "INVALID_ENTRY"


class CommodityMismatch(LedgerError):
    code = "COMMODITY_MISMATCH"


class UnknownCommodity(LedgerError):
    code = "UNKNOWN_COMMODITY"


class InvalidAmount(LedgerError):
    code = "INVALID_AMOUNT"


class Overdraft(LedgerError):
    """A no-overdraft account would go below zero."""

    code = "INSUFFICIENT_FUNDS"


class InsufficientCoins(Overdraft):
    code = "INSUFFICIENT_COINS"


class AlreadyReversed(LedgerError):
    code = "ALREADY_REVERSED"


class EntryNotFound(LedgerError):
    code = "ENTRY_NOT_FOUND"


class AccountNotFound(LedgerError):
    code = "ACCOUNT_NOT_FOUND"


class IdempotencyKeyReused(LedgerError):
    """The same idempotency key came back with a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"


class InvalidIdempotencyKey(LedgerError):
    code = "INVALID_IDEMPOTENCY_KEY"


class InvalidUserId(LedgerError):
    code = "INVALID_USER_ID"


class PackageNotFound(LedgerError):
    code = "PACKAGE_NOT_FOUND"


class PriceNotAvailable(LedgerError):
    code = "PRICE_NOT_AVAILABLE"


class CustomAmountOutOfRange(LedgerError):
    code = "CUSTOM_AMOUNT_OUT_OF_RANGE"


class ProviderNotAvailable(LedgerError):
    code = "PROVIDER_NOT_AVAILABLE"


class FxRateMissing(LedgerError):
    code = "FX_RATE_MISSING"


class PurchaseNotFound(LedgerError):
    code = "PURCHASE_NOT_FOUND"


class RefundNotAllowed(LedgerError):
    """The refund check said no; ``reasons`` holds every code it gave."""

    code = "REFUND_NOT_ALLOWED"


class AccountFrozen(LedgerError):
    code = "ACCOUNT_FROZEN"


class StreamNotFound(LedgerError):
    code = "STREAM_NOT_FOUND"


class StreamNotLive(LedgerError):
    code = "STREAM_NOT_LIVE"


class StreamAlreadyLive(LedgerError):
    code = "STREAM_ALREADY_LIVE"


class NotStreamCreator(LedgerError):
    code = "NOT_STREAM_CREATOR"


class GiftNotFound(LedgerError):
    code = "GIFT_NOT_FOUND"


class GiftRetired(LedgerError):
    code = "GIFT_RETIRED"


class SelfGift(LedgerError):
    code = "SELF_GIFT"


class QuantityOutOfBounds(LedgerError):
    code = "QUANTITY_OUT_OF_BOUNDS"


class FeatureNotFound(LedgerError):
    code = "FEATURE_NOT_FOUND"


class FeatureRetired(LedgerError):
    code = "FEATURE_RETIRED"


class InvalidCatalogItem(LedgerError):
    code = "INVALID_CATALOG_ITEM"


class InvalidStreamTitle(LedgerError):
    code = "INVALID_STREAM_TITLE"


class InvalidReason(LedgerError):
    code = "INVALID_REASON"


class InsufficientDiamonds(Overdraft):
    code = "INSUFFICIENT_DIAMONDS"


class KycNotVerified(LedgerError):
    code = "KYC_NOT_VERIFIED"


class TotpNotEnrolled(LedgerError):
    code = "TOTP_NOT_ENROLLED"


class TotpAlreadyConfirmed(LedgerError):
    code = "TOTP_ALREADY_CONFIRMED"


class InvalidTotpCode(LedgerError):
    code = "INVALID_TOTP_CODE"


class InvalidPayoutMethod(LedgerError):
    code = "INVALID_PAYOUT_METHOD"


class PayoutMethodNotFound(LedgerError):
    code = "PAYOUT_METHOD_NOT_FOUND"


class BelowPayoutMinimum(LedgerError):
    code = "BELOW_PAYOUT_MINIMUM"


class LimitExceeded(LedgerError):
    """A velocity or spend limit would be passed: nothing was posted, charged or reserved.
    Each limit's facts say what it allows, what was used of it and what was asked."""

    code = "LIMIT_EXCEEDED"


class DailyPayoutCapExceeded(LimitExceeded):
    """Cash per creator per calendar day (UTC) in payouts; facts ``cap_micros``,
    ``requested_today_micros``, ``asked_micros``."""

    code = "DAILY_PAYOUT_CAP_EXCEEDED"


class PurchaseLimitExceeded(LimitExceeded):
    """Coins bought per user per calendar day (UTC); facts ``limit_coins``,
    ``bought_today_coins``, ``asked_coins``."""

    code = "PURCHASE_LIMIT_EXCEEDED"


class GiftRateLimited(LimitExceeded):
    """Gifts per sender within the rate window; facts ``limit_gifts``, ``window_seconds``,
    ``sent_in_window``."""

    code = "GIFT_RATE_LIMITED"


class PayoutNotFound(LedgerError):
    code = "PAYOUT_NOT_FOUND"


class InvalidPayoutTransition(LedgerError):
    """The payout is not in the state the action needs: each phase happens at most once."""

    code = "INVALID_PAYOUT_TRANSITION"


class InvalidProviderReference(LedgerError):
    code = "INVALID_PROVIDER_REFERENCE"
