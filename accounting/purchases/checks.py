"""Integrity checks of purchases (invariant 6): each completed purchase is posted exactly once,
every purchase entry belongs to a completed purchase, and it granted what was bought, less the
coins it withheld for what it repaid of its buyer's receivable; that repayment is exactly what
the purchase records, on its own buyer's receivable, and (invariant 4) never took the receivable
below zero nor raised it."""

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
        SELECT format('purchase %s bought %s coins%s, its entry granted %s',
                      pu.id, pu.coins + pu.bonus_coins,
                      CASE WHEN pu.coins_withheld > 0
                           THEN format(' and withheld %s for its receivable', pu.coins_withheld)
                           ELSE '' END,
                      -sum(p.amount))
          FROM purchase pu
          JOIN posting p ON p.entry_id = pu.entry_id
          JOIN account a ON a.id = p.account_id AND a.code = format('user:%s\:coins', pu.user_id)
         GROUP BY pu.id
        HAVING -sum(p.amount) <> pu.coins + pu.bonus_coins - pu.coins_withheld""",
    ),
    Check(
        6,
        "purchase_repaid_what_it_says",
        r"""
        SELECT format('purchase %s says it repaid %s and withheld %s of %s coins;'
                      ' its entry repaid %s of a value of %s, which withholds %s',
                      pu.id, pu.receivable_repaid_micros, pu.coins_withheld,
                      pu.coins + pu.bonus_coins, m.repaid, m.value,
                      (pu.coins + pu.bonus_coins) - m.granted)
          FROM purchase pu
         CROSS JOIN LATERAL (
               SELECT coalesce(-sum(p.amount) FILTER (
                          WHERE a.code = format('user:%s\:receivable', pu.user_id)), 0) AS repaid,
                      coalesce(-sum(p.amount) FILTER (
                          WHERE a.code LIKE 'user:%\:receivable'
                            AND a.code <> format('user:%s\:receivable', pu.user_id)), 0)
                          AS others,
                      coalesce(-sum(p.amount) FILTER (
                          WHERE a.code = format('user:%s\:coins_value', pu.user_id)), 0)
                      + coalesce(-sum(p.amount) FILTER (
                          WHERE a.code = format('user:%s\:receivable', pu.user_id)), 0) AS value
                 FROM posting p JOIN account a ON a.id = p.account_id
                WHERE p.entry_id = pu.entry_id) v
         CROSS JOIN LATERAL (
               SELECT v.repaid, v.value, v.others,
                      CASE WHEN v.value > 0
                           THEN floor((pu.coins + pu.bonus_coins)::numeric
                                      * (v.value - v.repaid) / v.value)::bigint
                           ELSE 0 END AS granted) m
         WHERE pu.status = 'completed'
           AND (m.repaid <> pu.receivable_repaid_micros OR m.others <> 0
                OR pu.coins_withheld <> (pu.coins + pu.bonus_coins) - m.granted)""",
    ),
    Check(
        4,
        "receivable_repaid_within_the_debt",
        r"""
        SELECT format('purchase entry %s took %s to %s at posting %s',
                      p.entry_id, a.code, p.balance_after, p.id)
          FROM posting p
          JOIN journal_entry e ON e.id = p.entry_id AND e.kind = 'purchase'
          JOIN account a ON a.id = p.account_id AND a.code LIKE 'user:%\:receivable'
         WHERE p.amount > 0 OR p.balance_after < 0""",
    ),
)
