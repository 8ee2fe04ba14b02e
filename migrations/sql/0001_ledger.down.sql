-- 0001's downgrade, once it has dropped its tables (and with them every trigger): the functions
-- its upgrade created go too.
DROP FUNCTION coinbooks_purchase_guard();
DROP FUNCTION coinbooks_entry_check();
DROP FUNCTION coinbooks_entry_stamp();
DROP FUNCTION coinbooks_append_only();
DROP FUNCTION coinbooks_account_guard();
DROP FUNCTION coinbooks_posting_apply();
