-- Gifts and streams (docs/accounting.md, "Gifts, unlocks and holds"). A gift keeps its history:
-- its one allowed change is being marked released from hold, once, and it is never deleted or
-- truncated. A stream ends at most once and is never deleted. (Feature unlocks never change:
-- append_only.sql. The live gift feed: gift_feed.sql.)

CREATE OR REPLACE FUNCTION coinbooks_gift_guard() RETURNS trigger
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

CREATE OR REPLACE TRIGGER gift_guard BEFORE UPDATE OR DELETE ON gift
    FOR EACH ROW EXECUTE FUNCTION coinbooks_gift_guard();
CREATE OR REPLACE TRIGGER gift_no_truncate BEFORE TRUNCATE ON gift
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_gift_guard();

CREATE OR REPLACE FUNCTION coinbooks_stream_guard() RETURNS trigger
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

CREATE OR REPLACE TRIGGER stream_guard BEFORE UPDATE OR DELETE ON stream
    FOR EACH ROW EXECUTE FUNCTION coinbooks_stream_guard();
