"""Domain errors: the one root (``LedgerError``, with a stable code, a message and the field
concerned) and the errors of the ledger core every flow may raise. Each flow's own errors
live in its package (``accounting/<flow>/errors.py``)."""

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


class FxRateMissing(LedgerError):
    code = "FX_RATE_MISSING"


class AccountFrozen(LedgerError):
    code = "ACCOUNT_FROZEN"


class InvalidReason(LedgerError):
    code = "INVALID_REASON"


class LimitExceeded(LedgerError):
    """A velocity or spend limit would be passed: nothing was posted, charged or reserved.
    Each limit's facts say what it allows, what was used of it and what was asked."""

    code = "LIMIT_EXCEEDED"
