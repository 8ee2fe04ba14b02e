"""The invariants of DESIGN.md, enforced by PostgreSQL itself.

Every test here goes around the Python layer: it speaks raw SQL over its own asyncpg connection
and asserts that the database refuses to break an invariant, with which error, and that the
books are exactly as they were afterwards. Deferred checks only run at COMMIT (or at
``SET CONSTRAINTS ALL IMMEDIATE``), so every test of one commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.integrity import CHECKS, IntegrityReport, check_integrity
from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.posting import PostedEntry, in_transaction, post_entry, reverse_entry
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.purchases.tables import PurchaseRow
from api.database import libpq_url

ISSUED = "platform:coins:issued"
SPENT = "platform:coins:spent"
ANA_COINS = "user:ana:coins"
ANA_VALUE = "user:ana:coins_value"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Books:
    """Everything an invariant protects, to compare before and after a refused statement."""

    entries: tuple[tuple[Any, ...], ...]
    postings: tuple[tuple[Any, ...], ...]
    accounts: tuple[tuple[Any, ...], ...]
    purchases: tuple[tuple[Any, ...], ...]


async def read_books(raw: asyncpg.Connection) -> Books:
    async def rows(sql: str) -> tuple[tuple[Any, ...], ...]:
        return tuple(tuple(row) for row in await raw.fetch(sql))

    return Books(
        entries=await rows(
            "SELECT id, kind, event_key, posted_at, memo, reverses_entry_id"
            " FROM journal_entry ORDER BY id"
        ),
        postings=await rows(
            "SELECT id, entry_id, account_id, commodity, amount, account_seq, balance_after"
            " FROM posting ORDER BY id"
        ),
        accounts=await rows(
            "SELECT id, code, commodity, type, contra, no_overdraft, balance, posting_count"
            " FROM account ORDER BY id"
        ),
        purchases=await rows(
            "SELECT id, status, coins, bonus_coins, price_minor, entry_id, failure_code"
            " FROM purchase ORDER BY id"
        ),
    )


async def account_id(raw: asyncpg.Connection, code: str) -> int:
    found: int | None = await raw.fetchval("SELECT id FROM account WHERE code = $1", code)
    assert found is not None, f"no account {code}"
    return found


async def stored_balance(raw: asyncpg.Connection, code: str) -> int:
    balance: int = await raw.fetchval("SELECT balance FROM account WHERE code = $1", code)
    return balance


@dataclass(frozen=True)
class RawEntry:
    id: int
    posted_at: datetime


async def insert_entry(
    raw: asyncpg.Connection,
    event_key: str,
    *,
    kind: str = "transfer",
    reverses_entry_id: int | None = None,
) -> RawEntry:
    row = await raw.fetchrow(
        "INSERT INTO journal_entry (kind, event_key, fingerprint, posted_at, actor,"
        " reverses_entry_id) VALUES ($1, $2, 'raw', clock_timestamp(), 'test:raw-sql', $3)"
        " RETURNING id, posted_at",
        kind,
        event_key,
        reverses_entry_id,
    )
    assert row is not None
    return RawEntry(row["id"], row["posted_at"])


async def insert_postings(
    raw: asyncpg.Connection,
    entry: RawEntry,
    postings: list[tuple[str, int]],
    *,
    commodity: str | None = None,
) -> None:
    """An entry's postings written by hand in one statement, as the ledger writes them: each
    with its account's next sequence number and running balance; ``commodity`` defaults to
    each account's own."""
    await raw.execute(
        "INSERT INTO posting (entry_id, posted_at, account_id, commodity, amount, account_seq,"
        " balance_after)"
        " SELECT $1, $2, a.id, coalesce($5, a.commodity), p.amount,"
        "        a.posting_count + row_number() OVER w, a.balance + sum(p.amount) OVER w"
        "   FROM unnest($3::text[], $4::bigint[]) WITH ORDINALITY AS p(code, amount, ord)"
        "   JOIN account a ON a.code = p.code"
        " WINDOW w AS (PARTITION BY a.id ORDER BY p.ord)",
        entry.id,
        entry.posted_at,
        [code for code, _ in postings],
        [amount for _, amount in postings],
        commodity,
    )


def grant_entry(user_id: str, coins: int, event_key: str) -> Entry:
    return Entry(
        kind=EntryKind.TRANSFER,
        event_key=event_key,
        postings=(
            Posting(chart.coins_issued(), coins),
            Posting(chart.user_coins(user_id), -coins),
        ),
        actor="test:grant",
    )


async def grant_coins(
    sessions: async_sessionmaker[AsyncSession], user_id: str, coins: int, event_key: str
) -> PostedEntry:
    entry = grant_entry(user_id, coins, event_key)
    return await in_transaction(sessions, lambda session: post_entry(session, entry))


