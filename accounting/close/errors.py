"""The period close's errors."""

from __future__ import annotations

from accounting.ledger.errors import LedgerError


class InvalidMonth(LedgerError):
    """Not a month as ``YYYY-MM``."""

    code = "INVALID_MONTH"


class PeriodNotEnded(LedgerError):
    """The month has not ended yet (in UTC): ``facts["ends_at"]``."""

    code = "PERIOD_NOT_ENDED"


class PeriodAlreadyClosed(LedgerError):
    code = "PERIOD_ALREADY_CLOSED"


class PeriodOutOfOrder(LedgerError):
    """Months close in order, with no gap: ``facts["expected"]`` is the next one to close."""

    code = "PERIOD_OUT_OF_ORDER"


class UnresolvedExceptions(LedgerError):
    """Reconciliation exceptions of the period are still open (``facts["open_exceptions"]``):
    resolve them, or close with an override and its reason."""

    code = "UNRESOLVED_RECONCILIATION_EXCEPTIONS"


class TransactionsInFlight(LedgerError):
    """Transactions in flight outlasted the wait: nothing was sealed or closed; try again."""

    code = "TRANSACTIONS_IN_FLIGHT"
