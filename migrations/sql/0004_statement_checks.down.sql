-- 0004's downgrade: this file removes what 0004 added that nothing before it had, and puts back
-- the foreign keys and the column without a default. The files loaded after it put back what
-- 0001 and 0003 had defined, over what 0004 redefined in place: superseded/0001_postings.sql,
-- superseded/0001_account_triggers.sql and superseded/0003_gift_feed.sql.

DROP TRIGGER journal_entry_check ON journal_entry;
DROP FUNCTION coinbooks_entry_has_postings();
DROP TRIGGER postings_apply ON posting;
DROP FUNCTION coinbooks_postings_apply();
DROP TRIGGER account_guard_update ON account;
DROP TRIGGER account_no_truncate ON account;
DROP TRIGGER account_no_delete ON account;
ALTER TABLE journal_entry ALTER COLUMN created_txid DROP DEFAULT;

ALTER TABLE account ADD CONSTRAINT uq_account_id_commodity UNIQUE (id, commodity);
ALTER TABLE journal_entry ADD CONSTRAINT uq_journal_entry_id_posted_at UNIQUE (id, posted_at);
ALTER TABLE posting ADD CONSTRAINT fk_posting_account_id_commodity_account
    FOREIGN KEY (account_id, commodity) REFERENCES account (id, commodity);
ALTER TABLE posting ADD CONSTRAINT fk_posting_entry_id_posted_at_journal_entry
    FOREIGN KEY (entry_id, posted_at) REFERENCES journal_entry (id, posted_at);
