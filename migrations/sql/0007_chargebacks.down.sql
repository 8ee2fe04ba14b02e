-- Undoes 0007_chargebacks.sql, once 0007 has dropped its tables (and with them their triggers).
DROP FUNCTION coinbooks_clawback_check();
DROP FUNCTION coinbooks_chargeback_guard();