async def integrity(sessions: async_sessionmaker[AsyncSession]) -> IntegrityReport:
    async with sessions() as session, session.begin():
        return await check_integrity(session)


def request(key: str, token: str = "tok_success", **overrides: Any) -> PurchaseRequest:
    fields: dict[str, Any] = {
        "user_id": "ana",
        "idempotency_key": key,
        "currency": "USD",
        "channel": "web",
        "provider": "card",
        "payment_token": token,
        "package_code": "coins_350",
    }
    fields.update(overrides)
    return PurchaseRequest(**fields)


@pytest.fixture
async def raw(db_url: URL) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own that knows nothing of the Python ledger."""
    connection = await asyncpg.connect(libpq_url(db_url))
    try:
        yield connection
    finally:
        await connection.close()


# ---------------------------------------------------------------------------------------------
# Invariant 1: every entry balances per commodity and has at least two postings
# ---------------------------------------------------------------------------------------------

UNBALANCED: dict[str, tuple[list[tuple[str, int]], str]] = {
    "coins_off_by_one": (
        [(ISSUED, 10), (SPENT, -9)],
        r"journal entry \d+ does not balance: COIN postings sum to 1$",
    ),
    "dollars_off_while_coins_balance": (
        [(ISSUED, 10), (SPENT, -10), ("platform:bank:USD", 5_000_000), ("platform:fx:USD", -4)],
        r"journal entry \d+ does not balance: USD postings sum to 4999996$",
    ),
    "coins_paid_with_dollars": (
        # the amounts sum to zero overall, but not per commodity
        [(ISSUED, 1_000), ("platform:bank:USD", -1_000)],
        r"journal entry \d+ does not balance: "
        r"(COIN postings sum to 1000|USD postings sum to -1000)$",
    ),
}


@pytest.mark.parametrize("case", list(UNBALANCED))
async def test_unbalanced_entry_is_refused_by_the_statement_that_writes_it(
    raw: asyncpg.Connection, case: str
) -> None:
    postings, message = UNBALANCED[case]
    before = await read_books(raw)
    with pytest.raises(asyncpg.CheckViolationError, match=message):
        async with raw.transaction():
            entry = await insert_entry(raw, f"raw:{case}")
            await insert_postings(raw, entry, postings)
    assert await read_books(raw) == before


@pytest.mark.parametrize("early_check", [False, True], ids=["deferred", "set_immediate_first"])
async def test_postings_cannot_be_added_to_an_entry_that_has_them(
    raw: asyncpg.Connection, early_check: bool
) -> None:
    """An entry's postings arrive in one statement. A later statement cannot extend it, not
    even with a balanced pair, and not after the deferred checks ran early (SET CONSTRAINTS
    ALL IMMEDIATE): an entry that balanced once cannot be unbalanced afterwards."""
    before = await read_books(raw)
    with pytest.raises(
        asyncpg.CheckViolationError,
        match=r"journal entry \d+ already has postings; an entry's postings are written by one"
        r" statement$",
    ):
        async with raw.transaction():
            entry = await insert_entry(raw, "raw:late-posting")
            await insert_postings(raw, entry, [(ISSUED, 10), (SPENT, -10)])
            if early_check:
                await raw.execute("SET CONSTRAINTS ALL IMMEDIATE")  # balanced: passes
                await raw.execute("SET CONSTRAINTS ALL DEFERRED")
            await insert_postings(raw, entry, [(ISSUED, 7), (SPENT, -7)])
    assert await read_books(raw) == before


FORGED: dict[str, str] = {
    "sequence_skipped": "a.posting_count + 2, a.balance + $3",
    "sequence_reused": "a.posting_count, a.balance + $3",
    "running_balance": "a.posting_count + 1, a.balance + $3 + 1",
}


@pytest.mark.parametrize("case", list(FORGED))
async def test_postings_must_carry_their_accounts_sequence_and_running_balance(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession], case: str
) -> None:
    """The sequence number and running balance a posting carries are checked against the
    account it lands on, so an account's history always reads 1, 2, 3... with true balances."""
    await grant_coins(sessions, "ana", 10, "grant:ana")
    before = await read_books(raw)
    with pytest.raises((asyncpg.CheckViolationError, asyncpg.UniqueViolationError)):
        async with raw.transaction():
            entry = await insert_entry(raw, "raw:forged")
            await raw.execute(
                "INSERT INTO posting (entry_id, posted_at, account_id, commodity, amount,"
                " account_seq, balance_after)"
                " SELECT $1::bigint, $2::timestamptz, a.id, a.commodity, $3::bigint,"
                f"        {FORGED[case]}"
                "   FROM account a WHERE a.code = $4"
                " UNION ALL"
                " SELECT $1, $2, a.id, a.commodity, -$3, a.posting_count + 1, a.balance - $3"
                "   FROM account a WHERE a.code = $5",
                entry.id,
                entry.posted_at,
                4,
                ANA_COINS,
                SPENT,
            )
    assert await read_books(raw) == before


