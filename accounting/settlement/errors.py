"""The settlement flow's errors."""

from __future__ import annotations

from accounting.ledger.errors import LedgerError


class MalformedReport(LedgerError):
    """A settlement report that does not read: ``facts["line"]`` is the file's line number (the
    header is line 1) and ``field`` the column, when one is at fault. Nothing was imported."""

    code = "MALFORMED_SETTLEMENT_REPORT"


class ReportIdReused(LedgerError):
    """The provider's report id was imported before with other content."""

    code = "SETTLEMENT_REPORT_ID_REUSED"


class ExceptionNotFound(LedgerError):
    code = "RECONCILIATION_EXCEPTION_NOT_FOUND"


class ExceptionResolved(LedgerError):
    """The reconciliation exception was already resolved (``facts["action"]`` says how)."""

    code = "RECONCILIATION_EXCEPTION_RESOLVED"


class InvalidResolution(LedgerError):
    """An action finance may not take on this exception (``field`` names the input)."""

    code = "INVALID_RESOLUTION"
