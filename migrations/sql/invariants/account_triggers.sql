-- Accounts, continued: when the guard of accounts.sql runs, and that an account is never deleted
-- or truncated, since postings refer to it (invariants 3 and 5 of DESIGN.md; docs/accounting.md,
-- "The invariants, said twice"). The guard runs in full on every insert and on every update a
-- statement makes, and for the posting trigger's own balance updates (postings.sql) only if
-- anything but the balance and count would change.

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