async def test_no_overdraft_holds_inside_a_statement_too(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana holds 10 coins. One statement that spends 15 and then gets 15 back ends where it
    began, but went below zero on the way: refused, since the history would show it."""
    await grant_coins(sessions, "ana", 10, "grant:ana")
    before = await read_books(raw)
    with pytest.raises(
        asyncpg.CheckViolationError, match=rf"would take {ANA_COINS} to -5; it may not be overdrawn"
    ):
        async with raw.transaction():
            first = await insert_entry(raw, "raw:dip:1")
            second = await insert_entry(raw, "raw:dip:2")
            await raw.execute(
                "INSERT INTO posting (entry_id, posted_at, account_id, commodity, amount,"
                " account_seq, balance_after)"
                " SELECT e.entry_id, je.posted_at, a.id, a.commodity, e.amount,"
                "        a.posting_count + row_number() OVER w, a.balance + sum(e.amount) OVER w"
                "   FROM (VALUES (1, $1::bigint, $3::text, 15::bigint),"
                "                (2, $1, $4, -15), (3, $2, $3, -15), (4, $2, $4, 15))"
                "        AS e(ord, entry_id, code, amount)"
                "   JOIN account a ON a.code = e.code"
                "   JOIN journal_entry je ON je.id = e.entry_id"
                " WINDOW w AS (PARTITION BY a.id ORDER BY e.ord)",
                first.id,
                second.id,
                ANA_COINS,
                SPENT,
            )
    assert await read_books(raw) == before


@pytest.mark.parametrize("postings", [[], [(ISSUED, 10)]], ids=["no_posting", "one_posting"])
async def test_entry_with_fewer_than_two_postings_is_refused(
    raw: asyncpg.Connection, postings: list[tuple[str, int]]
) -> None:
    before = await read_books(raw)
    with pytest.raises(
        asyncpg.CheckViolationError,
        match=rf"has {len(postings)} posting\(s\); an entry has at least two$",
    ):
        async with raw.transaction():
            entry = await insert_entry(raw, "raw:lonely")
            if postings:
                await insert_postings(raw, entry, postings)
    assert await read_books(raw) == before


async def test_balanced_raw_entry_is_accepted(raw: asyncpg.Connection) -> None:
    """The control for the refusals above: a balanced entry written by hand commits, and the
    posting trigger keeps balances and accepts true sequence numbers and running balances."""
    async with raw.transaction():
        entry = await insert_entry(raw, "raw:balanced")
        await insert_postings(raw, entry, [(ISSUED, 40), (SPENT, -40)])
    rows = await raw.fetch(
        "SELECT a.code, p.amount, p.account_seq, p.balance_after FROM posting p"
        " JOIN account a ON a.id = p.account_id WHERE p.entry_id = $1 ORDER BY p.id",
        entry.id,
    )
    assert [tuple(row) for row in rows] == [(ISSUED, 40, 1, 40), (SPENT, -40, 1, -40)]
    assert await stored_balance(raw, ISSUED) == 40
    assert await stored_balance(raw, SPENT) == -40


# ---------------------------------------------------------------------------------------------
# Invariant 2: a posting's commodity is its account's commodity
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "claimed"),
    [(ISSUED, "USD"), ("platform:bank:USD", "COIN"), (ANA_VALUE, "EUR")],
)
async def test_posting_commodity_must_be_its_accounts(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession], code: str, claimed: str
) -> None:
    # open ana's accounts through the ledger, so that user:ana:coins_value exists
    await grant_coins(sessions, "ana", 5, "grant:ana")
    async with raw.transaction():
        await raw.execute(
            "INSERT INTO account (code, commodity, type, no_overdraft, normal_sign)"
            " VALUES ($1, 'USD', 'liability', true, -1) ON CONFLICT (code) DO NOTHING",
            ANA_VALUE,
        )
    before = await read_books(raw)
    with pytest.raises(
        asyncpg.ForeignKeyViolationError,
        match=rf"posting to account \d+ in {claimed}: there is no such account in that commodity",
    ):
        async with raw.transaction():
            entry = await insert_entry(raw, "raw:wrong-commodity")
            await insert_postings(raw, entry, [(code, -100), (code, 100)], commodity=claimed)
    assert await read_books(raw) == before


async def test_posting_must_name_an_existing_entry_with_its_date(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await grant_coins(sessions, "ana", 5, "grant:ana")
    before = await read_books(raw)
    async with raw.transaction():
        real = await insert_entry(raw, "raw:real")
        await insert_postings(raw, real, [(ISSUED, 1), (SPENT, -1)])
    for entry in (RawEntry(real.id + 1000, real.posted_at), RawEntry(real.id, datetime.now(UTC))):
        with pytest.raises(
            asyncpg.ForeignKeyViolationError,
            match=rf"posting to journal entry {entry.id} dated .*: no such entry$",
        ):
            async with raw.transaction():
                await insert_postings(raw, entry, [(ISSUED, 1), (SPENT, -1)])
    assert len((await read_books(raw)).postings) == len(before.postings) + 2


@pytest.mark.parametrize("statement", ["DELETE FROM account", "TRUNCATE account CASCADE"])
async def test_accounts_are_never_deleted(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession], statement: str
) -> None:
    await grant_coins(sessions, "ana", 5, "grant:ana")
    before = await read_books(raw)
    with pytest.raises(asyncpg.RestrictViolationError, match="is append-only"):
        async with raw.transaction():
            await raw.execute(statement)
    assert await read_books(raw) == before


# ---------------------------------------------------------------------------------------------
# Invariant 3: entries and postings are append-only; reversals negate, at most once
# ---------------------------------------------------------------------------------------------

APPEND_ONLY: dict[str, tuple[str, str]] = {
    "update_posting_amount": (
        "UPDATE posting SET amount = amount + 1",
        "posting is append-only: UPDATE refused",
    ),
    "move_posting_to_other_account": (
        f"UPDATE posting SET account_id = (SELECT id FROM account WHERE code = '{SPENT}')",
        "posting is append-only: UPDATE refused",
    ),
    "delete_posting": ("DELETE FROM posting", "posting is append-only: DELETE refused"),
    "truncate_posting": ("TRUNCATE posting", "posting is append-only: TRUNCATE refused"),
    "update_entry_memo": (
        "UPDATE journal_entry SET memo = 'edited'",
        "journal_entry is append-only: UPDATE refused",
    ),
    "backdate_entry": (
        "UPDATE journal_entry SET posted_at = posted_at - interval '1 day'",
        "journal_entry is append-only: UPDATE refused",
    ),
    "delete_entry": ("DELETE FROM journal_entry", "journal_entry is append-only: DELETE refused"),
    "truncate_entry_cascade": (
        "TRUNCATE journal_entry CASCADE",
        "is append-only: TRUNCATE refused",
    ),
    "truncate_all_together": (
        # every table that references journal_entry, so no foreign key refuses it first
        "TRUNCATE posting, journal_entry, purchase, gift, feature_unlock, payout_event, refund,"
        " chargeback, chargeback_clawback, chargeback_trace, provider_event",
        "is append-only: TRUNCATE refused",
    ),
}


@pytest.mark.parametrize("case", list(APPEND_ONLY))
async def test_entries_and_postings_are_append_only(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession], case: str
) -> None:
    statement, message = APPEND_ONLY[case]
    await grant_coins(sessions, "ana", 100, "grant:ana")
    await grant_coins(sessions, "bo", 30, "grant:bo")
    before = await read_books(raw)
    assert len(before.postings) == 4
    with pytest.raises(asyncpg.RestrictViolationError, match=message):
        async with raw.transaction():
            await raw.execute(statement)
    assert await read_books(raw) == before


async def test_posting_cannot_join_an_entry_committed_earlier(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    committed = await grant_coins(sessions, "ana", 100, "grant:ana")
    before = await read_books(raw)
    earlier = RawEntry(committed.id, committed.posted_at)
    with pytest.raises(
        asyncpg.RestrictViolationError,
        match=(
            "postings can only be added to a journal entry in the transaction that creates it"
            rf" \(entry {committed.id}\)"
        ),
    ):
        async with raw.transaction():
            # a balanced pair, so only the append-only rule can refuse it
            await insert_postings(raw, earlier, [(ISSUED, 50), (ANA_COINS, -50)])
    assert await read_books(raw) == before
    assert await stored_balance(raw, ANA_COINS) == -100


async def test_reversal_that_is_not_the_exact_negation_is_refused(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    original = await grant_coins(sessions, "ana", 10, "grant:ana")
    wrong_reversals: list[list[tuple[str, int]]] = [
        [(ISSUED, -9), (ANA_COINS, 9)],  # the wrong amount
        [(ISSUED, -10), (SPENT, 10)],  # the wrong account
        [(ISSUED, -10), (ANA_COINS, 10), (ISSUED, 1), (SPENT, -1)],  # an extra pair
        [(ISSUED, -5), (ISSUED, -5), (ANA_COINS, 10)],  # split postings
    ]
    before = await read_books(raw)
    for number, postings in enumerate(wrong_reversals):
        with pytest.raises(
            asyncpg.CheckViolationError,
            match=rf"journal entry \d+ does not exactly reverse entry {original.id}$",
        ):
            async with raw.transaction():
                reversal = await insert_entry(
                    raw, f"raw:reversal:{number}", kind="reversal", reverses_entry_id=original.id
                )
                await insert_postings(raw, reversal, postings)
        assert await read_books(raw) == before

    # The exact negation, written by hand, is accepted.
    async with raw.transaction():
        reversal = await insert_entry(
            raw, "raw:reversal:exact", kind="reversal", reverses_entry_id=original.id
        )
        await insert_postings(raw, reversal, [(ANA_COINS, 10), (ISSUED, -10)])
    assert await stored_balance(raw, ANA_COINS) == 0


async def test_entry_is_reversed_at_most_once(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    original = await grant_coins(sessions, "ana", 10, "grant:ana")
    reversal = await in_transaction(
        sessions,
        lambda session: reverse_entry(session, original.id, actor="test", reason="mistake"),
    )
    before = await read_books(raw)
    with pytest.raises(asyncpg.UniqueViolationError) as refused:
        async with raw.transaction():
            again = await insert_entry(
                raw, "raw:reversal:again", kind="reversal", reverses_entry_id=original.id
            )
            await insert_postings(raw, again, [(ANA_COINS, 10), (ISSUED, -10)])
    assert refused.value.constraint_name == "uq_journal_entry_reverses_entry_id"
    assert await read_books(raw) == before
    reversals = await raw.fetch(
        "SELECT id FROM journal_entry WHERE reverses_entry_id = $1", original.id
    )
    assert [row["id"] for row in reversals] == [reversal.id]


async def test_reversal_kind_needs_the_entry_it_reverses(raw: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        async with raw.transaction():
            await insert_entry(raw, "raw:orphan-reversal", kind="reversal")
    assert refused.value.constraint_name == "ck_journal_entry_reversal"


# ---------------------------------------------------------------------------------------------
# Invariant 4: a no-overdraft account never goes below zero
# ---------------------------------------------------------------------------------------------


async def test_user_coin_wallet_cannot_be_overdrawn_by_raw_postings(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana holds 10 coins. Spending 6 by hand is fine; spending 6 more is refused at once,
    by the CHECK on the account row, however the postings were written."""
    await grant_coins(sessions, "ana", 10, "grant:ana")
    async with raw.transaction():
        first = await insert_entry(raw, "raw:spend:1")
        await insert_postings(raw, first, [(ANA_COINS, 6), (SPENT, -6)])
    assert await stored_balance(raw, ANA_COINS) == -4

    before = await read_books(raw)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        async with raw.transaction():
            second = await insert_entry(raw, "raw:spend:2")
            await insert_postings(raw, second, [(ANA_COINS, 6), (SPENT, -6)])
    assert refused.value.constraint_name == "ck_account_no_overdraft"
    assert await read_books(raw) == before
    assert await stored_balance(raw, ANA_COINS) == -4


async def test_never_funded_wallet_cannot_go_negative(raw: asyncpg.Connection) -> None:
    async with raw.transaction():
        await raw.execute(
            "INSERT INTO account (code, commodity, type, no_overdraft, normal_sign)"
            " VALUES ('user:bo:coins', 'COIN', 'liability', true, -1)"
        )
    before = await read_books(raw)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        async with raw.transaction():
            entry = await insert_entry(raw, "raw:spend-nothing")
            await insert_postings(raw, entry, [(SPENT, -1), ("user:bo:coins", 1)])
    assert refused.value.constraint_name == "ck_account_no_overdraft"
    assert await read_books(raw) == before


# ---------------------------------------------------------------------------------------------
# Invariant 5: a stored balance is the sum of the account's postings; accounts never change
# ---------------------------------------------------------------------------------------------

BALANCE_EDITS: dict[str, str] = {
    "balance": f"UPDATE account SET balance = balance - 1000 WHERE code = '{ANA_COINS}'",
    "balance_to_zero": f"UPDATE account SET balance = 0 WHERE code = '{ANA_COINS}'",
    "posting_count": f"UPDATE account SET posting_count = 0 WHERE code = '{ANA_COINS}'",
    "every_balance": "UPDATE account SET balance = 0",
}


@pytest.mark.parametrize("case", list(BALANCE_EDITS))
async def test_stored_balance_changes_only_through_postings(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession], case: str
) -> None:
    await grant_coins(sessions, "ana", 100, "grant:ana")
    before = await read_books(raw)
    with pytest.raises(
        asyncpg.RestrictViolationError, match=r"account \S+ balance changes only through postings"
    ):
        async with raw.transaction():
            await raw.execute(BALANCE_EDITS[case])
    assert await read_books(raw) == before


