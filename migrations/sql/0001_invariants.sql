-- Coinbooks: the invariants of DESIGN.md, enforced by PostgreSQL itself.
-- Python checks each of them before it writes; these triggers check them again, so that
-- even raw SQL cannot commit an unbalanced, edited or overdrawn book.

-- Invariant 5: an account's stored balance is the sum of its postings. Every posting updates
-- its account's balance here, in the same statement, and records the running balance and the
-- account's sequence number on the posting. Invariant 4 (no overdraft) is the CHECK constraint
-- on account, evaluated by this UPDATE under the account's row lock.
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

-- Invariant 5, other half: nothing but a posting changes a balance (an account opens at zero),
-- and what an account is (code, commodity, type, flags) never changes once it is open.
CREATE FUNCTION coinbooks_account_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.balance <> 0 OR NEW.posting_count <> 0 THEN
            RAISE EXCEPTION 'account % opens with a zero balance; balances change only through postings', NEW.code
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF (NEW.balance IS DISTINCT FROM OLD.balance
        OR NEW.posting_count IS DISTINCT FROM OLD.posting_count)
       AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'account % balance changes only through postings', OLD.code
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.id <> OLD.id OR NEW.code <> OLD.code OR NEW.commodity <> OLD.commodity
       OR NEW.type <> OLD.type OR NEW.contra <> OLD.contra
       OR NEW.no_overdraft <> OLD.no_overdraft OR NEW.normal_sign <> OLD.normal_sign
       OR NEW.opened_at <> OLD.opened_at THEN
        RAISE EXCEPTION 'account % cannot be redefined', OLD.code
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER account_guard BEFORE INSERT OR UPDATE ON account
    FOR EACH ROW EXECUTE FUNCTION coinbooks_account_guard();

-- Invariant 3: entries and postings are append-only (0001_ledger.py makes both tables so with
-- this function).
CREATE FUNCTION coinbooks_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused; correct a mistake with a reversing entry',
        TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

-- A new entry remembers the transaction that created it (see coinbooks_posting_apply).
CREATE FUNCTION coinbooks_entry_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_txid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END $$;

CREATE TRIGGER journal_entry_stamp BEFORE INSERT ON journal_entry
    FOR EACH ROW EXECUTE FUNCTION coinbooks_entry_stamp();

-- Invariant 1: at commit, every entry balances per commodity and has at least two postings;
-- a reversal negates exactly the entry it reverses.
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
-- Each posting re-checks its entry too: after SET CONSTRAINTS ALL IMMEDIATE has run the entry's
-- check early, a posting added later in the same transaction must not escape it.
CREATE CONSTRAINT TRIGGER posting_entry_check AFTER INSERT ON posting
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION coinbooks_entry_check();

-- Purchases resolve at most once: pending -> completed or failed, and what was bought never
-- changes. A purchase is never deleted (0001_ledger.py guards purchase with this, TRUNCATE too).
CREATE FUNCTION coinbooks_purchase_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'purchases are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'purchase % is already %', OLD.id, OLD.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.user_id, NEW.idempotency_key, NEW.request_hash, NEW.package_code,
        NEW.coins, NEW.bonus_coins, NEW.channel, NEW.provider, NEW.currency, NEW.price_minor,
        NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.user_id, OLD.idempotency_key, OLD.request_hash, OLD.package_code,
        OLD.coins, OLD.bonus_coins, OLD.channel, OLD.provider, OLD.currency, OLD.price_minor,
        OLD.created_at) THEN
        RAISE EXCEPTION 'what purchase % bought cannot change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

