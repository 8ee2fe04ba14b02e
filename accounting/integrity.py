"""The integrity check: every invariant of DESIGN.md re-derived from the raw postings.

It trusts nothing the ledger maintains for speed (stored balances, running balances, counts):
each check recomputes from ``posting`` and ``journal_entry`` and reports what disagrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MAX_VIOLATIONS_PER_CHECK = 100


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: int
    check: str
    detail: str


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    checked_at: datetime
    entries: int
    postings: int
    accounts: int
    checks: list[str]
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations


# (invariant, check name, SQL returning one text column describing each violation)
CHECKS: list[tuple[int, str, str]] = [
    (
        1,
        "entry_balances_per_commodity",
        """
        SELECT format('entry %s: %s postings sum to %s', entry_id, commodity, sum(amount))
          FROM posting GROUP BY entry_id, commodity HAVING sum(amount) <> 0""",
    ),
    (
        1,
        "entry_has_two_postings",
        """
        SELECT format('entry %s has %s posting(s)', e.id, count(p.id))
          FROM journal_entry e LEFT JOIN posting p ON p.entry_id = e.id
         GROUP BY e.id HAVING count(p.id) < 2""",
    ),
    (
        1,
        "trial_balance_per_commodity",
        """
        SELECT format('all %s postings sum to %s', commodity, sum(amount))
          FROM posting GROUP BY commodity HAVING sum(amount) <> 0""",
    ),
    (
        2,
        "posting_commodity_is_account_commodity",
        """
        SELECT format('posting %s is %s on %s account %s', p.id, p.commodity, a.commodity, a.code)
          FROM posting p JOIN account a ON a.id = p.account_id
         WHERE p.commodity <> a.commodity""",
    ),
    (
        3,
        "posting_time_is_entry_time",
        """
        SELECT format('posting %s is dated %s, its entry %s', p.id, p.posted_at, e.posted_at)
          FROM posting p JOIN journal_entry e ON e.id = p.entry_id
         WHERE p.posted_at <> e.posted_at""",
    ),
    (
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
    (
        3,
        "reversed_at_most_once",
        """
        SELECT format('entry %s is reversed %s times', reverses_entry_id, count(*))
          FROM journal_entry WHERE reverses_entry_id IS NOT NULL
         GROUP BY reverses_entry_id HAVING count(*) > 1""",
    ),
    (
        4,
        "no_overdraft_now",
        """
        SELECT format('%s holds %s', a.code, coalesce(sum(p.amount), 0) * a.normal_sign)
          FROM account a LEFT JOIN posting p ON p.account_id = a.id
         WHERE a.no_overdraft
         GROUP BY a.id HAVING coalesce(sum(p.amount), 0) * a.normal_sign < 0""",
    ),
    (
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
    (
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
    (
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
    (
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
    (
        6,
        "completed_purchase_posted_once",
        """
        SELECT format('purchase %s (%s) has entry %s keyed %s',
                      pu.id, pu.status, pu.entry_id, coalesce(e.event_key, 'none'))
          FROM purchase pu LEFT JOIN journal_entry e ON e.id = pu.entry_id
         WHERE (pu.status = 'completed')
               <> (e.event_key IS NOT NULL AND e.event_key = 'purchase:' || pu.id)""",
    ),
    (
        6,
        "purchase_entry_belongs_to_a_completed_purchase",
        """
        SELECT format('entry %s (%s) has no completed purchase', e.id, e.event_key)
          FROM journal_entry e
         WHERE e.kind = 'purchase'
           AND NOT EXISTS (SELECT 1 FROM purchase pu
                            WHERE pu.entry_id = e.id AND pu.status = 'completed')""",
    ),
    (
        6,
        "purchase_granted_what_was_bought",
        r"""
        SELECT format('purchase %s bought %s coins, its entry granted %s',
                      pu.id, pu.coins + pu.bonus_coins, -sum(p.amount))
          FROM purchase pu
          JOIN posting p ON p.entry_id = pu.entry_id
          JOIN account a ON a.id = p.account_id AND a.code = format('user:%s\:coins', pu.user_id)
         GROUP BY pu.id HAVING -sum(p.amount) <> pu.coins + pu.bonus_coins""",
    ),
]


async def check_integrity(session: AsyncSession) -> IntegrityReport:
    """Run every check in one repeatable-read snapshot, so they all see the same books."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    checked_at, entries, postings, accounts = (
        await session.execute(
            text(
                "SELECT clock_timestamp(), (SELECT count(*) FROM journal_entry),"
                " (SELECT count(*) FROM posting), (SELECT count(*) FROM account)"
            )
        )
    ).one()
    violations: list[Violation] = []
    for invariant, name, sql in CHECKS:
        rows = await session.scalars(text(f"{sql} LIMIT {MAX_VIOLATIONS_PER_CHECK}"))
        violations += [Violation(invariant, name, detail) for detail in rows]
    return IntegrityReport(
        checked_at=checked_at,
        entries=entries,
        postings=postings,
        accounts=accounts,
        checks=[name for _, name, _ in CHECKS],
        violations=violations,
    )
