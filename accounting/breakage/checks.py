"""Integrity checks of breakage: each ``breakage`` entry recognises one whole wallet (its
postings move exactly the value its refs name from that user's ``coins_value``, leaving it at
zero, to breakage revenue, under the key of its run date and user), and the wallet was dormant
(no posting on its coins or their value from the cut-off its run date and period give until
the entry)."""

from __future__ import annotations

from accounting.ledger.checks import Check

CHECKS: tuple[Check, ...] = (
    Check(
        6,
        "breakage_recognises_a_whole_wallet",
        """
        SELECT format('breakage entry %s (%s) does not move the whole value of %s to breakage',
                      e.id, e.event_key, coalesce(e.refs->>'user_id', 'no user'))
          FROM journal_entry e
         WHERE e.kind = 'breakage'
           AND CASE WHEN coalesce(e.refs->>'value_micros', '') !~ '^[0-9]{1,18}$' THEN true
           ELSE (e.event_key IS DISTINCT FROM
                  'breakage:' || (e.refs->>'run_date') || ':' || (e.refs->>'user_id')
                OR (SELECT count(*) FROM posting p WHERE p.entry_id = e.id) <> 2
                OR NOT EXISTS (
                    SELECT 1 FROM posting p JOIN account a ON a.id = p.account_id
                     WHERE p.entry_id = e.id
                       AND a.code = format('user:%s:coins_value', e.refs->>'user_id')
                       AND p.amount = (e.refs->>'value_micros')::bigint
                       AND p.amount > 0 AND p.balance_after = 0)
                OR NOT EXISTS (
                    SELECT 1 FROM posting p JOIN account a ON a.id = p.account_id
                     WHERE p.entry_id = e.id AND a.code = 'platform:revenue:breakage'
                       AND p.amount = -(e.refs->>'value_micros')::bigint)) END""",
    ),
    Check(
        6,
        "breakage_wallet_was_dormant",
        """
        SELECT format('breakage entry %s (%s): the wallet moved at %s, after its cut-off %s',
                      e.id, e.event_key, moved.at, e.refs->>'cutoff')
          FROM journal_entry e
          CROSS JOIN LATERAL (
               SELECT max(p.posted_at) AS at
                 FROM account a JOIN posting p ON p.account_id = a.id
                WHERE a.code IN (format('user:%s:coins', e.refs->>'user_id'),
                                 format('user:%s:coins_value', e.refs->>'user_id'))
                  AND p.posted_at <= e.posted_at AND p.entry_id <> e.id) moved
         WHERE e.kind = 'breakage'
           AND NOT CASE
                WHEN coalesce(e.refs->>'run_date', '') !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
                  OR coalesce(e.refs->>'after_days', '') !~ '^[0-9]{1,4}$' THEN false
                WHEN e.refs->>'cutoff' IS DISTINCT FROM
                     (to_json(((e.refs->>'run_date')::date + 1)::timestamp
                              - make_interval(days => (e.refs->>'after_days')::int)) #>> '{}')
                     || '+00:00' THEN false
                ELSE coalesce(moved.at < (e.refs->>'cutoff')::timestamptz, false) END""",
    ),
)
