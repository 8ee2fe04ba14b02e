-- Refused webhook deliveries, counted (docs/accounting.md, "Chargebacks"; docs/webhooks.md):
-- one row per source, reason and minute. A row only grows: its count, its bytes and its last
-- delivery move forward, nothing else changes (not its key, its first delivery or its sample),
-- and no row is deleted or truncated, so what finance investigates stays as it came.

CREATE OR REPLACE FUNCTION coinbooks_webhook_refusal_grows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'webhook_refusal keeps what was refused: DELETE refused'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.source, NEW.reason, NEW.window_start, NEW.first_seen_at,
            NEW.sample_provider, NEW.sample_detail, NEW.sample_body_sha256,
            NEW.sample_body_bytes, NEW.sample_client)
        IS DISTINCT FROM (OLD.id, OLD.source, OLD.reason, OLD.window_start, OLD.first_seen_at,
            OLD.sample_provider, OLD.sample_detail, OLD.sample_body_sha256,
            OLD.sample_body_bytes, OLD.sample_client)
        OR NEW.deliveries < OLD.deliveries OR NEW.body_bytes < OLD.body_bytes
        OR NEW.last_seen_at < OLD.last_seen_at THEN
        RAISE EXCEPTION 'webhook_refusal % only counts on: its count, bytes and last delivery grow',
            OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER webhook_refusal_grows BEFORE UPDATE OR DELETE ON webhook_refusal
    FOR EACH ROW EXECUTE FUNCTION coinbooks_webhook_refusal_grows();

CREATE OR REPLACE TRIGGER webhook_refusal_no_truncate BEFORE TRUNCATE ON webhook_refusal
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_append_only();
