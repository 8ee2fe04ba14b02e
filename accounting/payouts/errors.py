"""The payout flow's errors: balances, KYC, the second factor, payout methods, the minimum and
the daily cap, and the payout's phases."""

from __future__ import annotations

from accounting.ledger.errors import LedgerError, LimitExceeded, Overdraft


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


class SecondFactorLocked(LedgerError):
    """Too many wrong or reused codes: every code is refused until ``locked_until``; facts
    ``retry_after_seconds``, ``locked_until``."""

    code = "SECOND_FACTOR_LOCKED"


class SecondFactorReused(LedgerError):
    """The code's time step already served another request: a code serves once."""

    code = "SECOND_FACTOR_REUSED"


class PayoutMethodCoolingOff(LedgerError):
    """A payout method registered too recently to be paid to; fact ``available_at``."""

    code = "PAYOUT_METHOD_COOLING_OFF"


class InvalidPayoutMethod(LedgerError):
    code = "INVALID_PAYOUT_METHOD"


class PayoutMethodNotFound(LedgerError):
    code = "PAYOUT_METHOD_NOT_FOUND"


class BelowPayoutMinimum(LedgerError):
    code = "BELOW_PAYOUT_MINIMUM"


class DailyPayoutCapExceeded(LimitExceeded):
    """Cash per creator per calendar day (UTC) in payouts; facts ``cap_micros``,
    ``requested_today_micros``, ``asked_micros``."""

    code = "DAILY_PAYOUT_CAP_EXCEEDED"


class PayoutNotFound(LedgerError):
    code = "PAYOUT_NOT_FOUND"


class InvalidPayoutTransition(LedgerError):
    """The payout is not in the state the action needs: each phase happens at most once."""

    code = "INVALID_PAYOUT_TRANSITION"


class InvalidProviderReference(LedgerError):
    code = "INVALID_PROVIDER_REFERENCE"
