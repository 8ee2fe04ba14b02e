-- Purchases: invariant 6 of DESIGN.md, as docs/accounting.md ("The invariants, said twice",
-- "Purchases") enforces it. A purchase resolves at most once, pending -> completed or failed, and
-- what was bought (by whom, under which key, which coins, by which channel and provider, at what
-- price) never changes. A purchase is never deleted or truncated. (One purchase per user and
-- idempotency key is a unique constraint.)

CREATE OR REPLACE FUNCTION coinbooks_purchase_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'purchases are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'purchase % is already %', OLD.id, OLD.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.user_id, NEW.idempotency_key, NEW.request_hash, NEW.package_code,
        NEW.coins, NEW.bonus_coins, NEW.channel, NEW.provider, NEW.currency, NEW.price_minor,
        NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.user_id, OLD.idempotency_key, OLD.request_hash, OLD.package_code,
        OLD.coins, OLD.bonus_coins, OLD.channel, OLD.provider, OLD.currency, OLD.price_minor,
        OLD.created_at) THEN
        RAISE EXCEPTION 'what purchase % bought cannot change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER purchase_guard BEFORE UPDATE OR DELETE ON purchase
    FOR EACH ROW EXECUTE FUNCTION coinbooks_purchase_guard();
CREATE OR REPLACE TRIGGER purchase_no_truncate BEFORE TRUNCATE ON purchase
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_purchase_guard();
