"""The ledger core's integrity checks: invariants 1 to 5 of DESIGN.md (entries balance and
have two postings, the trial balance is zero per commodity, postings match their accounts'
commodity and their entry's time, reversals negate once, no overdraft now or ever, stored and
running balances are the sums of postings, history in time order), re-derived from the raw
postings. Each flow adds the checks of its own records beside its code (``<flow>/checks.py``);
``accounting.integrity`` runs them all in one snapshot."""

from __future__ import annotations

from typing import NamedTuple

from accounting.ledger.chart import PARENT_CODE_SQL


class Check(NamedTuple):
    """One invariant's check: a query returning one line of text per violation."""

    invariant: int
    name: str
    sql: str


def record_has_its_entry(name: str, *, record: str, table: str, kind: str, key: str) -> Check:
    """Each row of a flow's ``table`` (``r``) points to exactly the ``kind`` entry keyed ``key``
    (an SQL expression over ``r``): invariant 6, each business event posted once."""
    return Check(
        6,
        name,
        f"""
        SELECT format('{record} %s has entry %s (%s, keyed %s), not the {kind} entry keyed %s',
                      r.id, r.entry_id, coalesce(e.kind, 'none'), coalesce(e.event_key, 'none'),
                      {key})
          FROM {table} r LEFT JOIN journal_entry e ON e.id = r.entry_id
         WHERE e.id IS NULL OR e.kind <> '{kind}' OR e.event_key <> {key}""",
    )


def undoes_a_completed_purchase(kind: str) -> str:
    """A query finding each row of the table ``kind`` (a refund, a chargeback: ``r``) whose entry
    is not exactly the ``kind`` entry keyed ``<kind>:<purchase id>``, or whose purchase never
    completed: half of invariant 6 for a record that undoes a purchase (its check adds the
    other half)."""
    return f"""
        SELECT format('{kind} %s of purchase %s has entry %s keyed %s',
                      r.id, r.purchase_id, r.entry_id, coalesce(e.event_key, 'none'))
          FROM {kind} r LEFT JOIN journal_entry e ON e.id = r.entry_id
         WHERE e.event_key IS DISTINCT FROM '{kind}:' || r.purchase_id
            OR e.kind <> '{kind}'
            OR NOT EXISTS (SELECT 1 FROM purchase pu
                            WHERE pu.id = r.purchase_id AND pu.status = 'completed')"""


def accounts_agree_with_records(name: str, *, accounts: str, records: str, message: str) -> Check:
    """The credit balance of each account whose code matches the regular expression
    ``accounts`` (keyed by its capture group) equals the ``amount`` a flow's ``records`` query
    holds under the same ``key``; ``message`` formats the key, the balance and the records'
    amount: invariant 6, a flow's records and its accounts tell the same story."""
    return Check(
        6,
        name,
        rf"""
        WITH held AS (
             SELECT substring(a.code FROM '{accounts}') AS key,
                    -coalesce(sum(p.amount), 0) AS amount
               FROM account a LEFT JOIN posting p ON p.account_id = a.id
              WHERE a.code ~ '{accounts}'
              GROUP BY a.code),
        recorded AS ({records})
        SELECT format('{message}', coalesce(h.key, r.key), coalesce(h.amount, 0),
                      coalesce(r.amount, 0))
          FROM held h FULL JOIN recorded r ON r.key = h.key
         WHERE coalesce(h.amount, 0) <> coalesce(r.amount, 0)""",
    )


