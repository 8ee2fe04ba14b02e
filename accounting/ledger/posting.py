"""Writing journal entries to PostgreSQL: open accounts, lock them in a fixed order, check,
insert the entries and their postings. The caller owns the transaction and commits it.

Postings are written with their account's sequence number and running balance, computed here
from the balances read under the accounts' row locks; all postings of a statement's entries
go in one INSERT, and the database verifies the whole statement (migrations/sql/0004)."""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.chart import AccountSpec, AccountType
from accounting.ledger.entries import Entry, EntryKind, Posting, reversal_postings
from accounting.ledger.errors import (
    AlreadyReversed,
    CommodityMismatch,
    EntryNotFound,
    IdempotencyKeyReused,
    InsufficientCoins,
    Overdraft,
)
from accounting.ledger.money import COIN
from accounting.ledger.tables import AccountRow, JournalEntryRow, PostingRow


@dataclass(frozen=True, slots=True)
class LockedAccount:
    id: int
    spec: AccountSpec
    balance: int
    """Debit-positive balance at the moment the lock was taken."""
    posting_count: int = 0
    """Postings on the account so far: the next posting's sequence number is one more."""

    @property
    def normal_balance(self) -> int:
        return self.balance * self.spec.normal_sign


class LockedBooks:
    """Accounts this transaction holds row locks on, as the entries laid on them so far leave
    them: each entry is checked against the balances before it (no overdraft), then its
    postings get the accounts' next sequence numbers and running balances."""

    def __init__(self, accounts: dict[str, LockedAccount]) -> None:
        self._opening = accounts
        self._balance = {code: account.balance for code, account in accounts.items()}
        self._count = {code: account.posting_count for code, account in accounts.items()}

    def __getitem__(self, code: str) -> LockedAccount:
        return replace(
            self._opening[code], balance=self._balance[code], posting_count=self._count[code]
        )

    def opening_posting_count(self, code: str) -> int:
        """The account's posting count when it was locked, before anything was laid on it."""
        return self._opening[code].posting_count

    def normal_balance(self, code: str) -> int:
        return self._balance[code] * self._opening[code].spec.normal_sign

    def lay(self, entry: Entry, entry_id: int) -> list[dict[str, Any]]:
        """Check ``entry`` against the books as they stand and lay it on them: the rows of its
        postings, ready for :func:`insert_postings`."""
        deltas: dict[str, int] = {}
        for posting in entry.postings:
            deltas[posting.account.code] = deltas.get(posting.account.code, 0) + posting.amount
        for code, delta in deltas.items():
            spec = self._opening[code].spec
            if spec.no_overdraft and (self._balance[code] + delta) * spec.normal_sign < 0:
                check_overdraft(entry, {code: self[code] for code in deltas})  # raises
        rows = []
        for posting in entry.postings:
            code = posting.account.code
            account = self._opening[code]
            self._balance[code] += posting.amount
            self._count[code] += 1
            rows.append(
                {
                    "entry_id": entry_id,
                    "account_id": account.id,
                    "commodity": account.spec.commodity,
                    "amount": posting.amount,
                    "account_seq": self._count[code],
                    "balance_after": self._balance[code],
                }
            )
        return rows


@dataclass(frozen=True, slots=True)
class PostedEntry:
    id: int
    event_key: str
    posted_at: datetime
    replayed: bool
    """True when the event had been posted before and nothing new was written."""


