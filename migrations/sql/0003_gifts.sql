-- Gifts, feature unlocks and streams keep their history: a gift's one allowed change is being
-- marked released from hold, once; an unlock never changes; a stream ends at most once.
-- (0003_gifts.py guards gift with coinbooks_gift_guard, TRUNCATE too, and makes feature_unlock
-- append-only.)

CREATE FUNCTION coinbooks_gift_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'gifts are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.release_entry_id IS NOT NULL THEN
        RAISE EXCEPTION 'gift % was already released from hold', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (to_jsonb(NEW) - 'release_entry_id') IS DISTINCT FROM (to_jsonb(OLD) - 'release_entry_id') THEN
        RAISE EXCEPTION 'gift % cannot change; only its release from hold is recorded', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;


CREATE FUNCTION coinbooks_stream_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'streams are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status = 'ended'
       OR (NEW.id, NEW.creator_id, NEW.title, NEW.started_at)
          IS DISTINCT FROM (OLD.id, OLD.creator_id, OLD.title, OLD.started_at) THEN
        RAISE EXCEPTION 'stream % can only end, once', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER stream_guard BEFORE UPDATE OR DELETE ON stream
    FOR EACH ROW EXECUTE FUNCTION coinbooks_stream_guard();

-- Live gift feed: every committed gift is announced on channel coinbooks_gifts. PostgreSQL
-- delivers a NOTIFY only when (and if) its transaction commits, to every listening process.
CREATE FUNCTION coinbooks_gift_notify() RETURNS trigger
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

CREATE TRIGGER gift_notify AFTER INSERT ON gift
    FOR EACH ROW EXECUTE FUNCTION coinbooks_gift_notify();

-- Promotions: what a gift's diamonds are worth beyond the coins' value is promotional expense.
INSERT INTO account (code, commodity, type, contra, no_overdraft, normal_sign)
    VALUES ('platform:expense:promotions', 'USD', 'expense', false, false, 1)
    ON CONFLICT (code) DO NOTHING;
