"""Integrity checks of corrections (invariant 6): each reversal finance made is exactly the
reversal of its entry, of a kind finance may reverse; each posted proposal has exactly its
adjustment entry, with exactly the proposed postings; every adjustment entry has its proposal."""

from __future__ import annotations

from accounting.ledger.checks import Check, record_has_its_entry

CHECKS: tuple[Check, ...] = (
    Check(
        6,
        "reversal_by_finance_reverses_its_entry",
        """
        SELECT format('reversal %s of entry %s (%s) has entry %s reversing %s',
                      r.id, r.entry_id, coalesce(o.kind, 'none'), r.reversal_entry_id,
                      coalesce(e.reverses_entry_id::text, 'nothing'))
          FROM entry_reversal r
          LEFT JOIN journal_entry e ON e.id = r.reversal_entry_id
          LEFT JOIN journal_entry o ON o.id = r.entry_id
         WHERE e.reverses_entry_id IS DISTINCT FROM r.entry_id
            OR o.kind NOT IN ('transfer', 'adjustment')""",
    ),
    record_has_its_entry(
        "posted_proposal_has_its_entry",
        record="adjustment proposal",
        table="(SELECT * FROM adjustment_proposal WHERE status = 'posted')",
        kind="adjustment",
        key="'adjustment:' || r.id",
    ),
    Check(
        6,
        "adjustment_posts_what_was_proposed",
        """
        SELECT format('adjustment entry %s (%s) does not post what a proposal approved',
                      e.id, e.event_key)
          FROM journal_entry e
          LEFT JOIN adjustment_proposal r ON r.entry_id = e.id AND r.status = 'posted'
         WHERE e.kind = 'adjustment'
           AND (r.id IS NULL OR EXISTS (
                (SELECT a.code, a.commodity, p.amount
                   FROM posting p JOIN account a ON a.id = p.account_id
                  WHERE p.entry_id = e.id
                 EXCEPT ALL
                 SELECT l->>'account', l->>'commodity', (l->>'amount')::bigint
                   FROM jsonb_array_elements(r.postings) l)
                UNION ALL
                (SELECT l->>'account', l->>'commodity', (l->>'amount')::bigint
                   FROM jsonb_array_elements(r.postings) l
                 EXCEPT ALL
                 SELECT a.code, a.commodity, p.amount
                   FROM posting p JOIN account a ON a.id = p.account_id
                  WHERE p.entry_id = e.id)))""",
    ),
)
