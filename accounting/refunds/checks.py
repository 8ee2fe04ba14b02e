"""Integrity checks of refunds (invariant 6): each refund is posted exactly once."""

from __future__ import annotations

from accounting.ledger.checks import Check

CHECKS: tuple[Check, ...] = (
    Check(
        6,
        "refund_posted_once",
        """
        SELECT format('refund %s of purchase %s has entry %s keyed %s',
                      r.id, r.purchase_id, r.entry_id, coalesce(e.event_key, 'none'))
          FROM refund r LEFT JOIN journal_entry e ON e.id = r.entry_id
         WHERE e.event_key IS DISTINCT FROM 'refund:' || r.purchase_id
            OR e.kind <> 'refund'
            OR NOT EXISTS (SELECT 1 FROM purchase pu
                            WHERE pu.id = r.purchase_id AND pu.status = 'completed')
        UNION ALL
        SELECT format('refund entry %s (%s) has no refund', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'refund'
           AND NOT EXISTS (SELECT 1 FROM refund r WHERE r.entry_id = e.id)""",
    ),
)
