-- 0003's own change, after the definitions it loads (invariants/gifts.sql, and the gift feed as it
-- then was, superseded/0003_gift_feed.sql). Promotions: what a gift's diamonds are worth beyond the
-- coins' value is promotional expense.
INSERT INTO account (code, commodity, type, contra, no_overdraft, normal_sign)
    VALUES ('platform:expense:promotions', 'USD', 'expense', false, false, 1)
    ON CONFLICT (code) DO NOTHING;
