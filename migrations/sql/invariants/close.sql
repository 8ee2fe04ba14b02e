-- Period close (docs/accounting.md, "Closing a period"): once finance has closed a month, no
-- journal entry may be dated into it, raw SQL included. Months are closed in order, with no gap,
-- so every closed month lies before the end of the latest: an entry dated before that end is
-- refused. (A closed period and the seals of the chain never change: append_only.sql.)
--
-- An entry dated before the current month (back-dated: the service always dates an entry now)
-- takes the close's advisory lock, shared, before it looks: a close holds it exclusively from
-- before it records the month until it commits, so such an entry either committed before the
-- close recorded the month (and the close's seal sees it) or waits, then sees the month closed
-- and is refused. An entry dated now never waits: the close waits for it instead
-- (accounting/ledger/in_flight.py).

CREATE OR REPLACE FUNCTION coinbooks_closed_period_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    earliest timestamptz;
    closed_until timestamptz;
BEGIN
    SELECT min(posted_at) INTO earliest FROM new_entries;
    IF earliest IS NULL THEN
        RETURN NULL;
    END IF;
    IF earliest < date_trunc('month', clock_timestamp(), 'UTC') THEN
        PERFORM pg_advisory_xact_lock_shared(hashtextextended('coinbooks:period_close', 0));
    END IF;
    SELECT max(period_end) INTO closed_until FROM closed_period;
    IF earliest < closed_until THEN
        RAISE EXCEPTION 'journal entry dated % falls in a closed period (closed until %):'
            ' post it in the open period, referencing the original', earliest, closed_until
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER journal_entry_closed_period AFTER INSERT ON journal_entry
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_closed_period_guard();