@pytest.mark.parametrize(
    ("balance", "posting_count"), [(-500, 0), (0, 3), (-500, 1)], ids=["balance", "count", "both"]
)
async def test_account_cannot_open_with_a_balance_it_has_no_postings_for(
    raw: asyncpg.Connection, balance: int, posting_count: int
) -> None:
    before = await read_books(raw)
    with pytest.raises(
        asyncpg.RestrictViolationError,
        match="account user:zed:coins opens with a zero balance",
    ):
        async with raw.transaction():
            await raw.execute(
                "INSERT INTO account (code, commodity, type, no_overdraft, normal_sign, balance,"
                " posting_count) VALUES ('user:zed:coins', 'COIN', 'liability', true, -1, $1, $2)",
                balance,
                posting_count,
            )
    assert await read_books(raw) == before


REDEFINITIONS: dict[str, str] = {
    "commodity": "commodity = 'DIAMOND'",
    "type": "type = 'asset', normal_sign = 1",
    "overdraft_allowed": "no_overdraft = false",
    "contra": "contra = true, normal_sign = 1",
    "code": "code = 'user:bo:coins'",
    "opened_at": "opened_at = opened_at - interval '1 year'",
}


@pytest.mark.parametrize("case", list(REDEFINITIONS))
async def test_account_cannot_be_redefined(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession], case: str
) -> None:
    await grant_coins(sessions, "ana", 100, "grant:ana")
    before = await read_books(raw)
    with pytest.raises(
        asyncpg.RestrictViolationError, match=f"account {ANA_COINS} cannot be redefined"
    ):
        async with raw.transaction():
            await raw.execute(
                f"UPDATE account SET {REDEFINITIONS[case]} WHERE code = '{ANA_COINS}'"
            )
    assert await read_books(raw) == before


