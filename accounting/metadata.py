"""Every table of every flow on one ``MetaData``: what migrations compare their models against.

Each flow declares its own tables beside its code (``accounting/<flow>/tables.py``) on the
ledger core's declarative base; importing this module registers them all."""

from __future__ import annotations

from accounting.chargebacks import tables as chargebacks
from accounting.close import tables as close
from accounting.corrections import tables as corrections
from accounting.gifts import tables as gifts
from accounting.ledger.tables import Base
from accounting.payouts import tables as payouts
from accounting.policy import tables as policy
from accounting.purchases import tables as purchases
from accounting.reads import tables as reads
from accounting.refunds import tables as refunds
from accounting.settlement import tables as settlement

FLOW_TABLES = (
    policy,
    purchases,
    gifts,
    refunds,
    chargebacks,
    payouts,
    corrections,
    settlement,
    close,
    reads,
)
"""The modules whose tables join the core's (account, journal entry, posting) on ``Base``
(the last, the reads' stored totals of the postings)."""

__all__ = ["FLOW_TABLES", "Base"]
