-- The live gift feed as 0003 announced it, one trigger call per gift, until 0004 announced a
-- statement's gifts from one trigger call (invariants/gift_feed.sql). Loaded by 0003's upgrade and
-- by 0004's downgrade. Its SQL never changes (checksums.py).

-- Live gift feed: every committed gift is announced on channel coinbooks_gifts. PostgreSQL
-- delivers a NOTIFY only when (and if) its transaction commits, to every listening process.
CREATE OR REPLACE FUNCTION coinbooks_gift_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('coinbooks_gifts', json_build_object(
        'gift_id', NEW.id,
        'stream_id', NEW.stream_id,
        'sender_id', NEW.sender_id,
        'creator_id', NEW.creator_id,
        'gift_code', NEW.gift_code,
        'quantity', NEW.quantity,
        'coins', NEW.coins,
        'diamonds', NEW.diamonds,
        'created_at', NEW.created_at
    )::text);
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER gift_notify AFTER INSERT ON gift
    FOR EACH ROW EXECUTE FUNCTION coinbooks_gift_notify();
