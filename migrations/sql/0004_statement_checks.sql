-- 0004: the posting invariants checked once per statement instead of once per row.
--
-- A journal entry's postings are written by one INSERT statement, however many entries that
-- statement carries (a batch of gifts is one statement for all of its postings), and each
-- statement is checked as a whole, at its end, over its transition table. A posting's entry and
-- account were foreign keys, checked row by row; they are checked there set-wise instead, with
-- accounts guarded against deletion. An entry's transaction becomes its column default rather
-- than a row trigger. The live gift feed announces a statement's gifts from one trigger call.
--
-- This file removes what 0001 had that goes for good. What replaces it, and what 0004 redefines
-- in place, comes from the files 0004 loads after this one: invariants/postings.sql,
-- invariants/account_triggers.sql and invariants/gift_feed.sql.

DROP TRIGGER posting_apply ON posting;
ALTER TABLE posting DROP CONSTRAINT fk_posting_entry_id_posted_at_journal_entry;
ALTER TABLE posting DROP CONSTRAINT fk_posting_account_id_commodity_account;
ALTER TABLE journal_entry DROP CONSTRAINT uq_journal_entry_id_posted_at;
ALTER TABLE account DROP CONSTRAINT uq_account_id_commodity;
DROP FUNCTION coinbooks_posting_apply();
DROP TRIGGER posting_entry_check ON posting;
DROP TRIGGER journal_entry_check ON journal_entry;
DROP FUNCTION coinbooks_entry_check();

-- Nothing is lost by the column default: an entry committed with postings cannot take more later,
-- and one committed without any is refused at commit, whatever created_txid it claims.
DROP TRIGGER journal_entry_stamp ON journal_entry;
DROP FUNCTION coinbooks_entry_stamp();
ALTER TABLE journal_entry
    ALTER COLUMN created_txid SET DEFAULT (pg_current_xact_id()::text::bigint);
