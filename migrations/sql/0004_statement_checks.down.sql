-- Undoes 0004_statement_checks.sql, step by step in reverse: what 0001 and 0003 had before it,
-- per-row posting triggers and a per-row gift feed, exactly as they wrote it.

-- The live gift feed: one trigger call per gift again.
DROP TRIGGER gift_notify ON gift;
CREATE OR REPLACE FUNCTION coinbooks_gift_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('coinbooks_gifts', json_build_object(
        'gift_id', NEW.id,
        'stream_id', NEW.stream_id,
        'sender_id', NEW.sender_id,
        'creator_id', NEW.creator_id,
        'gift_code', NEW.gift_code,
        'quantity', NEW.quantity,
        'coins', NEW.coins,
        'diamonds', NEW.diamonds,
        'created_at', NEW.created_at
    )::text);
    RETURN NULL;
END $$;
CREATE TRIGGER gift_notify AFTER INSERT ON gift
    FOR EACH ROW EXECUTE FUNCTION coinbooks_gift_notify();

-- An entry's transaction: stamped by a row trigger rather than a column default.
ALTER TABLE journal_entry ALTER COLUMN created_txid DROP DEFAULT;
CREATE FUNCTION coinbooks_entry_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_txid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END $$;
CREATE TRIGGER journal_entry_stamp BEFORE INSERT ON journal_entry
    FOR EACH ROW EXECUTE FUNCTION coinbooks_entry_stamp();

-- Accounts: one guard for inserts and updates; deletion is left to the foreign keys again.
DROP TRIGGER account_guard_update ON account;
DROP TRIGGER account_guard ON account;
CREATE TRIGGER account_guard BEFORE INSERT OR UPDATE ON account
    FOR EACH ROW EXECUTE FUNCTION coinbooks_account_guard();
DROP TRIGGER account_no_truncate ON account;
DROP TRIGGER account_no_delete ON account;

-- The statement-level checks go.
DROP TRIGGER journal_entry_check ON journal_entry;
DROP FUNCTION coinbooks_entry_has_postings();
DROP TRIGGER postings_apply ON posting;
DROP FUNCTION coinbooks_postings_apply();

-- Each entry checked at commit, by itself and by each of its postings.
CREATE FUNCTION coinbooks_entry_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    entry journal_entry%ROWTYPE;
    bad_commodity text;
    bad_sum numeric;
    posting_total bigint;
BEGIN
    IF TG_TABLE_NAME = 'posting' THEN
        SELECT * INTO entry FROM journal_entry WHERE id = NEW.entry_id;
    ELSE
        SELECT * INTO entry FROM journal_entry WHERE id = NEW.id;
    END IF;
    SELECT count(*) INTO posting_total FROM posting WHERE entry_id = entry.id;
    IF posting_total < 2 THEN
        RAISE EXCEPTION 'journal entry % has % posting(s); an entry has at least two',
            entry.id, posting_total
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT commodity, sum(amount) INTO bad_commodity, bad_sum
      FROM posting WHERE entry_id = entry.id
     GROUP BY commodity HAVING sum(amount) <> 0
     LIMIT 1;
    IF bad_commodity IS NOT NULL THEN
        RAISE EXCEPTION 'journal entry % does not balance: % postings sum to %',
            entry.id, bad_commodity, bad_sum
            USING ERRCODE = 'check_violation';
    END IF;
    IF entry.reverses_entry_id IS NOT NULL AND EXISTS (
        (SELECT account_id, -amount FROM posting WHERE entry_id = entry.reverses_entry_id
         EXCEPT ALL
         SELECT account_id, amount FROM posting WHERE entry_id = entry.id)
        UNION ALL
        (SELECT account_id, amount FROM posting WHERE entry_id = entry.id
         EXCEPT ALL
         SELECT account_id, -amount FROM posting WHERE entry_id = entry.reverses_entry_id)
    ) THEN
        RAISE EXCEPTION 'journal entry % does not exactly reverse entry %',
            entry.id, entry.reverses_entry_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER journal_entry_check AFTER INSERT ON journal_entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION coinbooks_entry_check();
CREATE CONSTRAINT TRIGGER posting_entry_check AFTER INSERT ON posting
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION coinbooks_entry_check();

-- A posting's entry and account as foreign keys again, and each posting applied to its account
-- row by row.
ALTER TABLE account ADD CONSTRAINT uq_account_id_commodity UNIQUE (id, commodity);
ALTER TABLE journal_entry ADD CONSTRAINT uq_journal_entry_id_posted_at UNIQUE (id, posted_at);
ALTER TABLE posting ADD CONSTRAINT fk_posting_account_id_commodity_account
    FOREIGN KEY (account_id, commodity) REFERENCES account (id, commodity);
ALTER TABLE posting ADD CONSTRAINT fk_posting_entry_id_posted_at_journal_entry
    FOREIGN KEY (entry_id, posted_at) REFERENCES journal_entry (id, posted_at);
CREATE FUNCTION coinbooks_posting_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    entry_txid bigint;
BEGIN
    -- Invariant 3: an entry's set of postings is fixed when its transaction commits.
    SELECT created_txid INTO entry_txid FROM journal_entry WHERE id = NEW.entry_id;
    IF entry_txid IS DISTINCT FROM pg_current_xact_id()::text::bigint THEN
        RAISE EXCEPTION 'postings can only be added to a journal entry in the transaction that creates it (entry %)', NEW.entry_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    UPDATE account
       SET balance = balance + NEW.amount,
           posting_count = posting_count + 1
     WHERE id = NEW.account_id
    RETURNING balance, posting_count INTO NEW.balance_after, NEW.account_seq;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'posting to unknown account %', NEW.account_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER posting_apply BEFORE INSERT ON posting
    FOR EACH ROW EXECUTE FUNCTION coinbooks_posting_apply();
