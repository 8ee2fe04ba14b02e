-- Append-only history: invariant 3 of DESIGN.md, as docs/accounting.md ("The invariants, said
-- twice") enforces it. A journal entry and its postings, once written, are never updated, deleted
-- or truncated; a mistake is corrected by a reversing entry. Nor is any other row that records
-- what happened. (Accounts are never deleted but do change balance: account_triggers.sql.
-- Purchases, gifts, streams, payouts and chargebacks each allow one kind of change: their own
-- files; so do the counts of refused webhook deliveries, webhook_refusals.sql.)
--
-- The tables kept so: posting, journal_entry, feature_unlock, payout_event, audit_log, refund,
-- chargeback_clawback, chargeback_trace, provider_event, entry_reversal,
-- posting_hour_total (the postings' totals per hour: a summarized hour is never summarized again),
-- settlement_report and settlement_line (a provider's report, imported once, as it reconciled).
-- closed_period and entry_seal (a month closed, an entry's seal: accounting/close).
-- The revision that creates such a table makes it history with ops.append_only (migrations/ops.py): two triggers
-- calling this function, <table>_append_only before UPDATE OR DELETE, for each row, and
-- <table>_no_truncate before TRUNCATE, for the statement.

CREATE OR REPLACE FUNCTION coinbooks_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused; correct a mistake with a reversing entry',
        TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;
