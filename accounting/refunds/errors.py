"""Domain errors. One root, each with a stable code and the facts that caused it."""

from __future__ import annotations

from accounting.ledger.errors import LedgerError


class RefundNotAllowed(LedgerError):
    """The refund check said no; ``reasons`` holds every code it gave."""

    code = "REFUND_NOT_ALLOWED"
