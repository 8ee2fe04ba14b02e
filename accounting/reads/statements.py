"""Account statements: one account over a period, as a bank statement reads.

The period is half-open, ``[start, end)``: a movement posted exactly at ``start`` is in it, one
posted exactly at ``end`` belongs to the next period, so the closing balance of one period is
the opening balance of the next. An account's postings are in time order (``posted_at`` is
taken after the account is locked), so a period is a range of the account's sequence numbers:
the opening and closing balances are the running balances of the last posting before ``start``
and before ``end``, each one probe of the index ``(account_id, posted_at)``.

The movements are in the order ``(posted_at, account, sequence number)`` and read by keyset: a
page starts right after its cursor (the instant and posting id of the page before's last
movement) with one probe of that index, so a page deep in a long period reads its own
movements and no others. Only the totals in and out read the whole period (one range of the
index), and only when they are asked for.

Every amount is in the account's natural reading (what a user holds, what the platform owes or
earned), in the commodity's smallest unit: ``in`` is what increased it, ``out`` what decreased.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.chart import with_sub_accounts
from accounting.ledger.errors import LedgerError
from accounting.ledger.pages import Page, page_size
from accounting.ledger.tables import AccountRow, PostingRow

StatementCursor = tuple[datetime, int]
"""Where a page of a statement ends: its last movement's instant and posting id."""


class UnknownCursor(LedgerError):
    """The cursor names no movement of this statement (another account's, another period's)."""

    code = "UNKNOWN_CURSOR"


@dataclass(frozen=True, slots=True)
class StatementMovement:
    seq: int
    """The posting's place in its account's history (in its sub-account's, for a platform
    account split into sub-accounts)."""
    posting_id: int
    entry_id: int
    posted_at: datetime
    kind: str
    memo: str
    amount: int
    """Positive when it increased the account (natural reading), negative when it decreased it."""
    balance_after: int
    """The account's balance after it (the sum of the sub-accounts', for a split account)."""
    counterparties: tuple[str, ...]
    """The codes of the entry's other accounts, in code order."""

    @property
    def cursor(self) -> StatementCursor:
        """The next page starts after this movement."""
        return self.posted_at, self.posting_id


@dataclass(frozen=True, slots=True)
class AccountStatement:
    code: str
    commodity: str
    start: datetime
    end: datetime
    opening: int
    closing: int
    total_in: int | None
    """What increased the account over the whole period; ``None`` when read without totals."""
    total_out: int | None
    """What decreased it (positive); ``None`` when read without totals."""
    movement_count: int
    """Movements in the whole period (every page), not only this page's."""
    movements: Page[StatementMovement]
    """One page of the period's movements, oldest first."""


@dataclass(frozen=True, slots=True)
class _Bounds:
    """One account's period as its sequence numbers ``(after_seq, last_seq]``, and the running
    balances (debit-positive) at either end."""

    after_seq: int
    opening: int
    last_seq: int
    closing: int


@dataclass(frozen=True, slots=True)
class _Window:
    """The accounts read as one, the period, and where the page starts: after the posting
    ``(at, account_id, seq)`` in the movements' order; ``(start, 0, 0)`` before the first."""

    account_ids: list[int]
    start: datetime
    end: datetime
    at: datetime
    account_id: int = 0
    seq: int = 0

    def params(self) -> dict[str, Any]:
        return {
            "ids": self.account_ids,
            "end": self.end,
            "at": self.at,
            "account": self.account_id,
            "seq": self.seq,
        }


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
    return _Bounds(after_seq, opening, last_seq, closing)


async def _totals(
    session: AsyncSession, account_ids: list[int], normal_sign: int, start: datetime, end: datetime
) -> tuple[int, int]:
    """What went in and what went out (both positive, natural reading) over the whole period:
    one range of the account's history index per account, as long as the period's movements."""
    natural = PostingRow.amount * normal_sign
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(case((natural > 0, natural), else_=0)), 0),
                func.coalesce(func.sum(case((natural < 0, -natural), else_=0)), 0),
            ).where(
                PostingRow.account_id.in_(account_ids),
                PostingRow.posted_at >= start,
                PostingRow.posted_at < end,
            )
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


_AFTER_CURSOR = """
    q.account_id = a.id AND q.posted_at >= :at AND q.posted_at < :end
    AND (q.posted_at > :at OR (q.account_id, q.account_seq) > (:account, :seq))"""
_PAGE = text(
    "SELECT p.id, p.entry_id, p.posted_at, p.account_seq, p.amount, e.kind, e.memo"
    "  FROM unnest(CAST(:ids AS bigint[])) AS a(id)"
    " CROSS JOIN LATERAL (SELECT q.* FROM posting q"
    f"                    WHERE {_AFTER_CURSOR}"
    "                     ORDER BY q.posted_at FETCH FIRST (:n) ROWS WITH TIES) p"
    "  JOIN journal_entry e ON e.id = p.entry_id"
    " ORDER BY p.posted_at, p.account_id, p.account_seq LIMIT :n"
)
"""The page: each account's first movements after the cursor (one range of its history index,
as long as the page), merged in the movements' order. Each account's range is taken in the
index's own order (instant) with the movements tied at the last instant (``WITH TIES``), not
sorted by (instant, number): PostgreSQL 15 sorts the whole rest of the period for that, where
18 sorts incrementally."""
_BALANCE_AT = text(
    "SELECT coalesce(sum(b.balance_after), 0) FROM unnest(CAST(:ids AS bigint[])) AS a(id)"
    " CROSS JOIN LATERAL (SELECT t.balance_after FROM"
    "                     (SELECT q.balance_after, q.account_seq FROM posting q"
    "                       WHERE q.account_id = a.id AND q.posted_at <= :at"
    "                         AND (q.posted_at < :at OR (q.account_id, q.account_seq)"
    "                                                <= (:account, :seq))"
    "                       ORDER BY q.posted_at DESC FETCH FIRST 1 ROWS WITH TIES) t"
    "                     ORDER BY t.account_seq DESC LIMIT 1) b"
)
"""The accounts' balance (debit-positive) right after the cursor's posting: each account's
running balance at its last posting up to it in the movements' order, one probe each (the
postings of the last instant, then the highest number among them, for the reason above)."""