# ---------------------------------------------------------------------------------------------
# Purchases: resolved at most once, never edited after, never deleted
# ---------------------------------------------------------------------------------------------

FROZEN_PURCHASE_EDITS: dict[str, str] = {
    "status_back_to_pending": "status = 'pending', entry_id = NULL, settled_at = NULL",
    "failed_after_completed": "status = 'failed', entry_id = NULL",
    "more_coins": "coins = coins * 2",
    "other_user": "user_id = 'bo'",
    "cheaper": "price_minor = 1",
    "failure_code": "failure_code = 'edited'",
}


@pytest.mark.parametrize("token", ["tok_success", "tok_declined"])
@pytest.mark.parametrize("case", list(FROZEN_PURCHASE_EDITS))
async def test_resolved_purchase_cannot_change(
    raw: asyncpg.Connection, purchases: PurchaseService, token: str, case: str
) -> None:
    result = await purchases.purchase_coins(request("key-frozen-0001", token))
    status = "completed" if token == "tok_success" else "failed"
    assert result.purchase.status == status
    before = await read_books(raw)
    with pytest.raises(
        asyncpg.RestrictViolationError, match=f"purchase {result.purchase.id} is already {status}"
    ):
        async with raw.transaction():
            await raw.execute(
                f"UPDATE purchase SET {FROZEN_PURCHASE_EDITS[case]} WHERE id = $1",
                result.purchase.id,
            )
    assert await read_books(raw) == before


