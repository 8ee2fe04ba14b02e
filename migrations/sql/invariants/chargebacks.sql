-- Chargebacks (docs/accounting.md, "Chargebacks"). A clawback takes diamonds only from a gift
-- still in its hold, of the creator it went to, and never more coins than the gift has left after
-- the clawbacks standing against it. What a chargeback clawed back never changes. A dispute starts
-- open and resolves once, to won or lost, and is won exactly when the entry that undoes it
-- exists; the other kinds (app-store refunds, voids, refunds made at the provider) are final from
-- the start. A chargeback is never deleted or truncated. (Clawbacks, traces, provider events and
-- refused deliveries never change: append_only.sql.)

CREATE OR REPLACE FUNCTION coinbooks_clawback_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    gift_row gift%ROWTYPE;
    clawed bigint;
BEGIN
    SELECT * INTO gift_row FROM gift WHERE id = NEW.gift_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'clawback from gift %, which does not exist', NEW.gift_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF gift_row.release_entry_id IS NOT NULL THEN
        RAISE EXCEPTION 'gift % was released from hold: its diamonds can no longer be clawed back',
            NEW.gift_id USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.creator_id <> gift_row.creator_id THEN
        RAISE EXCEPTION 'gift % went to %, not %', NEW.gift_id, gift_row.creator_id,
            NEW.creator_id USING ERRCODE = 'restrict_violation';
    END IF;
    SELECT coalesce(sum(c.coins), 0) INTO clawed
      FROM chargeback_clawback c JOIN chargeback b ON b.id = c.chargeback_id
     WHERE c.gift_id = NEW.gift_id AND b.status <> 'won';
    IF clawed > gift_row.coins THEN
        RAISE EXCEPTION 'gift % is % coins; chargebacks claim % of them', NEW.gift_id,
            gift_row.coins, clawed USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER chargeback_clawback_check AFTER INSERT ON chargeback_clawback
    FOR EACH ROW EXECUTE FUNCTION coinbooks_clawback_check();

CREATE OR REPLACE FUNCTION coinbooks_chargeback_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'chargebacks are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF (NEW.kind = 'dispute' AND NEW.status <> 'open')
           OR (NEW.kind <> 'dispute' AND NEW.status <> 'final')
           OR NEW.resolved_at IS NOT NULL THEN
            RAISE EXCEPTION 'a % chargeback cannot start %', NEW.kind, NEW.status
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NOT (OLD.status = 'open' AND NEW.status IN ('won', 'lost')
            AND NEW.resolved_at IS NOT NULL) THEN
        RAISE EXCEPTION 'chargeback % is %: it cannot become %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.status = 'won') <> EXISTS (
           SELECT 1 FROM journal_entry e
            WHERE e.id = NEW.won_entry_id AND e.kind = 'chargeback_won'
              AND e.event_key = format('chargeback:%s:won', NEW.purchase_id)) THEN
        RAISE EXCEPTION 'chargeback % is won exactly when its undoing entry exists (purchase %)',
            OLD.id, OLD.purchase_id USING ERRCODE = 'restrict_violation';
    END IF;
    IF (to_jsonb(NEW) - 'status' - 'won_entry_id' - 'resolved_at')
       IS DISTINCT FROM (to_jsonb(OLD) - 'status' - 'won_entry_id' - 'resolved_at') THEN
        RAISE EXCEPTION 'what chargeback % clawed back cannot change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER chargeback_guard BEFORE INSERT OR UPDATE OR DELETE ON chargeback
    FOR EACH ROW EXECUTE FUNCTION coinbooks_chargeback_guard();
CREATE OR REPLACE TRIGGER chargeback_no_truncate BEFORE TRUNCATE ON chargeback
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_chargeback_guard();