def fingerprint(entry: Entry) -> str:
    canonical = {
        "kind": str(entry.kind),
        "postings": sorted([p.account.code, p.amount] for p in entry.postings),
        "reverses": entry.reverses_entry_id,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


class AccountFacts(Protocol):
    """What an account is, as an ORM row or a plain result row has it."""

    @property
    def code(self) -> str: ...
    @property
    def commodity(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def contra(self) -> bool: ...
    @property
    def no_overdraft(self) -> bool: ...


def spec_of(row: AccountFacts) -> AccountSpec:
    return AccountSpec(
        code=row.code,
        commodity=row.commodity,
        type=AccountType(row.type),
        contra=row.contra,
        no_overdraft=row.no_overdraft,
    )


async def open_accounts(session: AsyncSession, specs: Iterable[AccountSpec]) -> None:
    """Open the accounts that do not exist yet. Existing ones must match their spec."""
    wanted = {spec.code: spec for spec in specs}
    if not wanted:
        return
    await session.execute(
        pg_insert(AccountRow)
        .values(
            [
                {
                    "code": spec.code,
                    "commodity": spec.commodity,
                    "type": str(spec.type),
                    "contra": spec.contra,
                    "no_overdraft": spec.no_overdraft,
                    "normal_sign": spec.normal_sign,
                }
                for spec in sorted(wanted.values(), key=lambda s: s.code)
            ]
        )
        .on_conflict_do_nothing(index_elements=["code"])
    )


async def lock_accounts(
    session: AsyncSession, specs: Iterable[AccountSpec]
) -> dict[str, LockedAccount]:
    """Open (where needed) and lock the accounts, always in ascending id order."""
    wanted = {spec.code: spec for spec in specs}
    rows = (await session.execute(_LOCK_ACCOUNTS, {"codes": list(wanted)})).all()
    if len(rows) < len(wanted):
        found = {row.code for row in rows}
        await open_accounts(session, (s for c, s in wanted.items() if c not in found))
        rows = (await session.execute(_LOCK_ACCOUNTS, {"codes": list(wanted)})).all()
    return locked_accounts(rows, wanted)


class LockedRow(AccountFacts, Protocol):
    """An account row as read under its lock."""

    @property
    def id(self) -> int: ...
    @property
    def balance(self) -> int: ...
    @property
    def posting_count(self) -> int: ...


def locked_accounts(
    rows: Iterable[LockedRow], wanted: Mapping[str, AccountSpec]
) -> dict[str, LockedAccount]:
    """The accounts of ``rows`` (read under their locks), each checked against its spec."""
    locked: dict[str, LockedAccount] = {}
    for row in rows:
        actual = spec_of(row)
        if actual != wanted[row.code]:
            raise CommodityMismatch(
                f"Account {row.code} is {actual}, not {wanted[row.code]}", account=row.code
            )
        locked[row.code] = LockedAccount(row.id, actual, row.balance, row.posting_count)
    return locked


_LOCK_ACCOUNTS = text(
    "SELECT id, code, commodity, type, contra, no_overdraft, balance, posting_count"
    " FROM account WHERE code = ANY(CAST(:codes AS text[])) ORDER BY id FOR UPDATE"
)
"""One statement locks them all, in ascending id order, so concurrent writers over the same
accounts queue instead of deadlocking."""


_INSERT_POSTINGS = text(
    "INSERT INTO posting (entry_id, posted_at, account_id, commodity, amount, account_seq,"
    " balance_after)"
    " SELECT entry_id, CAST(:posted_at AS timestamptz), account_id, commodity, amount,"
    "        account_seq, balance_after"
    "   FROM unnest(CAST(:entry_id AS bigint[]), CAST(:account_id AS bigint[]),"
    "               CAST(:commodity AS text[]), CAST(:amount AS bigint[]),"
    "               CAST(:account_seq AS bigint[]), CAST(:balance_after AS bigint[]))"
    "        AS p(entry_id, account_id, commodity, amount, account_seq, balance_after)"
)


async def insert_postings(
    session: AsyncSession, posted_at: datetime, rows: list[dict[str, Any]]
) -> None:
    """Write the postings of one or more entries (rows from :meth:`LockedBooks.lay`) in one
    statement: the database checks each entry whole, and moves each balance once."""
    columns = ("entry_id", "account_id", "commodity", "amount", "account_seq", "balance_after")
    params: dict[str, Any] = {column: [row[column] for row in rows] for column in columns}
    params["posted_at"] = posted_at
    await session.execute(_INSERT_POSTINGS, params)


def check_overdraft(entry: Entry, accounts: Mapping[str, LockedAccount]) -> None:
    """Invariant 4 in Python: no no-overdraft account goes below zero."""
    deltas: dict[str, int] = {}
    for posting in entry.postings:
        deltas[posting.account.code] = deltas.get(posting.account.code, 0) + posting.amount
    for code, delta in deltas.items():
        account = accounts[code]
        if not account.spec.no_overdraft:
            continue
        after = (account.balance + delta) * account.spec.normal_sign
        if after < 0:
            error = InsufficientCoins if account.spec.commodity == COIN.code else Overdraft
            raise error(
                f"{code} holds {account.normal_balance}, needs {account.normal_balance - after}",
                account=code,
                held=account.normal_balance,
                needed=account.normal_balance - after,
            )


async def find_entry(session: AsyncSession, event_key: str) -> JournalEntryRow | None:
    row: JournalEntryRow | None = await session.scalar(
        select(JournalEntryRow).where(JournalEntryRow.event_key == event_key)
    )
    return row


def _replay(existing: JournalEntryRow, entry: Entry, print_: str) -> PostedEntry:
    if existing.fingerprint != print_:
        raise IdempotencyKeyReused(
            f"Event {entry.event_key} was already posted with different postings",
            event_key=entry.event_key,
            entry_id=existing.id,
        )
    return PostedEntry(existing.id, existing.event_key, existing.posted_at, replayed=True)


async def post_entry(session: AsyncSession, entry: Entry) -> PostedEntry:
    """Write ``entry`` (already checked when it was built) inside the caller's transaction.

    The same event key with the same postings returns the first entry and writes nothing; with
    different postings it is refused. Accounts are locked in ascending id order, so concurrent
    entries over the same accounts serialise instead of deadlocking.
    """
    print_ = fingerprint(entry)
    existing = await find_entry(session, entry.event_key)
    if existing is not None:
        return _replay(existing, entry, print_)

    books = LockedBooks(await lock_accounts(session, (p.account for p in entry.postings)))
    try:
        rows = books.lay(entry, entry_id=0)
    except Overdraft:
        # A racing request with the same event may have posted it while we waited for the
        # locks: then this is a replay (the first result), not an overdraft.
        existing = await find_entry(session, entry.event_key)
        if existing is not None:
            return _replay(existing, entry, print_)
        raise

    inserted = (
        await session.execute(
            pg_insert(JournalEntryRow)
            .values(
                kind=str(entry.kind),
                event_key=entry.event_key,
                fingerprint=print_,
                posted_at=func.clock_timestamp(),
                actor=entry.actor,
                rates=dict(entry.rates),
                refs=dict(entry.refs),
                memo=entry.memo,
                reverses_entry_id=entry.reverses_entry_id,
            )
            .on_conflict_do_nothing(index_elements=["event_key"])
            .returning(JournalEntryRow.id, JournalEntryRow.posted_at)
        )
    ).first()
    if inserted is None:  # a concurrent request posted the same event first
        existing = await find_entry(session, entry.event_key)
        assert existing is not None
        return _replay(existing, entry, print_)

    entry_id, posted_at = inserted
    await insert_postings(session, posted_at, [{**row, "entry_id": entry_id} for row in rows])
    return PostedEntry(entry_id, entry.event_key, posted_at, replayed=False)


async def entry_postings(session: AsyncSession, entry_id: int) -> list[Posting]:
    rows = (
        await session.execute(
            select(AccountRow, PostingRow.amount)
            .join(PostingRow, PostingRow.account_id == AccountRow.id)
            .where(PostingRow.entry_id == entry_id)
            .order_by(PostingRow.id)
        )
    ).all()
    return [Posting(spec_of(account), amount) for account, amount in rows]


async def reverse_entry(
    session: AsyncSession, entry_id: int, *, actor: str, reason: str
) -> PostedEntry:
    """Post the exact negation of entry ``entry_id``. An entry is reversed at most once."""
    original = await session.get(JournalEntryRow, entry_id)
    if original is None:
        raise EntryNotFound(f"No journal entry {entry_id}", field="entryId", entry_id=entry_id)
    already = await session.scalar(
        select(JournalEntryRow.id).where(JournalEntryRow.reverses_entry_id == entry_id)
    )
    if already is not None:
        raise AlreadyReversed(
            f"Entry {entry_id} was already reversed by entry {already}",
            field="entryId",
            entry_id=entry_id,
            reversal_id=already,
        )
    postings = await entry_postings(session, entry_id)
    reversal = Entry(
        kind=EntryKind.REVERSAL,
        event_key=f"reversal:{entry_id}",
        postings=reversal_postings(postings),
        actor=actor,
        rates=original.rates,
        refs={**original.refs, "reverses": entry_id},
        memo=reason,
        reverses_entry_id=entry_id,
    )
    return await post_entry(session, reversal)


T = TypeVar("T")

RETRYABLE_SQLSTATES = {"40001", "40P01"}
"""Serialization failure and deadlock: the transaction did nothing and may simply run again."""
MAX_TRANSACTION_ATTEMPTS = 4
RETRIES: collections.Counter[str] = collections.Counter()
"""Transactions run again in this process, by SQLSTATE (``40P01`` deadlock, ``40001``
serialization failure); read by the service's metrics."""


def _sqlstate(error: DBAPIError) -> str | None:
    state: str | None = getattr(error.orig, "sqlstate", None)
    return state


async def in_transaction(
    sessions: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """Run ``work`` in one transaction and commit it; run it again after a deadlock or a
    serialization failure (bounded), since those roll back everything the attempt did."""
    for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
        try:
            async with sessions() as session, session.begin():
                return await work(session)
        except DBAPIError as error:
            state = _sqlstate(error)
            if (
                state is None
                or state not in RETRYABLE_SQLSTATES
                or attempt == MAX_TRANSACTION_ATTEMPTS
            ):
                raise
            RETRIES[state] += 1
    raise AssertionError("unreachable")
