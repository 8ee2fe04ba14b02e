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
from typing import Any, Protocol, TypeVar, cast

import structlog
from sqlalchemy import Table, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import locks
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

_log = structlog.get_logger(__name__)


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
    session: AsyncSession, specs: Iterable[AccountSpec], *, open_missing: bool = True
) -> dict[str, LockedAccount]:
    """Lock the accounts in one statement, in ascending id order, opening those that do not
    exist yet (unless not ``open_missing``: then only those that exist are locked and returned).
    A transaction's first lock of accounts names every account it will post to; a later one
    names accounts it holds (read as it left them) or opens new ones; any other existing
    account is refused before it is locked (accounting/ledger/locks.py)."""
    asked = {spec.code: spec for spec in specs}
    wanted, late = locks.to_lock(session, asked)
    if late:
        locks.refuse_late(
            session, asked, bool((await session.scalars(_EXISTING, {"codes": late})).first())
        )
    rows = (await session.execute(_LOCK_ACCOUNTS, {"codes": list(wanted)})).all()
    if len(rows) < len(wanted) and open_missing:
        found = {row.code for row in rows}
        await open_accounts(session, (s for c, s in wanted.items() if c not in found))
        rows = (await session.execute(_LOCK_ACCOUNTS, {"codes": list(wanted)})).all()
    locked = locked_accounts(session, rows, {row.code: wanted[row.code] for row in rows})
    return {code: locked[code] for code in asked if code in locked}


class LockedRow(AccountFacts, Protocol):
    """An account row as read under its lock."""

    @property
    def id(self) -> int: ...
    @property
    def balance(self) -> int: ...
    @property
    def posting_count(self) -> int: ...


def locked_accounts(
    session: AsyncSession, rows: Iterable[LockedRow], wanted: Mapping[str, AccountSpec]
) -> dict[str, LockedAccount]:
    """The accounts of ``rows`` (read under their locks in one statement, in ascending id
    order), each checked against its spec; recorded as the transaction's locked accounts."""
    locks.hold(session, wanted)
    locked: dict[str, LockedAccount] = {}
    for row in rows:
        actual = spec_of(row)
        if actual != wanted[row.code]:
            raise CommodityMismatch(
                f"Account {row.code} is {actual}, not {wanted[row.code]}", account=row.code
            )
        locked[row.code] = LockedAccount(row.id, actual, row.balance, row.posting_count)
    return locked


_EXISTING = text("SELECT code FROM account WHERE code = ANY(CAST(:codes AS text[])) LIMIT 1")
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


_FIND_ENTRY = select(JournalEntryRow).where(JournalEntryRow.event_key == bindparam("event_key"))
_ENTRY_COLUMNS = (
    "kind",
    "event_key",
    "fingerprint",
    "actor",
    "rates",
    "refs",
    "memo",
    "reverses_entry_id",
)
_JOURNAL_ENTRY = cast(Table, JournalEntryRow.__table__)
_INSERT_ENTRY = (
    pg_insert(_JOURNAL_ENTRY)  # the table's: a Core insert, not the ORM's bulk one
    .values(
        {**{name: bindparam(name) for name in _ENTRY_COLUMNS}, "posted_at": func.clock_timestamp()}
    )
    .on_conflict_do_nothing(index_elements=["event_key"])
    .returning(_JOURNAL_ENTRY.c.id, _JOURNAL_ENTRY.c.posted_at)
)
"""An entry's row (unless its event key is taken), built once: only its values change."""


async def find_entry(session: AsyncSession, event_key: str) -> JournalEntryRow | None:
    row: JournalEntryRow | None = await session.scalar(_FIND_ENTRY, {"event_key": event_key})
    return row


def _replay(existing: JournalEntryRow, entry: Entry, print_: str) -> PostedEntry:
    if existing.fingerprint != print_:
        raise IdempotencyKeyReused(
            f"Event {entry.event_key} was already posted with different postings",
            event_key=entry.event_key,
            entry_id=existing.id,
        )
    return PostedEntry(existing.id, existing.event_key, existing.posted_at, replayed=True)


