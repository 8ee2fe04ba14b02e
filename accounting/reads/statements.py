"""Account statements: one account over a period, as a bank statement reads.

The period is half-open, ``[start, end)``: a movement posted exactly at ``start`` is in it, one
posted exactly at ``end`` belongs to the next period, so the closing balance of one period is
the opening balance of the next. An account's postings are in time order (``posted_at`` is
taken after the account is locked), so a period is a range of the account's sequence numbers:
the opening and closing balances are the running balances of the last posting before ``start``
and before ``end``, each one probe of the index ``(account_id, posted_at)``, and the period's
movements are one range of that index, in the same order: the totals read the range whole, and
a page reads it from the start of the period, passing over the movements up to its cursor.

Every amount is in the account's natural reading (what a user holds, what the platform owes or
earned), in the commodity's smallest unit: ``in`` is what increased it, ``out`` what decreased.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.chart import with_sub_accounts
from accounting.ledger.pages import Page, page_size
from accounting.ledger.tables import AccountRow, JournalEntryRow, PostingRow


@dataclass(frozen=True, slots=True)
class StatementMovement:
    seq: int
    """The posting's place in the account's history (the cursor)."""
    entry_id: int
    posted_at: datetime
    kind: str
    memo: str
    amount: int
    """Positive when it increased the account (natural reading), negative when it decreased it."""
    balance_after: int
    counterparties: tuple[str, ...]
    """The codes of the entry's other accounts, in code order."""


@dataclass(frozen=True, slots=True)
class AccountStatement:
    code: str
    commodity: str
    start: datetime
    end: datetime
    opening: int
    closing: int
    total_in: int
    total_out: int
    movement_count: int
    """Movements in the whole period (every page), not only this page's."""
    movements: Page[StatementMovement]
    """One page of the period's movements, oldest first."""


@dataclass(frozen=True, slots=True)
class _Bounds:
    """The period as the account's sequence numbers ``(after_seq, last_seq]``, and the running
    balances (debit-positive) at either end."""

    after_seq: int
    opening: int
    last_seq: int
    closing: int
    start: datetime
    end: datetime


def _in_period(account_id: int, bounds: _Bounds) -> tuple[ColumnElement[bool], ...]:
    """The account's movements of the period: one range of the index ``(account_id,
    posted_at)``, the same postings as the sequence numbers ``(after_seq, last_seq]``."""
    return (
        PostingRow.account_id == account_id,
        PostingRow.posted_at >= bounds.start,
        PostingRow.posted_at < bounds.end,
    )


async def _last_before(
    session: AsyncSession, account_id: int, instant: datetime
) -> tuple[int, int]:
    """The sequence number and running balance of the account's last posting before
    ``instant``; ``(0, 0)`` when it has none."""
    row = (
        await session.execute(
            select(PostingRow.account_seq, PostingRow.balance_after)
            .where(PostingRow.account_id == account_id, PostingRow.posted_at < instant)
            .order_by(PostingRow.posted_at.desc(), PostingRow.account_seq.desc())
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row else (0, 0)


async def _bounds(
    session: AsyncSession, account_id: int, start: datetime, end: datetime
) -> _Bounds:
    after_seq, opening = await _last_before(session, account_id, start)
    last_seq, closing = await _last_before(session, account_id, end)
    if last_seq < after_seq:  # an empty period
        last_seq, closing = after_seq, opening
    return _Bounds(after_seq, opening, last_seq, closing, start, end)


async def _totals(
    session: AsyncSession, account_id: int, normal_sign: int, bounds: _Bounds
) -> tuple[int, int]:
    """What went in and what went out (both positive, natural reading) over the whole period:
    one range of the account's history index, as long as the period's movements."""
    natural = PostingRow.amount * normal_sign
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(case((natural > 0, natural), else_=0)), 0),
                func.coalesce(func.sum(case((natural < 0, -natural), else_=0)), 0),
            ).where(*_in_period(account_id, bounds))
        )
    ).one()
    return int(row[0]), int(row[1])


