-- 0003's downgrade, once it has dropped its tables (and with them their triggers).
DELETE FROM account WHERE code = 'platform:expense:promotions' AND posting_count = 0;
DROP FUNCTION coinbooks_gift_notify();
DROP FUNCTION coinbooks_stream_guard();
DROP FUNCTION coinbooks_gift_guard();
