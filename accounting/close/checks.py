"""Integrity checks of the close (invariant 3, the journal as history): the seals run without a
gap from the first entry (every entry at or below the last seal has one, and every seal has its
entry), every closed month's recorded head is a seal, and no entry is dated in a closed month.
Cheap: they compare ids and dates; recomputing the hashes is ``coinbooks verify-chain``."""

from __future__ import annotations

from accounting.ledger.checks import Check

CHECKS: tuple[Check, ...] = (
    Check(
        3,
        "seals_run_without_a_gap",
        """
        SELECT format('entry %s has no seal, yet entry %s after it has', e.id, h.last)
          FROM (SELECT max(entry_id) AS last FROM entry_seal) h
          JOIN journal_entry e ON e.id < h.last
         WHERE NOT EXISTS (SELECT 1 FROM entry_seal s WHERE s.entry_id = e.id)
        UNION ALL
        SELECT format('entry %s is sealed but not in the journal', s.entry_id)
          FROM entry_seal s
         WHERE NOT EXISTS (SELECT 1 FROM journal_entry e WHERE e.id = s.entry_id)""",
    ),
    Check(
        3,
        "closed_periods_record_a_sealed_head",
        """
        SELECT format('%s closed with head entry %s, hash %s: not its seal (%s)',
                      to_char(c.month AT TIME ZONE 'UTC', 'YYYY-MM'), c.head_entry_id,
                      c.head_hash, coalesce(s.hash, 'none'))
          FROM closed_period c LEFT JOIN entry_seal s ON s.entry_id = c.head_entry_id
         WHERE c.head_entry_id IS NOT NULL AND s.hash IS DISTINCT FROM c.head_hash""",
    ),
    Check(
        3,
        "no_entry_in_a_closed_period_after_its_close",
        """
        SELECT format('entry %s dated %s is in closed %s, above the head %s recorded at close',
                      e.id, e.posted_at, to_char(c.month AT TIME ZONE 'UTC', 'YYYY-MM'),
                      coalesce(c.head_entry_id, 0))
          FROM closed_period c
          JOIN journal_entry e ON e.posted_at >= c.month AND e.posted_at < c.period_end
         WHERE e.id > coalesce(c.head_entry_id, 0)""",
    ),
)
"""The seals' continuity; the heads closes recorded; entries of a closed month all sealed by
its close."""
