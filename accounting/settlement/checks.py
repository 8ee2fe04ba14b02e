"""Integrity checks of settlement (invariant 6): each report that moved anything has exactly its
``settlement`` entry, which posts exactly what its lines settle (each payout's cash from clearing
to the bank, each matched line's fee difference from clearing to the fee expense); each line's
difference is the ledger's clearing less its net; each unmatched line has its exception; each
write-off posts exactly its exception's difference, and every settlement entry has its record."""

from __future__ import annotations

from accounting.ledger.checks import Check, record_has_its_entry

_FEE_ACCOUNT = """'platform:expense:' || CASE WHEN {type} = 'dispute_fee' THEN 'dispute_fees:'
                 WHEN {provider} IN ('apple', 'google') THEN 'app_store_fees:'
                 ELSE 'processor_fees:' END || {cur}"""
"""The fee expense of a line or exception (accounting/settlement/rules.py, fee_account)."""

_LINE_POSTINGS = f"""
    SELECT r.entry_id, x.code, sum(x.amount) AS amount
      FROM settlement_report r JOIN settlement_line l ON l.report_id = r.id
     CROSS JOIN LATERAL (VALUES
           ('platform:clearing:' || r.provider || ':' || l.currency,
            CASE WHEN l.status = 'bank_transfer' THEN l.net_micros ELSE -l.difference_micros END),
           (CASE WHEN l.status = 'bank_transfer' THEN 'platform:bank:' || l.currency
                 ELSE {_FEE_ACCOUNT.format(type="l.type", provider="r.provider", cur="l.currency")}
            END,
            CASE WHEN l.status = 'bank_transfer' THEN -l.net_micros ELSE l.difference_micros END)
           ) AS x(code, amount)
     WHERE l.status IN ('bank_transfer', 'matched')
     GROUP BY r.entry_id, x.code
    HAVING sum(x.amount) <> 0"""

_ENTRY_POSTINGS = """
    SELECT e.id, a.code, sum(p.amount) AS amount
      FROM journal_entry e JOIN posting p ON p.entry_id = e.id JOIN account a ON a.id = p.account_id
     WHERE e.kind = 'settlement'
     GROUP BY e.id, a.code"""

CHECKS: tuple[Check, ...] = (
    record_has_its_entry(
        "settlement_report_has_its_entry",
        record="settlement report",
        table="(SELECT * FROM settlement_report WHERE entry_id IS NOT NULL)",
        kind="settlement",
        key="'settlement:' || r.provider || ':' || r.report_id",
    ),
    Check(
        6,
        "settlement_entry_has_its_report",
        """
        SELECT format('settlement entry %s (%s) has no report', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'settlement'
           AND NOT EXISTS (SELECT 1 FROM settlement_report r WHERE r.entry_id = e.id)""",
    ),
    Check(
        6,
        "settlement_posts_what_its_lines_settle",
        f"""
        SELECT format('settlement entry %s: %s %s posted, %s settled by its lines',
                      coalesce(posted.id, settled.entry_id), coalesce(posted.code, settled.code),
                      coalesce(posted.amount, 0), coalesce(settled.amount, 0))
          FROM ({_ENTRY_POSTINGS}) posted
          FULL JOIN ({_LINE_POSTINGS}) settled
            ON settled.entry_id = posted.id AND settled.code = posted.code
         WHERE posted.amount IS DISTINCT FROM settled.amount""",
    ),
    Check(
        6,
        "settlement_line_difference_is_ledger_less_net",
        """
        SELECT format('settlement line %s (%s, %s): difference %s, not %s',
                      l.id, l.type, l.status, l.difference_micros,
                      coalesce(l.expected_gross_micros - l.expected_fee_micros, 0) - l.net_micros)
          FROM settlement_line l
         WHERE l.status <> 'bank_transfer'
           AND l.difference_micros <>
               coalesce(l.expected_gross_micros - l.expected_fee_micros, 0) - l.net_micros
            OR l.status = 'bank_transfer' AND l.difference_micros <> 0""",
    ),
    Check(
        6,
        "unmatched_settlement_line_has_its_exception",
        """
        SELECT format('settlement line %s (%s) has %s exceptions', l.id, l.status, count(x.id))
          FROM settlement_line l
          LEFT JOIN reconciliation_exception x ON x.line_id = l.id
         WHERE l.status IN ('missing_in_ledger', 'amount_mismatch')
            OR x.id IS NOT NULL
         GROUP BY l.id, l.status
        HAVING count(x.id) <> 1
            OR l.status NOT IN ('missing_in_ledger', 'amount_mismatch')
            OR bool_or(x.kind <> l.status OR x.difference_micros <> l.difference_micros)""",
    ),
    Check(
        6,
        "write_off_posts_its_exception_difference",
        f"""
        SELECT format('written-off exception %s has entry %s, not a write-off of %s',
                      x.id, coalesce(x.resolution_entry_id::text, 'none'), x.difference_micros)
          FROM reconciliation_exception x
          LEFT JOIN journal_entry e ON e.id = x.resolution_entry_id
         WHERE x.action = 'write_off'
           AND (e.id IS NULL OR e.kind <> 'settlement_write_off'
                OR e.event_key <> 'settlement_exception:' || x.id || ':' || 'write_off'
                OR EXISTS (
                   (SELECT a.code, p.amount FROM posting p JOIN account a ON a.id = p.account_id
                     WHERE p.entry_id = e.id
                    EXCEPT ALL
                    VALUES ('platform:clearing:' || x.provider || ':' || x.currency,
                            -x.difference_micros),
                           ({
            _FEE_ACCOUNT.format(type="x.line_type", provider="x.provider", cur="x.currency")
        }, x.difference_micros))
                   UNION ALL
                   (VALUES ('platform:clearing:' || x.provider || ':' || x.currency,
                            -x.difference_micros),
                           ({
            _FEE_ACCOUNT.format(type="x.line_type", provider="x.provider", cur="x.currency")
        }, x.difference_micros)
                    EXCEPT ALL
                    SELECT a.code, p.amount FROM posting p JOIN account a ON a.id = p.account_id
                     WHERE p.entry_id = e.id)))""",
    ),
    Check(
        6,
        "write_off_entry_has_its_exception",
        """
        SELECT format('write-off entry %s (%s) has no written-off exception', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'settlement_write_off'
           AND NOT EXISTS (SELECT 1 FROM reconciliation_exception x
                            WHERE x.resolution_entry_id = e.id AND x.action = 'write_off')""",
    ),
)
