-- Coinbooks: the posting invariants checked once per statement instead of once per row.
--
-- A journal entry's postings are written by one INSERT statement, however many entries that
-- statement carries (a batch of gifts is one statement for all of its postings). Each
-- statement is checked as a whole, at its end, over its transition table:
--   * invariant 1: every entry it touches balances per commodity, has at least two postings,
--     and had none before (so an entry can never be extended later, not even after an early
--     SET CONSTRAINTS ALL IMMEDIATE); a reversal negates exactly the entry it reverses;
--   * invariant 3: postings join only an entry created in the same transaction;
--   * invariants 4 and 5: each account's balance and posting count move once, by the sum of
--     the statement's postings on it; the postings carry the account's sequence numbers
--     (posting_count + 1, + 2, ...) and running balances, which the writer computes under the
--     account's row lock and this trigger verifies; no running balance of a no-overdraft
--     account is ever below zero (the CHECK on account guards the final balance too).
--   * invariant 2 and references: each posting's entry exists (with its date) and each posting's
--     account exists and holds the posting's commodity. These were foreign keys, checked row by
--     row; checked here set-wise instead, with accounts guarded against deletion below.
-- A deferred trigger per entry still checks at commit that no entry was left without postings.

DROP TRIGGER posting_apply ON posting;
ALTER TABLE posting DROP CONSTRAINT fk_posting_entry_id_posted_at_journal_entry;
ALTER TABLE posting DROP CONSTRAINT fk_posting_account_id_commodity_account;
ALTER TABLE journal_entry DROP CONSTRAINT uq_journal_entry_id_posted_at;
ALTER TABLE account DROP CONSTRAINT uq_account_id_commodity;
DROP FUNCTION coinbooks_posting_apply();
DROP TRIGGER posting_entry_check ON posting;
DROP TRIGGER journal_entry_check ON journal_entry;
DROP FUNCTION coinbooks_entry_check();

CREATE FUNCTION coinbooks_postings_apply() RETURNS trigger
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

CREATE TRIGGER postings_apply AFTER INSERT ON posting
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_postings_apply();

-- At commit: no entry is left without postings (they all arrive in one statement, checked
-- above, so an entry with any postings has a whole, balanced set).
CREATE FUNCTION coinbooks_entry_has_postings() RETURNS trigger
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

CREATE CONSTRAINT TRIGGER journal_entry_check AFTER INSERT ON journal_entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION coinbooks_entry_has_postings();

-- Accounts are never deleted (postings refer to them), and what an account is never changes;
-- the guard runs in full on every update a statement makes, and for the posting trigger's
-- own balance updates only if anything but the balance and count would change.
CREATE TRIGGER account_no_delete BEFORE DELETE ON account
    FOR EACH ROW EXECUTE FUNCTION coinbooks_append_only();
CREATE TRIGGER account_no_truncate BEFORE TRUNCATE ON account
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_append_only();
DROP TRIGGER account_guard ON account;
CREATE TRIGGER account_guard BEFORE INSERT ON account
    FOR EACH ROW EXECUTE FUNCTION coinbooks_account_guard();
CREATE TRIGGER account_guard_update BEFORE UPDATE ON account
    FOR EACH ROW
    WHEN (pg_trigger_depth() < 1
          OR (OLD.id, OLD.code, OLD.commodity, OLD.type, OLD.contra, OLD.no_overdraft,
              OLD.normal_sign, OLD.opened_at)
             IS DISTINCT FROM
             (NEW.id, NEW.code, NEW.commodity, NEW.type, NEW.contra, NEW.no_overdraft,
              NEW.normal_sign, NEW.opened_at))
    EXECUTE FUNCTION coinbooks_account_guard();

-- An entry's transaction is its column default rather than a row trigger. Nothing is lost: an
-- entry committed with postings cannot take more later (see above), and one committed without
-- any is refused at commit, whatever created_txid it claims.
DROP TRIGGER journal_entry_stamp ON journal_entry;
DROP FUNCTION coinbooks_entry_stamp();
ALTER TABLE journal_entry
    ALTER COLUMN created_txid SET DEFAULT (pg_current_xact_id()::text::bigint);

-- The live gift feed announces a statement's gifts from one trigger call (one notification per
-- gift, as before), rather than one trigger call per gift.
DROP TRIGGER gift_notify ON gift;
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
CREATE TRIGGER gift_notify AFTER INSERT ON gift
    REFERENCING NEW TABLE AS new_gifts
    FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_gift_notify();
