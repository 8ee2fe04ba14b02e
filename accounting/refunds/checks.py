"""Integrity checks of refunds (invariant 6): each refund is posted exactly once."""

from __future__ import annotations

from accounting.ledger.checks import Check, undoes_a_completed_purchase

CHECKS: tuple[Check, ...] = (
    Check(
        6,
        "refund_posted_once",
        undoes_a_completed_purchase("refund")
        + """
        UNION ALL
        SELECT format('refund entry %s (%s) has no refund', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'refund'
           AND NOT EXISTS (SELECT 1 FROM refund r WHERE r.entry_id = e.id)""",
    ),
)
