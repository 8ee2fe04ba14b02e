"""The integrity check: every invariant of DESIGN.md re-derived from the raw postings.

It trusts nothing the ledger maintains for speed (stored balances, running balances, counts):
each check recomputes from ``posting`` and ``journal_entry`` and reports what disagrees.

The flows' own records are checked against the entries they posted, the same way: every gift and
feature unlock has exactly its entry, moving exactly what the record says; every hold release
moved exactly the diamonds of the gifts it marks; each creator's diamonds agree with their gifts
(pending = unreleased; available + reserved + redeemed by payouts = released); and a wallet at
zero coins holds zero deferred value. Payouts likewise: each phase has exactly its entry,
moving exactly the payout's diamonds and cash; a payout's status is its last phase; reserved
diamonds are those of requested payouts, and the cash in transit that of sent ones. These are
filed under invariant 6 (each business event is posted once, as it was asked) and, for the
empty wallet, 5 (balances re-derived).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MAX_VIOLATIONS_PER_CHECK = 100


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: int
    check: str
    detail: str


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    checked_at: datetime
    entries: int
    postings: int
    accounts: int
    checks: list[str]
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations


# (invariant, check name, SQL returning one text column describing each violation)
CHECKS: list[tuple[int, str, str]] = [
    (
        1,
        "entry_balances_per_commodity",
        """
        SELECT format('entry %s: %s postings sum to %s', entry_id, commodity, sum(amount))
          FROM posting GROUP BY entry_id, commodity HAVING sum(amount) <> 0""",
    ),
    (
        1,
        "entry_has_two_postings",
        """
        SELECT format('entry %s has %s posting(s)', e.id, count(p.id))
          FROM journal_entry e LEFT JOIN posting p ON p.entry_id = e.id
         GROUP BY e.id HAVING count(p.id) < 2""",
    ),
    (
        1,
        "trial_balance_per_commodity",
        """
        SELECT format('all %s postings sum to %s', commodity, sum(amount))
          FROM posting GROUP BY commodity HAVING sum(amount) <> 0""",
    ),
    (
        2,
        "posting_commodity_is_account_commodity",
        """
        SELECT format('posting %s is %s on %s account %s', p.id, p.commodity, a.commodity, a.code)
          FROM posting p JOIN account a ON a.id = p.account_id
         WHERE p.commodity <> a.commodity""",
    ),
    (
        3,
        "posting_time_is_entry_time",
        """
        SELECT format('posting %s is dated %s, its entry %s', p.id, p.posted_at, e.posted_at)
          FROM posting p JOIN journal_entry e ON e.id = p.entry_id
         WHERE p.posted_at <> e.posted_at""",
    ),
    (
        3,
        "reversal_negates_original",
        """
        SELECT format('entry %s does not exactly reverse entry %s', r.id, r.reverses_entry_id)
          FROM journal_entry r
         WHERE r.reverses_entry_id IS NOT NULL AND EXISTS (
               (SELECT account_id, -amount FROM posting WHERE entry_id = r.reverses_entry_id
                EXCEPT ALL SELECT account_id, amount FROM posting WHERE entry_id = r.id)
               UNION ALL
               (SELECT account_id, amount FROM posting WHERE entry_id = r.id
                EXCEPT ALL
                SELECT account_id, -amount FROM posting WHERE entry_id = r.reverses_entry_id))""",
    ),
    (
        3,
        "reversed_at_most_once",
        """
        SELECT format('entry %s is reversed %s times', reverses_entry_id, count(*))
          FROM journal_entry WHERE reverses_entry_id IS NOT NULL
         GROUP BY reverses_entry_id HAVING count(*) > 1""",
    ),
    (
        4,
        "no_overdraft_now",
        """
        SELECT format('%s holds %s', a.code, coalesce(sum(p.amount), 0) * a.normal_sign)
          FROM account a LEFT JOIN posting p ON p.account_id = a.id
         WHERE a.no_overdraft
         GROUP BY a.id HAVING coalesce(sum(p.amount), 0) * a.normal_sign < 0""",
    ),
    (
        4,
        "no_overdraft_ever",
        """
        SELECT format('%s went to %s at posting %s', code, running * normal_sign, id)
          FROM (SELECT a.code, a.normal_sign, p.id,
                       sum(p.amount) OVER (PARTITION BY p.account_id ORDER BY p.account_seq)
                           AS running
                  FROM posting p JOIN account a ON a.id = p.account_id
                 WHERE a.no_overdraft) h
         WHERE running * normal_sign < 0""",
    ),
    (
        5,
        "stored_balance_is_sum_of_postings",
        """
        SELECT format('%s stores %s over %s postings; its postings sum to %s over %s',
                      a.code, a.balance, a.posting_count,
                      coalesce(sum(p.amount), 0), count(p.id))
          FROM account a LEFT JOIN posting p ON p.account_id = a.id
         GROUP BY a.id
        HAVING a.balance <> coalesce(sum(p.amount), 0) OR a.posting_count <> count(p.id)""",
    ),
    (
        5,
        "running_balance_is_sum_so_far",
        """
        SELECT format('posting %s on account %s: running balance %s, postings so far sum to %s,'
                      ' sequence %s of %s', id, account_id, balance_after, running, account_seq, n)
          FROM (SELECT p.id, p.account_id, p.balance_after, p.account_seq,
                       sum(p.amount) OVER w AS running, row_number() OVER w AS n
                  FROM posting p
                WINDOW w AS (PARTITION BY p.account_id ORDER BY p.account_seq)) h
         WHERE balance_after <> running OR account_seq <> n""",
    ),
    (
        5,
        "history_in_time_order",
        """
        SELECT format('account %s: posting %s (seq %s) is dated before the posting it follows',
                      account_id, id, account_seq)
          FROM (SELECT p.id, p.account_id, p.account_seq, p.posted_at,
                       lag(p.posted_at) OVER (PARTITION BY p.account_id ORDER BY p.account_seq)
                           AS previous_at
                  FROM posting p) h
         WHERE posted_at < previous_at""",
    ),
    (
        6,
        "completed_purchase_posted_once",
        """
        SELECT format('purchase %s (%s) has entry %s keyed %s',
                      pu.id, pu.status, pu.entry_id, coalesce(e.event_key, 'none'))
          FROM purchase pu LEFT JOIN journal_entry e ON e.id = pu.entry_id
         WHERE (pu.status = 'completed')
               <> (e.event_key IS NOT NULL AND e.event_key = 'purchase:' || pu.id)""",
    ),
    (
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
    # Chargebacks: each has exactly its entry, and a won one exactly its undoing; what it says
    # it clawed back is what its clawbacks and its entry moved; a purchase is never both
    # refunded and charged back.
    (
        6,
        "chargeback_posted_once",
        """
        SELECT format('chargeback %s of purchase %s has entry %s keyed %s',
                      b.id, b.purchase_id, b.entry_id, coalesce(e.event_key, 'none'))
          FROM chargeback b LEFT JOIN journal_entry e ON e.id = b.entry_id
         WHERE e.event_key IS DISTINCT FROM 'chargeback:' || b.purchase_id
            OR e.kind <> 'chargeback'
            OR NOT EXISTS (SELECT 1 FROM purchase pu
                            WHERE pu.id = b.purchase_id AND pu.status = 'completed')
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
    (
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
    (
        6,
        "purchase_entry_belongs_to_a_completed_purchase",
        """
        SELECT format('entry %s (%s) has no completed purchase', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'purchase'
           AND NOT EXISTS (SELECT 1 FROM purchase pu
                            WHERE pu.entry_id = e.id AND pu.status = 'completed')""",
    ),
    (
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
    # Gifts, unlocks and holds: the flows' records against their entries.
    (
        6,
        "gift_has_its_entry",
        r"""
        SELECT format('gift %s has entry %s (%s, keyed %s), not the gift entry keyed %s',
                      g.id, g.entry_id, coalesce(e.kind, 'none'), coalesce(e.event_key, 'none'),
                      'gift:' || g.sender_id || ':' || g.idempotency_key)
          FROM gift g LEFT JOIN journal_entry e ON e.id = g.entry_id
         WHERE e.id IS NULL OR e.kind <> 'gift'
            OR e.event_key <> 'gift:' || g.sender_id || ':' || g.idempotency_key""",
    ),
    (
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
    (
        6,
        "gift_entry_belongs_to_a_gift",
        """
        SELECT format('entry %s (%s) has no gift', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'gift' AND NOT EXISTS (SELECT 1 FROM gift g WHERE g.entry_id = e.id)""",
    ),
    (
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
    (
        6,
        "gift_released_after_its_hold",
        """
        SELECT format('gift %s was released by entry %s before its hold ended', g.id, e.id)
          FROM gift g JOIN journal_entry e ON e.id = g.release_entry_id
         WHERE e.posted_at < g.release_at""",
    ),
    (
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
    (
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
    (
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
                       -- those of failed payouts, which return them to available
             SELECT x.creator_id, -sum(p.amount) AS diamonds
               FROM (SELECT DISTINCT pr.entry_id,
                            substring(a.code FROM '^creator\:(.*)\:diamonds\:reserved$')
                                AS creator_id
                       FROM posting pr JOIN account a ON a.id = pr.account_id
                      WHERE a.code ~ '^creator\:.*\:diamonds\:reserved$'
                     UNION
                     SELECT ev.entry_id, po.creator_id
                       FROM payout_event ev JOIN payout po ON po.id = ev.payout_id
                      WHERE ev.phase = 'failed') x
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
    (
        6,
        "feature_unlock_has_its_entry",
        """
        SELECT format('unlock %s has entry %s (%s, keyed %s), not the feature entry keyed %s',
                      u.id, u.entry_id, coalesce(e.kind, 'none'), coalesce(e.event_key, 'none'),
                      'feature:' || u.user_id || ':' || u.idempotency_key)
          FROM feature_unlock u LEFT JOIN journal_entry e ON e.id = u.entry_id
         WHERE e.id IS NULL OR e.kind <> 'feature'
            OR e.event_key <> 'feature:' || u.user_id || ':' || u.idempotency_key""",
    ),
    (
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
                          WHERE a.code = 'platform:revenue:features'), 0) AS revenue
                 FROM posting p JOIN account a ON a.id = p.account_id
                WHERE p.entry_id = u.entry_id) m
         WHERE (m.coins, m.value, m.revenue) <> (u.coins, u.value_micros, u.value_micros)""",
    ),
    (
        6,
        "feature_entry_belongs_to_an_unlock",
        """
        SELECT format('entry %s (%s) has no feature unlock', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'feature'
           AND NOT EXISTS (SELECT 1 FROM feature_unlock u WHERE u.entry_id = e.id)""",
    ),
    # The weighted average releases a wallet's last value with its last coin. A raw ``transfer``
    # entry (no flow posts one: tests and tools do) moves coins without their value by
    # definition, so a wallet one has touched is not held to this.
    (
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
    # Payouts: each phase is one event with exactly its entry, moving exactly what the payout
    # says; each payout's status is the last of its phases; reserved diamonds and the cash in
    # transit are exactly those of the payouts in flight.
    (
        6,
        "payout_phase_has_its_entry",
        """
        SELECT format('payout %s %s has entry %s (%s, keyed %s), not the payout entry keyed %s',
                      ev.payout_id, ev.phase, ev.entry_id, coalesce(e.kind, 'none'),
                      coalesce(e.event_key, 'none'), 'payout:' || ev.payout_id || ':' || ev.phase)
          FROM payout_event ev LEFT JOIN journal_entry e ON e.id = ev.entry_id
         WHERE e.id IS NULL OR e.kind <> 'payout'
            OR e.event_key <> 'payout:' || ev.payout_id || ':' || ev.phase""",
    ),
    (
        6,
        "payout_entry_belongs_to_a_phase",
        """
        SELECT format('entry %s (%s) is no payout phase', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'payout'
           AND NOT EXISTS (SELECT 1 FROM payout_event ev WHERE ev.entry_id = e.id)""",
    ),
    (
        6,
        "payout_entry_moved_what_the_payout_says",
        r"""
        SELECT format('payout %s %s: entry %s moved (available, reserved, in transit, payable)'
                      ' %s, expected %s', ev.payout_id, ev.phase, ev.entry_id, m, x)
          FROM payout_event ev
          JOIN payout po ON po.id = ev.payout_id
         CROSS JOIN LATERAL (
               SELECT coalesce(sum(p.amount) FILTER (
                          WHERE a.code = format('creator:%s\:diamonds\:available',
                                                po.creator_id)), 0) AS available,
                      coalesce(sum(p.amount) FILTER (
                          WHERE a.code = format('creator:%s\:diamonds\:reserved',
                                                po.creator_id)), 0) AS reserved,
                      coalesce(sum(p.amount) FILTER (
                          WHERE a.code = 'platform\:payouts_in_transit\:' || po.currency), 0)
                          AS in_transit,
                      coalesce(sum(p.amount) FILTER (
                          WHERE a.code = format('creator:%s\:payable', po.creator_id)), 0)
                          AS payable
                 FROM posting p JOIN account a ON a.id = p.account_id
                WHERE p.entry_id = ev.entry_id) m
         CROSS JOIN LATERAL (
               SELECT CASE ev.phase WHEN 'requested' THEN po.diamonds
                                    WHEN 'sent' THEN 0 WHEN 'paid' THEN 0
                                    ELSE -po.diamonds END AS available,
                      CASE ev.phase WHEN 'requested' THEN -po.diamonds
                                    WHEN 'rejected' THEN po.diamonds
                                    WHEN 'sent' THEN po.diamonds ELSE 0 END AS reserved,
                      CASE ev.phase WHEN 'sent' THEN -po.amount_micros
                                    WHEN 'paid' THEN po.amount_micros
                                    WHEN 'failed' THEN po.amount_micros ELSE 0 END AS in_transit,
                      CASE ev.phase WHEN 'sent' THEN po.amount_micros
                                    WHEN 'failed' THEN -po.amount_micros ELSE 0 END AS payable
              ) x
         WHERE (m.available, m.reserved, m.in_transit, m.payable)
               <> (x.available, x.reserved, x.in_transit, x.payable)""",
    ),
    (
        6,
        "payout_status_follows_its_phases",
        """
        SELECT format('payout %s is %s; its phases are %s', po.id, po.status,
                      coalesce(string_agg(ev.phase, ', ' ORDER BY ev.id), 'none'))
          FROM payout po LEFT JOIN payout_event ev ON ev.payout_id = po.id
         GROUP BY po.id, po.status
        HAVING coalesce(string_agg(ev.phase, ',' ORDER BY ev.id), '')
               <> CASE po.status WHEN 'requested' THEN 'requested'
                                 WHEN 'rejected' THEN 'requested,rejected'
                                 WHEN 'sent' THEN 'requested,sent'
                                 WHEN 'paid' THEN 'requested,sent,paid'
                                 ELSE 'requested,sent,failed' END""",
    ),
    (
        6,
        "creator_reserved_is_requested_payouts",
        r"""
        WITH held AS (
             SELECT substring(a.code FROM '^creator\:(.*)\:diamonds\:reserved$') AS creator_id,
                    -coalesce(sum(p.amount), 0) AS diamonds
               FROM account a LEFT JOIN posting p ON p.account_id = a.id
              WHERE a.code ~ '^creator\:.*\:diamonds\:reserved$'
              GROUP BY a.code),
        requested AS (
             SELECT creator_id, sum(diamonds) AS diamonds
               FROM payout WHERE status = 'requested' GROUP BY creator_id)
        SELECT format('creator %s has %s diamonds reserved; their requested payouts hold %s',
                      coalesce(h.creator_id, r.creator_id), coalesce(h.diamonds, 0),
                      coalesce(r.diamonds, 0))
          FROM held h FULL JOIN requested r ON r.creator_id = h.creator_id
         WHERE coalesce(h.diamonds, 0) <> coalesce(r.diamonds, 0)""",
    ),
    (
        6,
        "payouts_in_transit_are_sent_payouts",
        r"""
        WITH held AS (
             SELECT substring(a.code FROM '^platform\:payouts_in_transit\:(.*)$') AS currency,
                    -coalesce(sum(p.amount), 0) AS micros
               FROM account a LEFT JOIN posting p ON p.account_id = a.id
              WHERE a.code ~ '^platform\:payouts_in_transit\:'
              GROUP BY a.code),
        sent AS (
             SELECT currency, sum(amount_micros) AS micros
               FROM payout WHERE status = 'sent' GROUP BY currency)
        SELECT format('%s in transit is %s micro-units; the sent payouts hold %s',
                      coalesce(h.currency, s.currency), coalesce(h.micros, 0),
                      coalesce(s.micros, 0))
          FROM held h FULL JOIN sent s ON s.currency = h.currency
         WHERE coalesce(h.micros, 0) <> coalesce(s.micros, 0)""",
    ),
]


async def check_integrity(session: AsyncSession) -> IntegrityReport:
    """Run every check in one repeatable-read snapshot, so they all see the same books."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    checked_at, entries, postings, accounts = (
        await session.execute(
            text(
                "SELECT clock_timestamp(), (SELECT count(*) FROM journal_entry),"
                " (SELECT count(*) FROM posting), (SELECT count(*) FROM account)"
            )
        )
    ).one()
    violations: list[Violation] = []
    for invariant, name, sql in CHECKS:
        rows = await session.scalars(text(f"{sql} LIMIT {MAX_VIOLATIONS_PER_CHECK}"))
        violations += [Violation(invariant, name, detail) for detail in rows]
    return IntegrityReport(
        checked_at=checked_at,
        entries=entries,
        postings=postings,
        accounts=accounts,
        checks=[name for _, name, _ in CHECKS],
        violations=violations,
    )