async def _window(
    session: AsyncSession,
    account_ids: list[int],
    start: datetime,
    end: datetime,
    after: StatementCursor | None,
) -> _Window:
    """The page's window: where the cursor ``after`` is, in the movements' order (one probe of
    the posting's key); :class:`UnknownCursor` for a posting not among the statement's."""
    if after is None:
        return _Window(account_ids, start, end, start)
    instant, posting_id = after
    found = (
        await session.execute(
            select(PostingRow.posted_at, PostingRow.account_id, PostingRow.account_seq).where(
                PostingRow.id == posting_id
            )
        )
    ).first()
    if found is None or found.account_id not in account_ids or found.posted_at != instant:
        raise UnknownCursor("'after' names no movement of this statement", field="after")
    if not start <= instant < end:
        raise UnknownCursor("'after' names a movement of another period", field="after")
    return _Window(account_ids, start, end, instant, found.account_id, found.account_seq)


async def _page(
    session: AsyncSession,
    sign: int,
    window: _Window,
    opening: int | None,
    first: int,
) -> Page[StatementMovement]:
    """One page of the movements after the window's cursor, each with the balance after it:
    from the ``opening`` balance (debit-positive) for the first page, else from the balance
    right after the cursor's posting."""
    size, params = page_size(first), window.params()
    if opening is None:
        opening = int(await session.scalar(_BALANCE_AT, params) or 0)
    rows = (await session.execute(_PAGE, {**params, "n": size + 1})).all()
    shown = rows[:size]
    others = await _counterparties(
        session, window.account_ids, sorted({row.entry_id for row in shown})
    )
    balance, items = opening, []
    for row in shown:
        balance += row.amount
        items.append(
            StatementMovement(
                seq=row.account_seq,
                posting_id=row.id,
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


async def _snapshot(session: AsyncSession) -> None:
    """One snapshot for all of a statement's reads: the session's transaction, opened here as
    repeatable read (a caller that opened it already chose its isolation)."""
    if not session.in_transaction():
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))


async def account_statement(
    session: AsyncSession,
    account_code: str,
    start: datetime,
    end: datetime,
    *,
    first: int = 20,
    after: StatementCursor | None = None,
    totals: bool = True,
) -> AccountStatement | None:
    """The statement of ``account_code`` for ``[start, end)`` (a platform account: the sum of
    its sub-accounts), with one page of its movements (oldest first, after the cursor
    ``after``); ``None`` if the account was never opened. The opening, closing, totals and
    movement count are the whole period's, whichever page is asked; the totals, the one
    figure that reads every movement of the period, only with ``totals``. Its reads share one
    snapshot, so the figures agree with each other while entries are being posted."""
    await _snapshot(session)
    accounts = await _accounts_of(session, account_code)
    if not accounts:
        return None
    ids, sign = [a.id for a in accounts], accounts[0].normal_sign
    window = await _window(session, ids, start, end, after)
    bounds = [await _bounds(session, account_id, start, end) for account_id in ids]
    opening = sum(bound.opening for bound in bounds)
    total_in = total_out = None
    if totals:
        total_in, total_out = await _totals(session, ids, sign, start, end)
    return AccountStatement(
        code=accounts[0].code if len(accounts) == 1 else account_code,
        commodity=accounts[0].commodity,
        start=start,
        end=end,
        opening=opening * sign,
        closing=sum(bound.closing for bound in bounds) * sign,
        total_in=total_in,
        total_out=total_out,
        movement_count=sum(b.last_seq - b.after_seq for b in bounds),  # no gaps in sequences
        movements=await _page(session, sign, window, opening if after is None else None, first),
    )


async def later_movements(
    session: AsyncSession,
    account_code: str,
    start: datetime,
    end: datetime,
    *,
    after: StatementCursor,
    first: int = 20,
) -> Page[StatementMovement]:
    """The page of the statement's movements after the cursor ``after`` (of the page before's
    last movement), for a reader going through a long statement page by page: read in the
    same transaction as :func:`account_statement`, it sees the same snapshot."""
    accounts = await _accounts_of(session, account_code)
    if not accounts:
        return Page([], False)
    window = await _window(session, [a.id for a in accounts], start, end, after)
    return await _page(session, accounts[0].normal_sign, window, None, first)


async def _accounts_of(session: AsyncSession, code: str) -> list[AccountRow]:
    """The account ``code``, or a platform account and the sub-accounts it has."""
    found = await session.scalars(
        select(AccountRow).where(AccountRow.code.in_(with_sub_accounts(code))).order_by("id")
    )
    return list(found.all())
