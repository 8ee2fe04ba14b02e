"""The chargeback flow's errors."""

from __future__ import annotations

from accounting.ledger.errors import LedgerError


class ChargebackExceedsPurchase(LedgerError):
    """A provider takes back more of a purchase than is left of its price (the facts say how
    much it asked and how much was left, in minor units)."""

    code = "CHARGEBACK_EXCEEDS_PURCHASE"


class NothingOwed(LedgerError):
    """A receivable written off that the user does not owe (zero, or never opened)."""

    code = "NOTHING_OWED"
