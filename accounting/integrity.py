"""The integrity check: every invariant of DESIGN.md re-derived from the raw postings, in one
repeatable-read snapshot.

It trusts nothing the ledger maintains for speed (stored balances, running balances, counts):
each check recomputes from ``posting`` and ``journal_entry`` and reports what disagrees. Each
check is one small named query living beside what it guards: the core's invariants 1 to 5 in
``accounting/ledger/checks.py``, and each flow's records checked against the entries they
posted (invariant 6: each business event is posted once, as it was asked) in
``accounting/<flow>/checks.py``. This module only runs them together (``coinbooks check``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.breakage import checks as breakage
from accounting.chargebacks import checks as chargebacks
from accounting.close import checks as close
from accounting.corrections import checks as corrections
from accounting.gifts import checks as gifts
from accounting.ledger import checks as ledger
from accounting.ledger.checks import Check
from accounting.payouts import checks as payouts
from accounting.purchases import checks as purchases
from accounting.reads import period_totals
from accounting.refunds import checks as refunds
from accounting.settlement import checks as settlement

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


CHECKS: tuple[Check, ...] = (
    *ledger.CHECKS,
    *purchases.CHECKS,
    *refunds.CHECKS,
    *chargebacks.CHECKS,
    *gifts.CHECKS,
    *payouts.CHECKS,
    *corrections.CHECKS,
    *settlement.CHECKS,
    *breakage.CHECKS,
    *close.CHECKS,
    *period_totals.CHECKS,
)
"""Every check, the core's first, then each flow's (each lives beside the flow it guards),
then the stored totals' of the reads."""


async def check_integrity(
    session: AsyncSession, on_check: Callable[[str], None] | None = None
) -> IntegrityReport:
    """Run every check in one repeatable-read snapshot, so they all see the same books;
    ``on_check`` is told the name of each check once it has run (a progress bar's step)."""
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
        if on_check is not None:
            on_check(name)
    return IntegrityReport(
        checked_at=checked_at,
        entries=entries,
        postings=postings,
        accounts=accounts,
        checks=[name for _, name, _ in CHECKS],
        violations=violations,
    )