async def _counterparties(
    session: AsyncSession, account_ids: list[int], entry_ids: list[int]
) -> dict[int, tuple[str, ...]]:
    """The other accounts (not ``account_ids``) of each of ``entry_ids``: one probe of the
    posting's entry index per entry."""
    if not entry_ids:
        return {}
    rows = (
        await session.execute(
            select(PostingRow.entry_id, AccountRow.code)
            .join(AccountRow, AccountRow.id == PostingRow.account_id)
            .where(PostingRow.entry_id.in_(entry_ids), PostingRow.account_id.not_in(account_ids))
            .distinct()
            .order_by(PostingRow.entry_id, AccountRow.code)
        )
    ).all()
    found: dict[int, list[str]] = {}
    for entry_id, code in rows:
        found.setdefault(entry_id, []).append(code)
    return {entry_id: tuple(codes) for entry_id, codes in found.items()}


async def _page(
    session: AsyncSession,
    account: AccountRow,
    bounds: _Bounds,
    first: int,
    after: int | None,
) -> Page[StatementMovement]:
    size = page_size(first)
    rows = (
        await session.execute(
            select(PostingRow, JournalEntryRow)
            .join(JournalEntryRow, JournalEntryRow.id == PostingRow.entry_id)
            .where(*_in_period(account.id, bounds), PostingRow.account_seq > (after or 0))
            .order_by(PostingRow.posted_at, PostingRow.account_seq)
            .limit(size + 1)
        )
    ).all()
    shown = rows[:size]
    others = await _counterparties(session, [account.id], sorted({e.id for _, e in shown}))
    sign = account.normal_sign
    items = [
        StatementMovement(
            seq=posting.account_seq,
            entry_id=entry.id,
            posted_at=entry.posted_at,
            kind=entry.kind,
            memo=entry.memo,
            amount=posting.amount * sign,
            balance_after=posting.balance_after * sign,
            counterparties=others.get(entry.id, ()),
        )
        for posting, entry in shown
    ]
    return Page(items, len(rows) > size)


async def account_statement(
    session: AsyncSession,
    account_code: str,
    start: datetime,
    end: datetime,
    *,
    first: int = 20,
    after: int | None = None,
) -> AccountStatement | None:
    """The statement of ``account_code`` for ``[start, end)``, with one page of its movements
    (oldest first, after the sequence number ``after``); ``None`` if the account was never
    opened. The opening, closing and totals are the whole period's, whichever page is asked.
    Its statements read one snapshot (it opens the session's transaction as repeatable read),
    so the figures agree with each other while entries are being posted."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    accounts = await _accounts_of(session, account_code)
    if len(accounts) > 1:
        return await _summed_statement(session, account_code, accounts, start, end, first, after)
    if not accounts:
        return None
    account = accounts[0]
    bounds = await _bounds(session, account.id, start, end)
    total_in, total_out = await _totals(session, account.id, account.normal_sign, bounds)
    return AccountStatement(
        code=account.code,
        commodity=account.commodity,
        start=start,
        end=end,
        opening=bounds.opening * account.normal_sign,
        closing=bounds.closing * account.normal_sign,
        total_in=total_in,
        total_out=total_out,
        movement_count=bounds.last_seq - bounds.after_seq,  # sequence numbers have no gaps
        movements=await _page(session, account, bounds, first, after),
    )


async def later_movements(
    session: AsyncSession,
    account_code: str,
    start: datetime,
    end: datetime,
    *,
    after: int,
    first: int = 20,
) -> Page[StatementMovement]:
    """The page of the statement's movements after the sequence number ``after`` (the last of
    the page before), for a reader going through a long statement page by page: read in the
    same transaction as :func:`account_statement`, it sees the same snapshot."""
    accounts = await _accounts_of(session, account_code)
    if len(accounts) > 1:
        opening = sum([(await _bounds(session, a.id, start, end)).opening for a in accounts])
        return await _summed_page(session, accounts, start, end, opening, first, after)
    if not accounts:
        return Page([], False)
    bounds = await _bounds(session, accounts[0].id, start, end)
    return await _page(session, accounts[0], bounds, first, after)


# --- a platform account with sub-accounts: their sum ------------------------------------------


async def _accounts_of(session: AsyncSession, code: str) -> list[AccountRow]:
    """The account ``code``, or a platform account and the sub-accounts it has."""
    found = await session.scalars(
        select(AccountRow).where(AccountRow.code.in_(with_sub_accounts(code))).order_by("id")
    )
    return list(found.all())


async def _summed_statement(
    session: AsyncSession,
    code: str,
    accounts: list[AccountRow],
    start: datetime,
    end: datetime,
    first: int,
    after: int | None,
) -> AccountStatement:
    """The statement of a platform account split into sub-accounts, as one account: each
    figure the sum of the sub-accounts', the movements of all of them in time order. A
    movement's ``seq`` is then its place among the period's movements (the cursor), and its
    ``balance_after`` the sum of the sub-accounts' after it."""
    sign = accounts[0].normal_sign
    bounds = [await _bounds(session, account.id, start, end) for account in accounts]
    totals = [
        await _totals(session, account.id, sign, bound)
        for account, bound in zip(accounts, bounds, strict=True)
    ]
    opening = sum(bound.opening for bound in bounds)
    return AccountStatement(
        code=code,
        commodity=accounts[0].commodity,
        start=start,
        end=end,
        opening=opening * sign,
        closing=sum(bound.closing for bound in bounds) * sign,
        total_in=sum(total[0] for total in totals),
        total_out=sum(total[1] for total in totals),
        movement_count=sum(bound.last_seq - bound.after_seq for bound in bounds),
        movements=await _summed_page(session, accounts, start, end, opening, first, after),
    )