@pytest.mark.parametrize("token", ["tok_success", "tok_declined", "tok_timeout"])
@pytest.mark.parametrize(
    "statement", ["DELETE FROM purchase", "TRUNCATE purchase", "TRUNCATE purchase CASCADE"]
)
async def test_purchase_is_never_deleted(
    raw: asyncpg.Connection, purchases: PurchaseService, token: str, statement: str
) -> None:
    await purchases.purchase_coins(request("key-deleted-001", token))
    before = await read_books(raw)
    assert len(before.purchases) == 1
    with pytest.raises(asyncpg.RestrictViolationError, match="purchases are never deleted"):
        async with raw.transaction():
            await raw.execute(statement)
    assert await read_books(raw) == before


async def test_pending_purchase_cannot_change_what_was_bought(
    raw: asyncpg.Connection, purchases: PurchaseService
) -> None:
    pending = (await purchases.purchase_coins(request("key-pending-001", "tok_timeout"))).purchase
    assert pending.status == "pending"
    before = await read_books(raw)
    for edit in ("coins = 1000000", "price_minor = 1", "currency = 'EUR'", "user_id = 'bo'"):
        with pytest.raises(
            asyncpg.RestrictViolationError, match=f"what purchase {pending.id} bought cannot change"
        ):
            async with raw.transaction():
                await raw.execute(f"UPDATE purchase SET {edit} WHERE id = $1", pending.id)
    assert await read_books(raw) == before
    # ...and it still settles, once, through the ledger
    settled = await purchases.settle(pending.id)
    assert settled.status == "completed"
    assert await stored_balance(raw, ANA_COINS) == -350


