"""The breakage flow's errors."""

from __future__ import annotations

from accounting.ledger.errors import LedgerError


class BreakageDateNotEnded(LedgerError):
    """Breakage is recognised as of a day that has ended (UTC): a later date is only for a dry
    run, which forecasts what would break by then."""

    code = "BREAKAGE_DATE_NOT_ENDED"
