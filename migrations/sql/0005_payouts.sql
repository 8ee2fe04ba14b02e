-- 0005's own change, after the definitions it loads (invariants/payouts.sql). The cash of a
-- payout sent and not yet paid (or failed) is owed in transit.
INSERT INTO account (code, commodity, type, contra, no_overdraft, normal_sign)
    VALUES ('platform:payouts_in_transit:USD', 'USD', 'liability', false, false, -1)
    ON CONFLICT (code) DO NOTHING;
