-- The live gift feed (docs/accounting.md, "Gifts, unlocks and holds"). Every committed gift is
-- announced on the channel coinbooks_gifts, one notification per gift, from one trigger call per
-- statement; PostgreSQL delivers a NOTIFY only when (and if) its transaction commits, to every
-- listening process.

CREATE OR REPLACE FUNCTION coinbooks_gift_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('coinbooks_gifts', json_build_object(
        'gift_id', g.id,
        'stream_id', g.stream_id,
        'sender_id', g.sender_id,
        'creator_id', g.creator_id,
        'gift_code', g.gift_code,
        'quantity', g.quantity,
        'coins', g.coins,
        'diamonds', g.diamonds,
        'created_at', g.created_at
    )::text)
       FROM new_gifts g ORDER BY g.id;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER gift_notify AFTER INSERT ON gift
    REFERENCING NEW TABLE AS new_gifts
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_gift_notify();
