-- Postings: invariants 1 to 5 of DESIGN.md, as docs/accounting.md ("The invariants, said twice",
-- "Checked per statement, not per row") enforces them. Each INSERT INTO posting is checked once,
-- as a set, at its end, over the statement's transition table:
--   1  every entry it touches balances per commodity, has at least two postings and had none
--      before (an entry is written whole, by one statement); a reversal negates its original;
--   2  each posting's account exists and holds the posting's commodity;
--   3  each posting's entry exists, dated as the posting, and was created by this transaction
--      (journal_entry.created_txid defaults to the creating transaction's id: a column default,
--      set by 0004_statement_checks.sql and declared by the journal_entry model, not a trigger);
--   4  no running balance of a no-overdraft account is ever below zero, not even between two
--      postings of one statement (the CHECK on account guards the final balance too);
--   5  each account's balance and posting count move once, by the sum of the statement's
--      postings on it, and the postings carry the account's next sequence numbers and true
--      running balances (the writer computes them under the account's row lock; this verifies).
-- At commit, a deferred trigger refuses any entry left without postings.

CREATE OR REPLACE FUNCTION coinbooks_postings_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    problem text;
    problem_code text;
BEGIN
    -- The entry exists, dated as its postings are; invariant 3: created by this transaction.
    -- (LATERAL ... LIMIT 1: one index probe per entry, whatever the planner guesses of a
    -- transition table's size.)
    SELECT CASE
             WHEN e.id IS NULL OR e.posted_at <> n.posted_at THEN
               format('posting to journal entry %s dated %s: no such entry', n.entry_id, n.posted_at)
             ELSE format('postings can only be added to a journal entry in the transaction that creates it (entry %s)', n.entry_id)
           END,
           CASE WHEN e.id IS NULL OR e.posted_at <> n.posted_at THEN '23503' ELSE '23001' END
      INTO problem, problem_code
      FROM (SELECT DISTINCT entry_id, posted_at FROM new_postings) n
      LEFT JOIN LATERAL (SELECT id, posted_at, created_txid FROM journal_entry
                          WHERE id = n.entry_id LIMIT 1) e ON true
     WHERE e.id IS NULL OR e.posted_at <> n.posted_at
        OR e.created_txid <> pg_current_xact_id()::text::bigint
     LIMIT 1;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = problem_code;
    END IF;

    -- Invariant 1: each entry arrives whole, in this one statement, and balances.
    SELECT CASE
             WHEN s.postings < 2 THEN
               format('journal entry %s has %s posting(s); an entry has at least two',
                      s.entry_id, s.postings)
             ELSE format('journal entry %s already has postings; an entry''s postings are written by one statement',
                         s.entry_id)
           END
      INTO problem
      FROM (SELECT entry_id, count(*) AS postings FROM new_postings GROUP BY entry_id) s
     WHERE s.postings < 2
        OR (SELECT count(*) FROM posting p WHERE p.entry_id = s.entry_id) <> s.postings
     LIMIT 1;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = 'check_violation';
    END IF;
    SELECT format('journal entry %s does not balance: %s postings sum to %s',
                  entry_id, commodity, total)
      INTO problem
      FROM (SELECT entry_id, commodity, sum(amount) AS total
              FROM new_postings GROUP BY entry_id, commodity) s
     WHERE total <> 0
     LIMIT 1;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = 'check_violation';
    END IF;
    SELECT format('journal entry %s does not exactly reverse entry %s', e.id, e.reverses_entry_id)
      INTO problem
      FROM (SELECT DISTINCT entry_id FROM new_postings) n
      JOIN LATERAL (SELECT id, reverses_entry_id FROM journal_entry
                     WHERE id = n.entry_id LIMIT 1) e ON true
     WHERE e.reverses_entry_id IS NOT NULL
       AND EXISTS (
           (SELECT account_id, -amount FROM posting WHERE entry_id = e.reverses_entry_id
            EXCEPT ALL
            SELECT account_id, amount FROM new_postings WHERE entry_id = e.id)
           UNION ALL
           (SELECT account_id, amount FROM new_postings WHERE entry_id = e.id
            EXCEPT ALL
            SELECT account_id, -amount FROM posting WHERE entry_id = e.reverses_entry_id))
     LIMIT 1;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = 'check_violation';
    END IF;

    -- Invariants 4 and 5: apply each account's movement once, under its row lock, and verify
    -- the sequence numbers and running balances the postings carry against it.
    -- Apply each account's movement once, under its row lock, then verify against the balance
    -- the statement started from: invariant 2 (the account exists and holds the posting's
    -- commodity), 5 (sequence numbers and running balances) and 4 (no overdraft, ever).
    WITH movement AS (
        SELECT account_id, commodity, sum(amount) AS delta, count(*) AS postings
          FROM new_postings GROUP BY account_id, commodity
    ), applied AS (
        UPDATE account a
           SET balance = a.balance + m.delta,
               posting_count = a.posting_count + m.postings
          FROM movement m
         WHERE a.id = m.account_id AND a.commodity = m.commodity
        RETURNING a.id, a.code, a.commodity, a.no_overdraft, a.normal_sign,
                  a.balance - m.delta AS opening_balance,
                  a.posting_count - m.postings AS opening_count
    ), history AS (
        SELECT p.id, p.account_id, p.account_seq, p.balance_after,
               row_number() OVER w AS n, sum(p.amount) OVER w AS running
          FROM new_postings p
        WINDOW w AS (PARTITION BY p.account_id ORDER BY p.account_seq)
    ), problems AS (
        SELECT 1 AS rank, '23503' AS code,
               format('posting to account %s in %s: there is no such account in that commodity',
                      m.account_id, m.commodity) AS problem
          FROM movement m
          LEFT JOIN applied a ON a.id = m.account_id AND a.commodity = m.commodity
         WHERE a.id IS NULL
        UNION ALL
        SELECT 2, '23514',
               format('posting %s on account %s carries sequence %s and running balance %s;'
                      ' the account is at sequence %s and balance %s',
                      h.id, a.code, h.account_seq, h.balance_after,
                      a.opening_count + h.n, a.opening_balance + h.running)
          FROM history h JOIN applied a ON a.id = h.account_id
         WHERE h.account_seq <> a.opening_count + h.n
            OR h.balance_after <> a.opening_balance + h.running
        UNION ALL
        SELECT 3, '23514',
               format('posting %s would take %s to %s; it may not be overdrawn',
                      h.id, a.code, h.balance_after * a.normal_sign)
          FROM history h JOIN applied a ON a.id = h.account_id
         WHERE a.no_overdraft AND h.balance_after * a.normal_sign < 0
    )
    SELECT p.problem, p.code INTO problem, problem_code FROM problems p ORDER BY p.rank LIMIT 1;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = problem_code;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER postings_apply AFTER INSERT ON posting
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_postings_apply();

CREATE OR REPLACE FUNCTION coinbooks_entry_has_postings() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    posting_total bigint;
BEGIN
    SELECT count(*) INTO posting_total FROM posting WHERE entry_id = NEW.id;
    IF posting_total < 2 THEN
        RAISE EXCEPTION 'journal entry % has % posting(s); an entry has at least two',
            NEW.id, posting_total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

-- A constraint trigger cannot be replaced in place, so it is dropped and created again.
DROP TRIGGER IF EXISTS journal_entry_check ON journal_entry;
CREATE CONSTRAINT TRIGGER journal_entry_check AFTER INSERT ON journal_entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION coinbooks_entry_has_postings();