_FAMILY_MOVEMENTS = """
    SELECT p.entry_id, p.amount, p.posted_at, p.account_id, p.account_seq FROM posting p
     WHERE p.account_id = ANY(CAST(:ids AS bigint[]))
       AND p.posted_at >= :start AND p.posted_at < :end
     ORDER BY p.posted_at, p.account_id, p.account_seq"""
_MOVED_BEFORE = text(f"SELECT coalesce(sum(amount), 0) FROM ({_FAMILY_MOVEMENTS} LIMIT :n) m")
_FAMILY_PAGE = text(
    "SELECT m.entry_id, m.posted_at, e.kind, e.memo, m.amount"
    f"  FROM ({_FAMILY_MOVEMENTS} OFFSET :n LIMIT :size) m"
    "  JOIN journal_entry e ON e.id = m.entry_id"
    " ORDER BY m.posted_at, m.account_id, m.account_seq"
)


async def _summed_page(
    session: AsyncSession,
    accounts: list[AccountRow],
    start: datetime,
    end: datetime,
    opening: int,
    first: int,
    after: int | None,
) -> Page[StatementMovement]:
    """One page of the sub-accounts' movements, after the ``after``-th of the period: what moved
    before it is summed, so each movement's running balance is the whole account's."""
    size, skipped = page_size(first), after or 0
    window = {"ids": [a.id for a in accounts], "start": start, "end": end, "n": skipped}
    balance = opening + int(await session.scalar(_MOVED_BEFORE, window) or 0)
    rows = (await session.execute(_FAMILY_PAGE, {**window, "size": size + 1})).all()
    shown = rows[:size]
    others = await _counterparties(
        session, [a.id for a in accounts], sorted({row.entry_id for row in shown})
    )
    sign, items = accounts[0].normal_sign, []
    for place, row in enumerate(shown, start=skipped + 1):
        balance += row.amount
        items.append(
            StatementMovement(
                seq=place,
                entry_id=row.entry_id,
                posted_at=row.posted_at,
                kind=row.kind,
                memo=row.memo,
                amount=row.amount * sign,
                balance_after=balance * sign,
                counterparties=others.get(row.entry_id, ()),
            )
        )
    return Page(items, len(rows) > size)
