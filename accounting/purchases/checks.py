"""Integrity checks of purchases (invariant 6): each completed purchase is posted exactly once,
every purchase entry belongs to a completed purchase, and it granted what was bought."""

from __future__ import annotations

from accounting.ledger.checks import Check

CHECKS: tuple[Check, ...] = (
    Check(
        6,
        "completed_purchase_posted_once",
        """
        SELECT format('purchase %s (%s) has entry %s keyed %s',
                      pu.id, pu.status, pu.entry_id, coalesce(e.event_key, 'none'))
          FROM purchase pu LEFT JOIN journal_entry e ON e.id = pu.entry_id
         WHERE (pu.status = 'completed')
               <> (e.event_key IS NOT NULL AND e.event_key = 'purchase:' || pu.id)""",
    ),
    Check(
        6,
        "purchase_entry_belongs_to_a_completed_purchase",
        """
        SELECT format('entry %s (%s) has no completed purchase', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'purchase'
           AND NOT EXISTS (SELECT 1 FROM purchase pu
                            WHERE pu.entry_id = e.id AND pu.status = 'completed')""",
    ),
    Check(
        6,
        "purchase_granted_what_was_bought",
        r"""
        SELECT format('purchase %s bought %s coins, its entry granted %s',
                      pu.id, pu.coins + pu.bonus_coins, -sum(p.amount))
          FROM purchase pu
          JOIN posting p ON p.entry_id = pu.entry_id
          JOIN account a ON a.id = p.account_id AND a.code = format('user:%s\:coins', pu.user_id)
         GROUP BY pu.id HAVING -sum(p.amount) <> pu.coins + pu.bonus_coins""",
    ),
)
