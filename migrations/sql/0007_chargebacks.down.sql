-- 0007's downgrade, once it has dropped its tables (and with them their triggers).
DROP FUNCTION coinbooks_clawback_check();
DROP FUNCTION coinbooks_chargeback_guard();
