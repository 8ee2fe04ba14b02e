-- Accounts as 0001 guarded them: coinbooks_account_guard() (invariants/accounts.sql) ran on every
-- insert and every update of an account, the posting trigger's own balance updates included,
-- until 0004 narrowed when it runs and refused deletion (invariants/account_triggers.sql).
-- Loaded by 0001's upgrade and by 0004's downgrade. Its SQL never changes (checksums.py).

CREATE OR REPLACE TRIGGER account_guard BEFORE INSERT OR UPDATE ON account
    FOR EACH ROW EXECUTE FUNCTION coinbooks_account_guard();