# ---------------------------------------------------------------------------------------------
# Invariant 7: an unacknowledged transaction is wholly absent
# ---------------------------------------------------------------------------------------------


async def test_transaction_killed_before_commit_leaves_nothing_behind(
    raw: asyncpg.Connection, db_url: URL, sessions: async_sessionmaker[AsyncSession]
) -> None:
    acknowledged = await grant_coins(sessions, "ana", 10, "grant:ana")
    before = await read_books(raw)

    victim = await asyncpg.connect(libpq_url(db_url))
    victim_pid = victim.get_server_pid()
    transaction = victim.transaction()
    await transaction.start()
    entry = await insert_entry(victim, "raw:killed")
    await insert_postings(victim, entry, [(ANA_COINS, 4), (SPENT, -4)])
    # inside its transaction the entry is there, and ana's wallet row is locked by it
    assert await victim.fetchval("SELECT balance FROM account WHERE code = $1", ANA_COINS) == -6

    assert await raw.fetchval("SELECT pg_terminate_backend($1)", victim_pid) is True
    for _ in range(100):  # wait until the server has finished with the killed backend
        gone = await raw.fetchval(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", victim_pid
        )
        if gone:
            break
        await asyncio.sleep(0.05)
    assert gone
    with pytest.raises(
        (
            asyncpg.ConnectionDoesNotExistError,
            asyncpg.AdminShutdownError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,  # the client may still be reading the server's FATAL
        )
    ):
        await transaction.commit()
    victim.terminate()

    assert await read_books(raw) == before
    killed = "SELECT count(*) FROM journal_entry WHERE event_key = 'raw:killed'"
    assert await raw.fetchval(killed) == 0
    # the acknowledged entry survived, whole
    survivors = await raw.fetch(
        "SELECT amount FROM posting WHERE entry_id = $1 ORDER BY amount", acknowledged.id
    )
    assert [row["amount"] for row in survivors] == [-10, 10]
    # and the killed transaction's locks are gone: ana can spend all 10 coins now
    spend = Entry(
        kind=EntryKind.TRANSFER,
        event_key="spend:ana:all",
        postings=(Posting(chart.user_coins("ana"), 10), Posting(chart.coins_spent(), -10)),
        actor="test",
    )
    await asyncio.wait_for(in_transaction(sessions, lambda s: post_entry(s, spend)), timeout=5)
    assert await stored_balance(raw, ANA_COINS) == 0


# ---------------------------------------------------------------------------------------------
# The integrity check: clean on real books, and it sees what only a superuser could do
# ---------------------------------------------------------------------------------------------


async def buy_a_bit_of_everything(purchases: PurchaseService) -> list[PurchaseRow]:
    """Purchases in four currencies through five providers, one declined, one timed out and
    settled later, one custom amount."""
    requests = [
        request("key-mix-00001"),
        request("key-mix-00002", currency="EUR", provider="paypal", package_code="coins_500"),
        request(
            "key-mix-00003",
            currency="JPY",
            channel="ios",
            provider="apple",
            package_code="coins_700",
        ),
        request(
            "key-mix-00004",
            currency="BRL",
            channel="android",
            provider="google",
            package_code="coins_70",
        ),
        request("key-mix-00005", provider="mobile_wallet", package_code=None, custom_coins=1234),
        request("key-mix-00006", "tok_declined"),
        request("key-mix-00007", "tok_timeout", user_id="bo", package_code="coins_17500"),
    ]
    rows = [(await purchases.purchase_coins(r)).purchase for r in requests]
    rows[-1] = await purchases.settle(rows[-1].id)
    return rows


