-- Accounts: invariants 3 and 5 of DESIGN.md, as docs/accounting.md ("The invariants, said twice",
-- "Opening accounts") enforces them. An account opens at zero; nothing but the posting trigger
-- (postings.sql) moves its balance and posting count; what it is (code, commodity, type, flags,
-- when it opened) never changes. When this guard runs, and that an account is never deleted or
-- truncated: account_triggers.sql.

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
