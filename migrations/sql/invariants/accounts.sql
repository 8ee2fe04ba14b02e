-- Accounts: invariants 3 and 5 of DESIGN.md, as docs/accounting.md ("The invariants, said twice",
-- "Opening accounts") enforces them. An account opens at zero; nothing but the posting trigger
-- (postings.sql) moves its balance and posting count; what it is (code, commodity, type, flags,
-- when it opened) never changes; and it is never deleted or truncated, since postings refer to it.

CREATE OR REPLACE FUNCTION coinbooks_account_guard() RETURNS trigger
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

-- The guard runs in full on every insert and on every update a statement makes, and for the
-- posting trigger's own balance updates only if anything but the balance and count would change.
CREATE OR REPLACE TRIGGER account_guard BEFORE INSERT ON account
    FOR EACH ROW EXECUTE FUNCTION coinbooks_account_guard();
CREATE OR REPLACE TRIGGER account_guard_update BEFORE UPDATE ON account
    FOR EACH ROW
    WHEN (pg_trigger_depth() < 1
          OR (OLD.id, OLD.code, OLD.commodity, OLD.type, OLD.contra, OLD.no_overdraft,
              OLD.normal_sign, OLD.opened_at)
             IS DISTINCT FROM
             (NEW.id, NEW.code, NEW.commodity, NEW.type, NEW.contra, NEW.no_overdraft,
              NEW.normal_sign, NEW.opened_at))
    EXECUTE FUNCTION coinbooks_account_guard();

CREATE OR REPLACE TRIGGER account_no_delete BEFORE DELETE ON account
    FOR EACH ROW EXECUTE FUNCTION coinbooks_append_only();
CREATE OR REPLACE TRIGGER account_no_truncate BEFORE TRUNCATE ON account
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_append_only();
