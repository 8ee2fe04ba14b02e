"""The gift flow's errors: streams, the catalog, gifts and unlocks, and the gift rate limit."""

from __future__ import annotations

from accounting.ledger.errors import LedgerError, LimitExceeded


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


class GiftRateLimited(LimitExceeded):
    """Gifts per sender within the rate window; facts ``limit_gifts``, ``window_seconds``,
    ``sent_in_window``."""

    code = "GIFT_RATE_LIMITED"
