-- 0017's downgrade, once it has dropped webhook_refusal (and with it its triggers).
DROP FUNCTION coinbooks_webhook_refusal_grows();
