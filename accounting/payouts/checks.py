"""Integrity checks of payouts (invariant 6): each phase has exactly its entry, moving exactly
the payout's diamonds and cash; a payout's status is its last phase; reserved diamonds are
those of requested payouts, and the cash in transit that of sent ones."""

from __future__ import annotations

from accounting.ledger.checks import Check, accounts_agree_with_records

CHECKS: tuple[Check, ...] = (
    Check(
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
    Check(
        6,
        "payout_entry_belongs_to_a_phase",
        """
        SELECT format('entry %s (%s) is no payout phase', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'payout'
           AND NOT EXISTS (SELECT 1 FROM payout_event ev WHERE ev.entry_id = e.id)""",
    ),
    Check(
        6,
        "payout_entry_moved_what_the_payout_says",
        r"""
        SELECT format('payout %s %s: entry %s moved (available, reserved, in transit, payable,'
                      ' bank) %s, expected %s', ev.payout_id, ev.phase, ev.entry_id, m, x)
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
                          AS payable,
                      coalesce(sum(p.amount) FILTER (
                          WHERE a.code = 'platform\:bank\:' || po.currency), 0) AS bank
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
                                    WHEN 'failed' THEN -po.amount_micros
                                    WHEN 'returned' THEN -po.amount_micros ELSE 0 END AS payable,
                      CASE ev.phase WHEN 'paid' THEN -po.amount_micros
                                    WHEN 'returned' THEN po.amount_micros ELSE 0 END AS bank
              ) x
         WHERE (m.available, m.reserved, m.in_transit, m.payable, m.bank)
               <> (x.available, x.reserved, x.in_transit, x.payable, x.bank)""",
    ),
    Check(
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
                                 WHEN 'returned' THEN 'requested,sent,paid,returned'
                                 ELSE 'requested,sent,failed' END""",
    ),
    accounts_agree_with_records(
        "creator_reserved_is_requested_payouts",
        accounts=r"^creator\:(.*)\:diamonds\:reserved$",
        records="SELECT creator_id AS key, sum(diamonds) AS amount FROM payout"
        " WHERE status = 'requested' GROUP BY creator_id",
        message="creator %s has %s diamonds reserved; their requested payouts hold %s",
    ),
    accounts_agree_with_records(
        "payouts_in_transit_are_sent_payouts",
        accounts=r"^platform\:payouts_in_transit\:(.*)$",
        records="SELECT currency AS key, sum(amount_micros) AS amount FROM payout"
        " WHERE status = 'sent' GROUP BY currency",
        message="%s in transit is %s micro-units; the sent payouts hold %s",
    ),
)
