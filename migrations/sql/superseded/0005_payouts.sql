-- Payouts (docs/accounting.md, "Payouts"). A payout moves through its phases forward only, each
-- at most once: requested -> sent -> paid | failed, or requested -> rejected. Its status may
-- change only to a phase it has an event (and so an entry) for; nothing else about it ever
-- changes, and it is never deleted or truncated. A new phase event must follow from the payout's
-- current status, read under the payout's row lock. (Events never change: append_only.sql.)

CREATE OR REPLACE FUNCTION coinbooks_payout_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'payouts are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'requested' THEN
            RAISE EXCEPTION 'a payout starts requested, not %', NEW.status
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NOT ((OLD.status = 'requested' AND NEW.status IN ('sent', 'rejected'))
            OR (OLD.status = 'sent' AND NEW.status IN ('paid', 'failed'))) THEN
        RAISE EXCEPTION 'payout % is %: it cannot become %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.creator_id, NEW.idempotency_key, NEW.request_hash, NEW.method_id,
        NEW.diamonds_requested, NEW.diamonds, NEW.currency, NEW.amount_micros, NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.creator_id, OLD.idempotency_key, OLD.request_hash, OLD.method_id,
        OLD.diamonds_requested, OLD.diamonds, OLD.currency, OLD.amount_micros, OLD.created_at) THEN
        RAISE EXCEPTION 'what payout % redeems cannot change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM payout_event
                    WHERE payout_id = NEW.id AND phase = NEW.status) THEN
        RAISE EXCEPTION 'payout % cannot become % without its % event', OLD.id, NEW.status,
            NEW.status USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER payout_guard BEFORE INSERT OR UPDATE OR DELETE ON payout
    FOR EACH ROW EXECUTE FUNCTION coinbooks_payout_guard();
CREATE OR REPLACE TRIGGER payout_no_truncate BEFORE TRUNCATE ON payout
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_payout_guard();

CREATE OR REPLACE FUNCTION coinbooks_payout_event_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    current_status text;
BEGIN
    SELECT status INTO current_status FROM payout WHERE id = NEW.payout_id FOR UPDATE;
    IF NOT ((NEW.phase = 'requested' AND current_status = 'requested'
             AND NOT EXISTS (SELECT 1 FROM payout_event WHERE payout_id = NEW.payout_id))
            OR (current_status = 'requested' AND NEW.phase IN ('sent', 'rejected'))
            OR (current_status = 'sent' AND NEW.phase IN ('paid', 'failed'))) THEN
        RAISE EXCEPTION 'payout % is %: it cannot be %', NEW.payout_id, current_status, NEW.phase
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER payout_event_guard BEFORE INSERT ON payout_event
    FOR EACH ROW EXECUTE FUNCTION coinbooks_payout_event_guard();