async def test_integrity_check_is_clean_on_real_books(
    purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    rows = await buy_a_bit_of_everything(purchases)
    assert [row.status for row in rows] == ["completed"] * 5 + ["failed", "completed"]
    spend = Entry(
        kind=EntryKind.TRANSFER,
        event_key="spend:ana:1",
        postings=(Posting(chart.user_coins("ana"), 300), Posting(chart.coins_spent(), -300)),
        actor="test",
    )
    spent = await in_transaction(sessions, lambda s: post_entry(s, spend))
    await in_transaction(sessions, lambda s: reverse_entry(s, spent.id, actor="test", reason="x"))

    report = await integrity(sessions)
    assert report.violations == []
    assert report.ok
    assert report.entries == 8  # six purchases, a spend, its reversal
    assert report.checks == [name for _, name, _ in CHECKS]
    assert len(report.checks) == 56  # 48, breakage's two, the close's three, receivables' three


async def corrupt(raw: asyncpg.Connection, table: str, statement: str, *args: Any) -> None:
    """What only a table owner can do: switch the invariant triggers off, edit, switch back."""
    await raw.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    try:
        await raw.execute(statement, *args)
    finally:
        await raw.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def found(report: IntegrityReport) -> dict[str, list[str]]:
    checks: dict[str, list[str]] = {}
    for violation in report.violations:
        checks.setdefault(violation.check, []).append(violation.detail)
    return checks


async def test_integrity_check_finds_an_edited_posting(
    raw: asyncpg.Connection, purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bought = (await purchases.purchase_coins(request("key-edited-001"))).purchase
    assert (await integrity(sessions)).ok
    posting_id = await raw.fetchval(
        "SELECT p.id FROM posting p JOIN account a ON a.id = p.account_id"
        " WHERE p.entry_id = $1 AND a.code = $2",
        bought.entry_id,
        ANA_COINS,
    )
    await corrupt(
        raw, "posting", "UPDATE posting SET amount = amount - 1 WHERE id = $1", posting_id
    )
    # the triggers are back on
    with pytest.raises(asyncpg.RestrictViolationError):
        await raw.execute("UPDATE posting SET amount = amount + 1 WHERE id = $1", posting_id)

    report = await integrity(sessions)
    assert not report.ok
    assert found(report) == {
        "entry_balances_per_commodity": [f"entry {bought.entry_id}: COIN postings sum to -1"],
        "trial_balance_per_commodity": ["all COIN postings sum to -1"],
        "stored_balance_is_sum_of_postings": [
            f"{ANA_COINS} stores -350 over 1 postings; its postings sum to -351 over 1"
        ],
        "running_balance_is_sum_so_far": [
            f"posting {posting_id} on account {await account_id(raw, ANA_COINS)}:"
            " running balance -350, postings so far sum to -351, sequence 1 of 1"
        ],
        "purchase_granted_what_was_bought": [
            f"purchase {bought.id} bought 350 coins, its entry granted 351"
        ],
    }
    assert {v.invariant for v in report.violations} == {1, 5, 6}


async def test_integrity_check_finds_an_edited_balance(
    raw: asyncpg.Connection, purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await purchases.purchase_coins(request("key-edited-002"))
    await corrupt(
        raw, "account", "UPDATE account SET balance = balance + 1 WHERE code = $1", ANA_COINS
    )
    report = await integrity(sessions)
    assert found(report) == {
        "stored_balance_is_sum_of_postings": [
            f"{ANA_COINS} stores -349 over 1 postings; its postings sum to -350 over 1"
        ]
    }
    assert [v.invariant for v in report.violations] == [5]


async def test_integrity_check_finds_an_overdrawn_wallet_and_a_forged_purchase(
    raw: asyncpg.Connection, purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bought = (await purchases.purchase_coins(request("key-edited-003"))).purchase
    spend_id = await raw.fetchval(
        "SELECT p.id FROM posting p JOIN account a ON a.id = p.account_id"
        " WHERE p.entry_id = $1 AND a.code = $2",
        bought.entry_id,
        ANA_COINS,
    )
    await corrupt(raw, "posting", "UPDATE posting SET amount = 50 WHERE id = $1", spend_id)
    await corrupt(raw, "purchase", "UPDATE purchase SET coins = 7 WHERE id = $1", bought.id)
    checks = found(await integrity(sessions))
    assert checks["no_overdraft_now"] == [f"{ANA_COINS} holds -50"]
    assert checks["no_overdraft_ever"] == [f"{ANA_COINS} went to -50 at posting {spend_id}"]
    assert checks["purchase_granted_what_was_bought"] == [
        f"purchase {bought.id} bought 7 coins, its entry granted -50"
    ]


async def test_one_payment_names_one_purchase(
    raw: asyncpg.Connection, purchases: PurchaseService
) -> None:
    """A provider's reference for a payment grants once: no second purchase may carry it, under
    any buyer or key (the index of migration 0018), so a charge or an App Store transaction
    presented again can never be booked twice, even by a path that forgot to look first."""
    paid = (await purchases.purchase_coins(request("key-reference-01"))).purchase
    pending = (await purchases.purchase_coins(request("key-reference-02", "tok_timeout"))).purchase
    assert paid.provider_reference is not None and pending.provider_reference is None
    before = await read_books(raw)
    with pytest.raises(asyncpg.UniqueViolationError, match="ux_purchase_provider_reference"):
        async with raw.transaction():
            await raw.execute(
                "UPDATE purchase SET provider_reference = $1 WHERE id = $2",
                paid.provider_reference,
                pending.id,
            )
    assert await read_books(raw) == before
