"""Integrity checks of gifts, holds and feature unlocks (invariant 6, and 5 for the empty
wallet): every gift and unlock has exactly its entry, moving exactly what the record says;
every hold release moved exactly the diamonds of the gifts it marks; each creator's diamonds
agree with their gifts (pending = unreleased; available + reserved + redeemed = released); a
wallet at zero coins holds zero deferred value."""

from __future__ import annotations

from accounting.ledger.checks import Check, record_has_its_entry

CHECKS: tuple[Check, ...] = (
    record_has_its_entry(
        "gift_has_its_entry",
        record="gift",
        table="gift",
        kind="gift",
        key="'gift:' || r.sender_id || ':' || r.idempotency_key",
    ),
    Check(
        6,
        "gift_entry_moved_what_the_gift_says",
        r"""
        SELECT format('gift %s is %s coins, %s of value, %s diamonds, %s payable;'
                      ' its entry %s moved %s, %s, %s, %s', g.id, g.coins, g.value_micros,
                      g.diamonds, g.payable_micros, g.entry_id, m.coins, m.value, m.diamonds,
                      m.payable)
          FROM gift g
         CROSS JOIN LATERAL (
               SELECT coalesce(sum(p.amount) FILTER (
                          WHERE a.code = format('user:%s\:coins', g.sender_id)), 0) AS coins,
                      coalesce(sum(p.amount) FILTER (
                          WHERE a.code = format('user:%s\:coins_value', g.sender_id)), 0) AS value,
                      coalesce(-sum(p.amount) FILTER (
                          WHERE a.code = format('creator:%s\:diamonds\:pending', g.creator_id)),
                          0) AS diamonds,
                      coalesce(-sum(p.amount) FILTER (
                          WHERE a.code = format('creator:%s\:payable', g.creator_id)), 0)
                          AS payable
                 FROM posting p JOIN account a ON a.id = p.account_id
                WHERE p.entry_id = g.entry_id) m
         WHERE (m.coins, m.value, m.diamonds, m.payable)
               <> (g.coins, g.value_micros, g.diamonds, g.payable_micros)""",
    ),
    Check(
        6,
        "gift_entry_belongs_to_a_gift",
        """
        SELECT format('entry %s (%s) has no gift', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'gift' AND NOT EXISTS (SELECT 1 FROM gift g WHERE g.entry_id = e.id)""",
    ),
    Check(
        6,
        "released_gift_points_to_its_creators_release",
        r"""
        SELECT format('gift %s to %s is marked released by entry %s (%s), which releases none'
                      ' of their pending diamonds', g.id, g.creator_id, e.id, e.kind)
          FROM gift g JOIN journal_entry e ON e.id = g.release_entry_id
         WHERE e.kind <> 'hold_release' OR NOT EXISTS (
               SELECT 1 FROM posting p JOIN account a ON a.id = p.account_id
                WHERE p.entry_id = e.id AND p.amount > 0
                  AND a.code = format('creator:%s\:diamonds\:pending', g.creator_id))""",
    ),
    Check(
        6,
        "gift_released_after_its_hold",
        """
        SELECT format('gift %s was released by entry %s before its hold ended', g.id, e.id)
          FROM gift g JOIN journal_entry e ON e.id = g.release_entry_id
         WHERE e.posted_at < g.release_at""",
    ),
    Check(
        6,
        "hold_release_moved_its_gifts_diamonds",
        r"""
        SELECT format('hold release %s moved %s diamonds out of pending and %s into available;'
                      ' the %s gift(s) it released hold %s', e.id, m.out_of_pending,
                      m.into_available, r.gifts, r.diamonds)
          FROM journal_entry e
         CROSS JOIN LATERAL (
               SELECT coalesce(sum(p.amount) FILTER (
                          WHERE a.code ~ '^creator\:.*\:diamonds\:pending$'), 0) AS out_of_pending,
                      coalesce(-sum(p.amount) FILTER (
                          WHERE a.code ~ '^creator\:.*\:diamonds\:available$'), 0)
                          AS into_available
                 FROM posting p JOIN account a ON a.id = p.account_id
                WHERE p.entry_id = e.id) m
         CROSS JOIN LATERAL (  -- less what chargebacks standing at the release had clawed
               SELECT count(*) AS gifts,
                      coalesce(sum(g.diamonds - (
                          SELECT coalesce(sum(c.diamonds), 0)
                            FROM chargeback_clawback c
                            JOIN chargeback b ON b.id = c.chargeback_id
                            LEFT JOIN journal_entry w ON w.id = b.won_entry_id
                           WHERE c.gift_id = g.id
                             AND (w.id IS NULL OR w.posted_at > e.posted_at))), 0) AS diamonds
                 FROM gift g WHERE g.release_entry_id = e.id) r
         WHERE e.kind = 'hold_release'
           AND (r.gifts = 0 OR m.out_of_pending <> r.diamonds OR m.into_available <> r.diamonds)""",
    ),
    Check(
        6,
        "creator_pending_is_unreleased_gifts",
        r"""
        WITH held AS (
             SELECT substring(a.code FROM '^creator\:(.*)\:diamonds\:pending$') AS creator_id,
                    -coalesce(sum(p.amount), 0) AS diamonds
               FROM account a LEFT JOIN posting p ON p.account_id = a.id
              WHERE a.code ~ '^creator\:.*\:diamonds\:pending$'
              GROUP BY a.code),
        unreleased AS (  -- less what standing chargebacks clawed back from them
             SELECT creator_id, sum(diamonds - (SELECT coalesce(sum(c.diamonds), 0)
                                     FROM chargeback_clawback c
                                     JOIN chargeback b ON b.id = c.chargeback_id
                                    WHERE c.gift_id = gift.id AND b.status <> 'won')) AS diamonds
               FROM gift WHERE release_entry_id IS NULL GROUP BY creator_id)
        SELECT format('creator %s has %s diamonds pending; their unreleased gifts hold %s',
                      coalesce(h.creator_id, u.creator_id), coalesce(h.diamonds, 0),
                      coalesce(u.diamonds, 0))
          FROM held h FULL JOIN unreleased u ON u.creator_id = h.creator_id
         WHERE coalesce(h.diamonds, 0) <> coalesce(u.diamonds, 0)""",
    ),
    Check(
        6,
        "creator_released_is_available_reserved_or_redeemed",
        r"""
        WITH kept AS (
             SELECT substring(a.code FROM '^creator\:(.*)\:diamonds\:(?\:available|reserved)$')
                        AS creator_id,
                    -coalesce(sum(p.amount), 0) AS diamonds
               FROM account a LEFT JOIN posting p ON p.account_id = a.id
              WHERE a.code ~ '^creator\:.*\:diamonds\:(available|reserved)$'
              GROUP BY 1),
        redeemed AS (  -- by payouts: entries that move a creator's reserved diamonds, and
                       -- those of failed or returned payouts, which return them to available
             SELECT x.creator_id, -sum(p.amount) AS diamonds
               FROM (SELECT DISTINCT pr.entry_id,
                            substring(a.code FROM '^creator\:(.*)\:diamonds\:reserved$')
                                AS creator_id
                       FROM posting pr JOIN account a ON a.id = pr.account_id
                      WHERE a.code ~ '^creator\:.*\:diamonds\:reserved$'
                     UNION
                     SELECT ev.entry_id, po.creator_id
                       FROM payout_event ev JOIN payout po ON po.id = ev.payout_id
                      WHERE ev.phase IN ('failed', 'returned')) x
               JOIN posting p ON p.entry_id = x.entry_id
               JOIN account d ON d.id = p.account_id AND d.code = 'platform:diamonds:redeemed'
              GROUP BY 1),
        released AS (  -- less what standing chargebacks clawed back from them
             SELECT creator_id, sum(diamonds - (SELECT coalesce(sum(c.diamonds), 0)
                                     FROM chargeback_clawback c
                                     JOIN chargeback b ON b.id = c.chargeback_id
                                    WHERE c.gift_id = gift.id AND b.status <> 'won')) AS diamonds
               FROM gift WHERE release_entry_id IS NOT NULL GROUP BY creator_id)
        SELECT format('creator %s has %s diamonds available or reserved and %s redeemed;'
                      ' their released gifts hold %s', c.creator_id, coalesce(k.diamonds, 0),
                      coalesce(d.diamonds, 0), coalesce(r.diamonds, 0))
          FROM (SELECT creator_id FROM kept UNION SELECT creator_id FROM redeemed
                UNION SELECT creator_id FROM released) c
          LEFT JOIN kept k ON k.creator_id = c.creator_id
          LEFT JOIN redeemed d ON d.creator_id = c.creator_id
          LEFT JOIN released r ON r.creator_id = c.creator_id
         WHERE coalesce(k.diamonds, 0) + coalesce(d.diamonds, 0) <> coalesce(r.diamonds, 0)""",
    ),
    record_has_its_entry(
        "feature_unlock_has_its_entry",
        record="unlock",
        table="feature_unlock",
        kind="feature",
        key="'feature:' || r.user_id || ':' || r.idempotency_key",
    ),
    Check(
        6,
        "feature_entry_moved_what_the_unlock_says",
        r"""
        SELECT format('unlock %s is %s coins and %s of value; its entry %s moved %s and %s,'
                      ' %s to feature revenue', u.id, u.coins, u.value_micros, u.entry_id,
                      m.coins, m.value, m.revenue)
          FROM feature_unlock u
         CROSS JOIN LATERAL (
               SELECT coalesce(sum(p.amount) FILTER (
                          WHERE a.code = format('user:%s\:coins', u.user_id)), 0) AS coins,
                      coalesce(sum(p.amount) FILTER (
                          WHERE a.code = format('user:%s\:coins_value', u.user_id)), 0) AS value,
                      coalesce(-sum(p.amount) FILTER (
                          WHERE a.code ~ '^platform:revenue:features(#[0-9]+)?$'), 0)
                      AS revenue
                 FROM posting p JOIN account a ON a.id = p.account_id
                WHERE p.entry_id = u.entry_id) m
         WHERE (m.coins, m.value, m.revenue) <> (u.coins, u.value_micros, u.value_micros)""",
    ),
    Check(
        6,
        "feature_entry_belongs_to_an_unlock",
        """
        SELECT format('entry %s (%s) has no feature unlock', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'feature'
           AND NOT EXISTS (SELECT 1 FROM feature_unlock u WHERE u.entry_id = e.id)""",
    ),
    Check(
        5,
        "empty_wallet_has_no_deferred_value",
        r"""
        SELECT format('user %s holds 0 coins and %s of deferred value', w.user_id, w.value)
          FROM (SELECT substring(a.code FROM '^user\:(.*)\:coins_value$') AS user_id,
                       -coalesce(sum(p.amount), 0) AS value
                  FROM account a LEFT JOIN posting p ON p.account_id = a.id
                 WHERE a.code ~ '^user\:.*\:coins_value$'
                 GROUP BY a.code) w
         WHERE w.value <> 0
           AND NOT EXISTS (
               SELECT 1 FROM account c JOIN posting p ON p.account_id = c.id
                WHERE c.code = format('user:%s\:coins', w.user_id)
               HAVING sum(p.amount) <> 0)
           AND NOT EXISTS (
               SELECT 1 FROM account c
                 JOIN posting p ON p.account_id = c.id
                 JOIN journal_entry e ON e.id = p.entry_id
                 LEFT JOIN journal_entry o ON o.id = e.reverses_entry_id
                WHERE c.code = format('user:%s\:coins', w.user_id)
                  AND 'transfer' IN (e.kind, o.kind))""",
    ),
)
