-- 0005's downgrade, once it has dropped its tables (and with them their triggers).
DROP FUNCTION coinbooks_payout_event_guard();
DROP FUNCTION coinbooks_payout_guard();
-- Accounts are never deleted (0004), except an unused one by the migration that opened it.
ALTER TABLE account DISABLE TRIGGER account_no_delete;
DELETE FROM account WHERE code = 'platform:payouts_in_transit:USD' AND posting_count = 0;
ALTER TABLE account ENABLE TRIGGER account_no_delete;
