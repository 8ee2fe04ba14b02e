"""Integrity checks of chargebacks (invariant 6): each chargeback is posted once, its entry
moved what the chargeback and its clawbacks say, and a purchase's chargebacks take back no more
than its price."""

from __future__ import annotations

from accounting.ledger.checks import Check

CHECKS: tuple[Check, ...] = (
    Check(
        6,
        "chargeback_posted_once",
        """
        SELECT format('chargeback %s of purchase %s has entry %s keyed %s',
                      r.id, r.purchase_id, r.entry_id, coalesce(e.event_key, 'none'))
          FROM (SELECT b.id, b.purchase_id, b.entry_id,
                       row_number() OVER (PARTITION BY b.purchase_id ORDER BY b.id) AS n
                  FROM chargeback b) r
          LEFT JOIN journal_entry e ON e.id = r.entry_id
         WHERE e.event_key IS DISTINCT FROM 'chargeback:' || r.purchase_id
                                            || CASE WHEN r.n > 1 THEN ':' || r.n ELSE '' END
            OR e.kind <> 'chargeback'
            OR NOT EXISTS (SELECT 1 FROM purchase pu
                            WHERE pu.id = r.purchase_id AND pu.status = 'completed')
        UNION ALL
        SELECT format('purchase %s of %s minor units of %s: its chargebacks took back %s',
                      pu.id, pu.price_minor, pu.currency, sum(b.cash_minor))
          FROM chargeback b JOIN purchase pu ON pu.id = b.purchase_id
         GROUP BY pu.id, pu.price_minor, pu.currency
        HAVING sum(b.cash_minor) > pu.price_minor OR bool_or(b.currency <> pu.currency)
        UNION ALL
        SELECT format('chargeback %s (%s) has won entry %s keyed %s', b.id, b.status,
                      b.won_entry_id, coalesce(w.event_key, 'none'))
          FROM chargeback b LEFT JOIN journal_entry w ON w.id = b.won_entry_id
         WHERE (b.status = 'won')
               <> (w.kind = 'chargeback_won' AND w.event_key = format('chargeback:%s:won',
                                                                        b.purchase_id))
        UNION ALL
        SELECT format('%s entry %s (%s) has no chargeback', e.kind, e.id, e.event_key)
          FROM journal_entry e
         WHERE (e.kind = 'chargeback'
                AND NOT EXISTS (SELECT 1 FROM chargeback b WHERE b.entry_id = e.id))
            OR (e.kind = 'chargeback_won'
                AND NOT EXISTS (SELECT 1 FROM chargeback b WHERE b.won_entry_id = e.id))""",
    ),
    Check(
        6,
        "chargeback_moved_what_it_says",
        r"""
        SELECT format('chargeback %s says %s coins, %s diamonds and %s payable clawed back;'
                      ' its entry moved %s coins, its clawbacks hold %s diamonds and %s payable',
                      b.id, b.coins_clawed, b.diamonds_clawed, b.payable_clawed_micros,
                      m.coins, c.diamonds, c.payable)
          FROM chargeback b
         CROSS JOIN LATERAL (
               SELECT coalesce(sum(p.amount), 0) AS coins
                 FROM posting p JOIN account a ON a.id = p.account_id
                WHERE p.entry_id = b.entry_id AND a.code = format('user:%s:coins', b.user_id)) m
         CROSS JOIN LATERAL (
               SELECT coalesce(sum(x.diamonds), 0) AS diamonds,
                      coalesce(sum(x.payable_micros), 0) AS payable
                 FROM chargeback_clawback x WHERE x.chargeback_id = b.id) c
         WHERE (m.coins, c.diamonds, c.payable)
               <> (b.coins_clawed, b.diamonds_clawed, b.payable_clawed_micros)
        UNION ALL
        SELECT format('chargeback %s traced %s spent coins; it says %s were spent',
                      b.id, t.coins, b.coins_spent)
          FROM chargeback b
         CROSS JOIN LATERAL (SELECT coalesce(sum(coins), 0) AS coins
                               FROM chargeback_trace WHERE chargeback_id = b.id) t
         WHERE t.coins > b.coins_spent
        UNION ALL
        SELECT format('%s %s is %s coins; standing chargebacks traced %s of them',
                      s.spending, s.spending_id, s.coins, s.traced)
          FROM (SELECT t.spending, t.spending_id, sum(t.coins) AS traced,
                       coalesce(max(g.coins), max(u.coins)) AS coins
                  FROM chargeback_trace t
                  JOIN chargeback b ON b.id = t.chargeback_id AND b.status <> 'won'
                  LEFT JOIN gift g ON t.spending = 'gift' AND g.id = t.spending_id
                  LEFT JOIN feature_unlock u ON t.spending = 'unlock' AND u.id = t.spending_id
                 GROUP BY t.spending, t.spending_id) s
         WHERE s.coins IS NULL OR s.traced > s.coins
        UNION ALL
        SELECT format('chargeback %s clawed back gift %s without tracing %s of its coins to it',
                      c.chargeback_id, c.gift_id, c.coins)
          FROM chargeback_clawback c
         WHERE NOT EXISTS (SELECT 1 FROM chargeback_trace t
                            WHERE t.chargeback_id = c.chargeback_id AND t.spending = 'gift'
                              AND t.spending_id = c.gift_id AND t.coins = c.coins)
        UNION ALL
        SELECT format('purchase %s was refunded (%s) and charged back (%s)',
                      r.purchase_id, r.id, b.id)
          FROM refund r JOIN chargeback b ON b.purchase_id = r.purchase_id
         WHERE b.status <> 'won'""",
    ),
    Check(
        6,
        "receivable_write_off_moves_one_receivable_to_fraud_losses",
        r"""
        SELECT format('write-off %s (%s) moves %s, not one user''s receivable to fraud losses',
                      e.id, e.event_key, coalesce(m.moved, 'nothing'))
          FROM journal_entry e
         CROSS JOIN LATERAL (
               SELECT string_agg(a.code || ' ' || p.amount, ', ' ORDER BY p.id) AS moved,
                      count(*) AS n,
                      sum(p.amount) FILTER (WHERE a.code = 'platform\:expense\:fraud_losses')
                          AS lost,
                      sum(p.amount) FILTER (
                          WHERE a.code = format('user:%s\:receivable', e.refs->>'user_id'))
                          AS owed
                 FROM posting p JOIN account a ON a.id = p.account_id
                WHERE p.entry_id = e.id) m
         WHERE e.kind = 'receivable_write_off'
           AND (m.n <> 2 OR m.lost IS NULL OR m.owed IS NULL OR m.lost <= 0
                OR m.lost <> -m.owed OR e.event_key NOT LIKE
                   'receivable\_write\_off:' || (e.refs->>'user_id') || ':%')""",
    ),
)
