-- 0013's downgrade, once it has dropped its tables: the guard on journal_entry goes, then its
-- function.
DROP TRIGGER journal_entry_closed_period ON journal_entry;
DROP FUNCTION coinbooks_closed_period_guard();
