-- The posting invariants as 0001 enforced them, one posting at a time, until 0004 checked each
-- statement's postings as a whole instead (invariants/postings.sql; docs/accounting.md, "Checked
-- per statement, not per row"). Loaded by 0001's upgrade, which created them, and by 0004's
-- downgrade, which puts them back once it has removed what replaced them. Its SQL never changes
-- (checksums.py).

-- Invariant 5: an account's stored balance is the sum of its postings. Every posting updates
-- its account's balance here, in the same statement, and records the running balance and the
-- account's sequence number on the posting. Invariant 4 (no overdraft) is the CHECK constraint
-- on account, evaluated by this UPDATE under the account's row lock.
CREATE OR REPLACE FUNCTION coinbooks_posting_apply() RETURNS trigger
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

CREATE OR REPLACE TRIGGER posting_apply BEFORE INSERT ON posting
    FOR EACH ROW EXECUTE FUNCTION coinbooks_posting_apply();

-- A new entry remembers the transaction that created it (see coinbooks_posting_apply).
CREATE OR REPLACE FUNCTION coinbooks_entry_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_txid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER journal_entry_stamp BEFORE INSERT ON journal_entry
    FOR EACH ROW EXECUTE FUNCTION coinbooks_entry_stamp();

-- Invariant 1: at commit, every entry balances per commodity and has at least two postings;
-- a reversal negates exactly the entry it reverses.
CREATE OR REPLACE FUNCTION coinbooks_entry_check() RETURNS trigger
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

DROP TRIGGER IF EXISTS journal_entry_check ON journal_entry;
CREATE CONSTRAINT TRIGGER journal_entry_check AFTER INSERT ON journal_entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION coinbooks_entry_check();

-- Each posting re-checks its entry too: after SET CONSTRAINTS ALL IMMEDIATE has run the entry's
-- check early, a posting added later in the same transaction must not escape it.
DROP TRIGGER IF EXISTS posting_entry_check ON posting;
CREATE CONSTRAINT TRIGGER posting_entry_check AFTER INSERT ON posting
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION coinbooks_entry_check();