CHECKS: tuple[Check, ...] = (
    Check(
        1,
        "entry_balances_per_commodity",
        """
        SELECT format('entry %s: %s postings sum to %s', entry_id, commodity, sum(amount))
          FROM posting GROUP BY entry_id, commodity HAVING sum(amount) <> 0""",
    ),
    Check(
        1,
        "entry_has_two_postings",
        """
        SELECT format('entry %s has %s posting(s)', e.id, count(p.id))
          FROM journal_entry e LEFT JOIN posting p ON p.entry_id = e.id
         GROUP BY e.id HAVING count(p.id) < 2""",
    ),
    Check(
        1,
        "trial_balance_per_commodity",
        """
        SELECT format('all %s postings sum to %s', commodity, sum(amount))
          FROM posting GROUP BY commodity HAVING sum(amount) <> 0""",
    ),
    Check(
        2,
        "posting_commodity_is_account_commodity",
        """
        SELECT format('posting %s is %s on %s account %s', p.id, p.commodity, a.commodity, a.code)
          FROM posting p JOIN account a ON a.id = p.account_id
         WHERE p.commodity <> a.commodity""",
    ),
    Check(
        3,
        "posting_time_is_entry_time",
        """
        SELECT format('posting %s is dated %s, its entry %s', p.id, p.posted_at, e.posted_at)
          FROM posting p JOIN journal_entry e ON e.id = p.entry_id
         WHERE p.posted_at <> e.posted_at""",
    ),
    Check(
        3,
        "reversal_negates_original",
        """
        SELECT format('entry %s does not exactly reverse entry %s', r.id, r.reverses_entry_id)
          FROM journal_entry r
         WHERE r.reverses_entry_id IS NOT NULL AND EXISTS (
               (SELECT account_id, -amount FROM posting WHERE entry_id = r.reverses_entry_id
                EXCEPT ALL SELECT account_id, amount FROM posting WHERE entry_id = r.id)
               UNION ALL
               (SELECT account_id, amount FROM posting WHERE entry_id = r.id
                EXCEPT ALL
                SELECT account_id, -amount FROM posting WHERE entry_id = r.reverses_entry_id))""",
    ),
    Check(
        3,
        "reversed_at_most_once",
        """
        SELECT format('entry %s is reversed %s times', reverses_entry_id, count(*))
          FROM journal_entry WHERE reverses_entry_id IS NOT NULL
         GROUP BY reverses_entry_id HAVING count(*) > 1""",
    ),
    Check(
        4,
        "no_overdraft_now",
        """
        SELECT format('%s holds %s', a.code, coalesce(sum(p.amount), 0) * a.normal_sign)
          FROM account a LEFT JOIN posting p ON p.account_id = a.id
         WHERE a.no_overdraft
         GROUP BY a.id HAVING coalesce(sum(p.amount), 0) * a.normal_sign < 0""",
    ),
    Check(
        4,
        "no_overdraft_ever",
        """
        SELECT format('%s went to %s at posting %s', code, running * normal_sign, id)
          FROM (SELECT a.code, a.normal_sign, p.id,
                       sum(p.amount) OVER (PARTITION BY p.account_id ORDER BY p.account_seq)
                           AS running
                  FROM posting p JOIN account a ON a.id = p.account_id
                 WHERE a.no_overdraft) h
         WHERE running * normal_sign < 0""",
    ),
    Check(
        5,
        "stored_balance_is_sum_of_postings",
        """
        SELECT format('%s stores %s over %s postings; its postings sum to %s over %s',
                      a.code, a.balance, a.posting_count,
                      coalesce(sum(p.amount), 0), count(p.id))
          FROM account a LEFT JOIN posting p ON p.account_id = a.id
         GROUP BY a.id
        HAVING a.balance <> coalesce(sum(p.amount), 0) OR a.posting_count <> count(p.id)""",
    ),
    Check(
        5,
        "running_balance_is_sum_so_far",
        """
        SELECT format('posting %s on account %s: running balance %s, postings so far sum to %s,'
                      ' sequence %s of %s', id, account_id, balance_after, running, account_seq, n)
          FROM (SELECT p.id, p.account_id, p.balance_after, p.account_seq,
                       sum(p.amount) OVER w AS running, row_number() OVER w AS n
                  FROM posting p
                WINDOW w AS (PARTITION BY p.account_id ORDER BY p.account_seq)) h
         WHERE balance_after <> running OR account_seq <> n""",
    ),
    Check(
        5,
        "history_in_time_order",
        """
        SELECT format('account %s: posting %s (seq %s) is dated before the posting it follows',
                      account_id, id, account_seq)
          FROM (SELECT p.id, p.account_id, p.account_seq, p.posted_at,
                       lag(p.posted_at) OVER (PARTITION BY p.account_id ORDER BY p.account_seq)
                           AS previous_at
                  FROM posting p) h
         WHERE posted_at < previous_at""",
    ),
    Check(
        5,
        "sub_account_is_its_platform_accounts_twin",
        f"""
        SELECT format('sub-account %s is not a twin of %s', s.code, coalesce(p.code, s.parent))
          FROM (SELECT *, {PARENT_CODE_SQL.format(code="code")} AS parent FROM account
                 WHERE code LIKE 'platform:%#%') s
          LEFT JOIN account p ON p.code = s.parent
         WHERE p.id IS NULL  -- of no account: nothing sums it
            OR (p.commodity, p.type, p.contra, p.no_overdraft, p.normal_sign) IS DISTINCT FROM
               (s.commodity, s.type, s.contra, s.no_overdraft, s.normal_sign)""",
    ),
)
