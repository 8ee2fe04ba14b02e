-- Append-only history: invariant 3 of DESIGN.md, as docs/accounting.md ("The invariants, said
-- twice") enforces it. A journal entry and its postings, once written, are never updated, deleted
-- or truncated; a mistake is corrected by a reversing entry. Nor is any other row that records
-- what happened: feature unlocks, payout events, the audit log, refunds, chargeback clawbacks and
-- traces, provider events and refused webhook deliveries. (Accounts are never deleted but do
-- change balance: accounts.sql. Purchases, gifts, streams, payouts and chargebacks each allow one
-- kind of change: their own files.)

CREATE OR REPLACE FUNCTION coinbooks_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused; correct a mistake with a reversing entry',
        TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

-- Each of these tables has two triggers calling it, named as every migration that made a table
-- history named them (migrations/ops.py, append_only): <table>_append_only before UPDATE OR
-- DELETE, for each row, and <table>_no_truncate before TRUNCATE, for the statement.
DO $$
DECLARE
    history text;
BEGIN
    FOREACH history IN ARRAY ARRAY['posting', 'journal_entry', 'feature_unlock', 'payout_event',
                                   'audit_log', 'refund', 'chargeback_clawback',
                                   'chargeback_trace', 'provider_event', 'webhook_rejection']
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE UPDATE OR DELETE ON %I'
                       ' FOR EACH ROW EXECUTE FUNCTION coinbooks_append_only()',
                       history || '_append_only', history);
        EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON %I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_append_only()',
                       history || '_no_truncate', history);
    END LOOP;
END $$;