async def post_entry(session: AsyncSession, entry: Entry, *, new: bool = False) -> PostedEntry:
    """Write ``entry`` (already checked when it was built) inside the caller's transaction.

    The same event key with the same postings returns the first entry and writes nothing; with
    different postings it is refused. Accounts are locked in ascending id order, so concurrent
    entries over the same accounts serialise instead of deadlocking. ``new``: the caller holds
    the lock on what the event key stands for and knows it unposted (a pending purchase's row),
    so the key is not looked up first; an entry found there after all is still answered as a
    replay, from the insert's conflict.
    """
    print_ = fingerprint(entry)
    existing = None if new else await find_entry(session, entry.event_key)
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
            _INSERT_ENTRY,
            {
                "kind": str(entry.kind),
                "event_key": entry.event_key,
                "fingerprint": print_,
                "actor": entry.actor,
                "rates": dict(entry.rates),
                "refs": dict(entry.refs),
                "memo": entry.memo,
                "reverses_entry_id": entry.reverses_entry_id,
            },
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
CONNECTION_LOST_SQLSTATES = {"57P01", "57P02", "57P03"}
"""The server ended the connection (an administrator's command, a crash, a restart)."""
MAX_TRANSACTION_ATTEMPTS = 4
MAX_CONNECTION_RETRIES = 1
"""A transaction whose connection was lost runs again once, on a fresh connection."""
CONNECTION_LOST = "connection_lost"
CONNECTION_LOST_AT_COMMIT = "connection_lost_at_commit"
LOCK_ORDER = "lock_order"
RETRIES: collections.Counter[str] = collections.Counter()
"""Transactions run again in this process, by reason: ``40P01`` deadlock, ``40001``
serialization failure, ``connection_lost`` (before the commit was sent),
``connection_lost_at_commit`` (while committing), ``lock_order`` (accounts asked for after the
first lock, accounting/ledger/locks.py); read by the service's metrics."""


def _sqlstate(error: DBAPIError) -> str | None:
    state: str | None = getattr(error.orig, "sqlstate", None)
    return state


def connection_lost(error: DBAPIError) -> bool:
    """Whether ``error`` says the connection to the server is gone."""
    state = _sqlstate(error) or ""
    return error.connection_invalidated or state in CONNECTION_LOST_SQLSTATES or state[:2] == "08"


async def in_transaction(
    sessions: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """Run ``work`` in one transaction and commit it. Run it again (bounded) after a deadlock
    or a serialization failure, since those roll back everything the attempt did; after a
    request for accounts beyond its first lock, with them all locked first; and once after
    the connection was lost, on a fresh one.

    A connection lost before the commit was sent rolled the attempt back. One lost while
    committing leaves it unknown whether the transaction committed: the attempt that follows
    finds out the only sure way, by reading its idempotency key back first thing, as every
    flow's work does (the entry's event key, the gift's or the purchase's key), and answers
    the committed result if it is there, or does the work if it is not."""
    first: tuple[AccountSpec, ...] = ()
    connection_retries = 0
    for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
        committing = False
        try:
            async with sessions() as session:
                locks.lock_first(session, first)
                async with session.begin():
                    result = await work(session)
                    committing = True
                return result
        except locks.AccountLockOrder as late:
            if attempt == MAX_TRANSACTION_ATTEMPTS:
                raise
            first = late.accounts
            _retried(LOCK_ORDER, attempt, str(late))
        except DBAPIError as error:
            if attempt == MAX_TRANSACTION_ATTEMPTS:
                raise
            if connection_lost(error):
                if connection_retries == MAX_CONNECTION_RETRIES:
                    raise
                connection_retries += 1
                _retried(CONNECTION_LOST_AT_COMMIT if committing else CONNECTION_LOST, attempt)
                continue
            state = _sqlstate(error)
            if state is None or state not in RETRYABLE_SQLSTATES:
                raise
            RETRIES[state] += 1
    raise AssertionError("unreachable")


def _retried(reason: str, attempt: int, detail: str = "") -> None:
    RETRIES[reason] += 1
    _log.warning("transaction_retried", reason=reason, attempt=attempt + 1, detail=detail or None)
