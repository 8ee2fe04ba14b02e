"""The refund flow's errors."""

from __future__ import annotations

from accounting.ledger.errors import LedgerError


class RefundNotAllowed(LedgerError):
    """The refund check said no; ``reasons`` holds every code it gave."""

    code = "REFUND_NOT_ALLOWED"
