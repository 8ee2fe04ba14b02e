"""The ledger core in Python: posting entries, refusing bad ones before any SQL, idempotency
under an event key, reversals, balances and the trial balance at past instants, and the
wallet history read page by page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from accounting.ledger import chart
from accounting.ledger.balances import account_balance, wallet
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.errors import (
    AlreadyReversed,
    EntryNotFound,
    IdempotencyKeyReused,
    InsufficientCoins,
    InvalidEntry,
    Overdraft,
    UnbalancedEntry,
)
from accounting.ledger.pages import MAX_PAGE
from accounting.ledger.posting import (
    PostedEntry,
    fingerprint,
    in_transaction,
    post_entry,
    reverse_entry,
)
from accounting.ledger.tables import AccountRow, JournalEntryRow, PostingRow
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.reads.history import HistoryCursor, WalletMovement, wallet_history
from accounting.reads.reports import trial_balance

ISSUED = chart.coins_issued()
SPENT = chart.coins_spent()


def coins_of(user_id: str) -> chart.AccountSpec:
    return chart.user_coins(user_id)


def grant(user_id: str, coins: int, event_key: str) -> Entry:
    """Coins issued to a user's wallet (as a purchase would, without the money side)."""
    return Entry(
        kind=EntryKind.TRANSFER,
        event_key=event_key,
        postings=(Posting(ISSUED, coins), Posting(coins_of(user_id), -coins)),
        actor="test:grant",
    )


def spend(user_id: str, coins: int, event_key: str) -> Entry:
    """Coins leave a user's wallet for ``coins:spent``."""
    return Entry(
        kind=EntryKind.TRANSFER,
        event_key=event_key,
        postings=(Posting(coins_of(user_id), coins), Posting(SPENT, -coins)),
        actor="test:spend",
    )


async def post(sessions: async_sessionmaker[AsyncSession], entry: Entry) -> PostedEntry:
    return await in_transaction(sessions, lambda session: post_entry(session, entry))


async def reverse(sessions: async_sessionmaker[AsyncSession], entry_id: int) -> PostedEntry:
    return await in_transaction(
        sessions,
        lambda session: reverse_entry(session, entry_id, actor="test:finance", reason="mistake"),
    )


async def balance_of(
    sessions: async_sessionmaker[AsyncSession], code: str, as_of: datetime | None = None
) -> int:
    async with sessions() as session:
        found = await account_balance(session, code, as_of)
    return found.balance if found else 0


async def count_rows(sessions: async_sessionmaker[AsyncSession], table: Any) -> int:
    async with sessions() as session:
        counted: int = await session.scalar(select(func.count()).select_from(table)) or 0
    return counted


@contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the block runs."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


# ---------------------------------------------------------------------------------------------
# Posting
# ---------------------------------------------------------------------------------------------


async def test_post_entry_writes_a_balanced_entry_and_keeps_balances(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ana is granted 100 coins and spends 30: her wallet holds 70, the issued and spent
    offsets hold 100 and 30, each posting carries its running balance."""
    granted = await post(sessions, grant("ana", 100, "grant:ana:1"))
    spent = await post(sessions, spend("ana", 30, "spend:ana:1"))
    assert not granted.replayed and not spent.replayed
    assert spent.id > granted.id
    assert spent.posted_at >= granted.posted_at

    assert await balance_of(sessions, "user:ana:coins") == 70
    assert await balance_of(sessions, ISSUED.code) == 100
    assert await balance_of(sessions, SPENT.code) == -30  # contra equity: credits read negative

    async with sessions() as session:
        rows = (
            await session.execute(
                select(
                    PostingRow.entry_id,
                    AccountRow.code,
                    PostingRow.amount,
                    PostingRow.account_seq,
                    PostingRow.balance_after,
                )
                .join(AccountRow, AccountRow.id == PostingRow.account_id)
                .order_by(PostingRow.id)
            )
        ).all()
        stored = await session.get(JournalEntryRow, spent.id)
        ana = await session.scalar(select(AccountRow).where(AccountRow.code == "user:ana:coins"))
    assert [tuple(row) for row in rows] == [
        (granted.id, ISSUED.code, 100, 1, 100),
        (granted.id, "user:ana:coins", -100, 1, -100),
        (spent.id, "user:ana:coins", 30, 2, -70),
        (spent.id, SPENT.code, -30, 1, -30),
    ]
    assert stored is not None and ana is not None
    assert (stored.kind, stored.event_key, stored.actor) == (
        "transfer",
        "spend:ana:1",
        "test:spend",
    )
    assert stored.fingerprint == fingerprint(spend("ana", 30, "spend:ana:1"))
    assert stored.posted_at == spent.posted_at
    assert (ana.balance, ana.posting_count, ana.no_overdraft) == (-70, 2, True)


async def test_new_user_accounts_are_opened_on_first_use(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    assert await count_rows(sessions, AccountRow) > 0
    async with sessions() as session:
        assert await account_balance(session, "user:cy:coins") is None
    await post(sessions, grant("cy", 5, "grant:cy"))
    async with sessions() as session:
        opened = await session.scalar(select(AccountRow).where(AccountRow.code == "user:cy:coins"))
    assert opened is not None
    assert (opened.commodity, opened.type, opened.no_overdraft, opened.normal_sign) == (
        "COIN",
        "liability",
        True,
        -1,
    )


@pytest.mark.parametrize(
    ("postings", "sums"),
    [
        ([Posting(ISSUED, 10), Posting(coins_of("ana"), -9)], {"COIN": 1}),
        (
            [Posting(ISSUED, 10), Posting(chart.bank("USD"), -10)],
            {"COIN": 10, "USD": -10},
        ),
        (
            [
                Posting(ISSUED, 10),
                Posting(coins_of("ana"), -10),
                Posting(chart.bank("EUR"), 5),
                Posting(chart.fx_trading("EUR"), -6),
            ],
            {"EUR": -1},
        ),
    ],
    ids=["coins_off_by_one", "coins_against_dollars", "balanced_coins_unbalanced_euros"],
)
async def test_unbalanced_entry_is_refused_before_any_sql(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    postings: list[Posting],
    sums: dict[str, int],
) -> None:
    with statements_sent(engine) as sent, pytest.raises(UnbalancedEntry) as refused:
        async with sessions() as session, session.begin():
            await post_entry(
                session,
                Entry(EntryKind.TRANSFER, "unbalanced:1", tuple(postings), actor="test"),
            )
    assert refused.value.code == "UNBALANCED_ENTRY"
    assert refused.value.facts == {"sums": sums}
    assert sent == []
    assert await count_rows(sessions, JournalEntryRow) == 0


@pytest.mark.parametrize(
    ("postings", "message"),
    [
        ([Posting(ISSUED, 10)], "An entry has at least two postings"),
        ([Posting(ISSUED, 0), Posting(SPENT, 0)], "A posting moves a non-zero amount"),
        ([Posting(ISSUED, 1.5), Posting(SPENT, -1.5)], "Posting amounts are integers"),  # type: ignore[arg-type]
        ([Posting(ISSUED, True), Posting(SPENT, -1)], "Posting amounts are integers"),
        ([Posting(ISSUED, 2**63), Posting(SPENT, -(2**63))], "A posting amount is out of range"),
    ],
    ids=["one_posting", "zero_amounts", "float_amounts", "bool_amount", "out_of_range"],
)
def test_malformed_entry_is_refused_when_built(postings: list[Posting], message: str) -> None:
    with pytest.raises(InvalidEntry, match=message) as refused:
        Entry(EntryKind.TRANSFER, "malformed:1", tuple(postings), actor="test")
    assert refused.value.code == "INVALID_ENTRY"


async def test_overdraft_is_refused_in_python_with_what_was_held_and_needed(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana holds 30 coins and tries to spend 50: refused before anything is inserted, with the
    facts the API shows her."""
    await post(sessions, grant("ana", 30, "grant:ana:1"))
    with statements_sent(engine) as sent, pytest.raises(InsufficientCoins) as refused:
        await post(sessions, spend("ana", 50, "spend:ana:too-much"))
    error = refused.value
    assert error.code == "INSUFFICIENT_COINS"
    assert error.facts == {"account": "user:ana:coins", "held": 30, "needed": 50}
    assert str(error) == "user:ana:coins holds 30, needs 50"
    assert sent, "the accounts were read and locked"
    assert not [s for s in sent if s.lstrip().upper().startswith("INSERT")]
    assert await balance_of(sessions, "user:ana:coins") == 30
    assert await count_rows(sessions, JournalEntryRow) == 1

    # Spending exactly what she holds is fine, and leaves exactly zero.
    await post(sessions, spend("ana", 30, "spend:ana:all"))
    assert await balance_of(sessions, "user:ana:coins") == 0


async def test_overdrawn_deferred_value_is_refused_as_insufficient_funds(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    value = chart.user_coins_value("ana", "USD")
    with pytest.raises(Overdraft) as refused:
        await post(
            sessions,
            Entry(
                EntryKind.TRANSFER,
                "release:ana:1",
                (Posting(value, 1_000), Posting(chart.revenue("gifts", "USD"), -1_000)),
                actor="test",
            ),
        )
    assert type(refused.value) is Overdraft
    assert refused.value.code == "INSUFFICIENT_FUNDS"
    assert refused.value.facts == {"account": value.code, "held": 0, "needed": 1_000}


# ---------------------------------------------------------------------------------------------
# Idempotency under the event key
# ---------------------------------------------------------------------------------------------


async def test_same_event_key_and_postings_replays_the_first_entry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await post(sessions, grant("ana", 100, "grant:ana:1"))
    first = await post(sessions, spend("ana", 40, "spend:ana:1"))
    entries, postings = (
        await count_rows(sessions, JournalEntryRow),
        await count_rows(sessions, PostingRow),
    )
    for _ in range(3):
        again = await post(sessions, spend("ana", 40, "spend:ana:1"))
        assert again == PostedEntry(first.id, "spend:ana:1", first.posted_at, replayed=True)
    assert await count_rows(sessions, JournalEntryRow) == entries
    assert await count_rows(sessions, PostingRow) == postings
    assert await balance_of(sessions, "user:ana:coins") == 60


async def test_replay_is_recognised_even_when_the_wallet_could_not_pay_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ana spends all her 40 coins; the same request again is the first result, not an
    overdraft: the event was posted, nothing is spent twice."""
    await post(sessions, grant("ana", 40, "grant:ana:1"))
    first = await post(sessions, spend("ana", 40, "spend:ana:all"))
    again = await post(sessions, spend("ana", 40, "spend:ana:all"))
    assert (again.id, again.replayed) == (first.id, True)
    assert await balance_of(sessions, "user:ana:coins") == 0


@pytest.mark.parametrize(
    "changed",
    [
        spend("ana", 41, "spend:ana:1"),
        spend("bo", 40, "spend:ana:1"),
        Entry(
            EntryKind.GIFT,
            "spend:ana:1",
            (Posting(coins_of("ana"), 40), Posting(SPENT, -40)),
            actor="test",
        ),
    ],
    ids=["other_amount", "other_wallet", "other_kind"],
)
async def test_same_event_key_with_a_different_request_is_refused(
    sessions: async_sessionmaker[AsyncSession], changed: Entry
) -> None:
    await post(sessions, grant("ana", 100, "grant:ana:1"))
    await post(sessions, grant("bo", 100, "grant:bo:1"))
    first = await post(sessions, spend("ana", 40, "spend:ana:1"))
    with pytest.raises(IdempotencyKeyReused) as refused:
        await post(sessions, changed)
    assert refused.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert refused.value.facts == {"event_key": "spend:ana:1", "entry_id": first.id}
    assert await count_rows(sessions, JournalEntryRow) == 3
    assert await balance_of(sessions, "user:ana:coins") == 60
    assert await balance_of(sessions, "user:bo:coins") == 100


# ---------------------------------------------------------------------------------------------
# Reversals
# ---------------------------------------------------------------------------------------------


async def postings_by_account(
    sessions: async_sessionmaker[AsyncSession], entry_id: int
) -> dict[str, int]:
    async with sessions() as session:
        rows = (
            await session.execute(
                select(AccountRow.code, PostingRow.amount)
                .join(AccountRow, AccountRow.id == PostingRow.account_id)
                .where(PostingRow.entry_id == entry_id)
            )
        ).all()
    totals: dict[str, int] = {}
    for code, amount in rows:
        totals[code] = totals.get(code, 0) + amount
    return totals


async def test_reverse_entry_posts_the_exact_negation_once(
    purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana buys 350 coins for $4.99; finance reverses the purchase entry: every posting is
    negated, her wallet and its deferred value go back to zero, and a second reversal is
    refused."""
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "key-reverse-01", "USD", "web", "card", "tok_success", package_code="coins_350"
        )
    )
    entry_id = bought.purchase.entry_id
    assert entry_id is not None
    original = await postings_by_account(sessions, entry_id)
    assert original["user:ana:coins"] == -350
    assert original["user:ana:coins_value"] == -4_990_000

    reversal = await reverse(sessions, entry_id)
    assert not reversal.replayed
    assert reversal.event_key == f"reversal:{entry_id}"
    assert await postings_by_account(sessions, reversal.id) == {
        code: -amount for code, amount in original.items()
    }
    async with sessions() as session:
        row = await session.get(JournalEntryRow, reversal.id)
        ana = await wallet(session, "ana", "USD")
    assert row is not None
    assert (row.kind, row.reverses_entry_id, row.memo) == ("reversal", entry_id, "mistake")
    assert row.refs["reverses"] == entry_id
    assert (ana.coins, ana.coins_value_micros) == (0, 0)

    with pytest.raises(AlreadyReversed) as refused:
        await reverse(sessions, entry_id)
    assert refused.value.code == "ALREADY_REVERSED"
    assert refused.value.facts == {"entry_id": entry_id, "reversal_id": reversal.id}
    assert await count_rows(sessions, JournalEntryRow) == 2


async def test_reversal_that_would_overdraw_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ana was granted 100 coins and has spent 80: the grant cannot be reversed any more."""
    granted = await post(sessions, grant("ana", 100, "grant:ana:1"))
    spent = await post(sessions, spend("ana", 80, "spend:ana:1"))
    with pytest.raises(InsufficientCoins) as refused:
        await reverse(sessions, granted.id)
    assert refused.value.facts == {"account": "user:ana:coins", "held": 20, "needed": 100}
    assert await count_rows(sessions, JournalEntryRow) == 2
    # once the spend is reversed, the grant can be too
    await reverse(sessions, spent.id)
    await reverse(sessions, granted.id)
    assert await balance_of(sessions, "user:ana:coins") == 0


async def test_reversal_can_itself_be_reversed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    granted = await post(sessions, grant("ana", 10, "grant:ana:1"))
    reversal = await reverse(sessions, granted.id)
    restored = await reverse(sessions, reversal.id)
    assert await postings_by_account(sessions, restored.id) == await postings_by_account(
        sessions, granted.id
    )
    assert await balance_of(sessions, "user:ana:coins") == 10


async def test_reversing_an_unknown_entry_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(EntryNotFound) as refused:
        await reverse(sessions, 424242)
    assert refused.value.code == "ENTRY_NOT_FOUND"
    assert refused.value.field == "entryId"
    assert refused.value.facts == {"entry_id": 424242}


# ---------------------------------------------------------------------------------------------
# Balances and the trial balance at past instants
# ---------------------------------------------------------------------------------------------


async def test_balance_as_of_past_instants(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Ana: +100, then -30, then +50. Her balance at each instant is what it was then."""
    first = await post(sessions, grant("ana", 100, "grant:ana:1"))
    second = await post(sessions, spend("ana", 30, "spend:ana:1"))
    third = await post(sessions, grant("ana", 50, "grant:ana:2"))
    code = "user:ana:coins"

    async def at(instant: datetime) -> tuple[int, int]:
        async with sessions() as session:
            found = await account_balance(session, code, instant)
        assert found is not None
        return found.balance, found.posting_count

    one_microsecond = timedelta(microseconds=1)
    assert await at(first.posted_at - one_microsecond) == (0, 0)
    assert await at(first.posted_at) == (100, 1)
    assert await at(second.posted_at - one_microsecond) == (100, 1)
    assert await at(second.posted_at) == (70, 2)
    assert await at(second.posted_at + (third.posted_at - second.posted_at) / 2) == (70, 2)
    assert await at(third.posted_at) == (120, 3)
    assert await at(third.posted_at + timedelta(days=365)) == (120, 3)
    assert await balance_of(sessions, code) == 120
    assert await balance_of(sessions, SPENT.code, second.posted_at - one_microsecond) == 0
    assert await balance_of(sessions, SPENT.code, third.posted_at) == -30


async def test_wallet_as_of_a_past_instant(
    purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "key-wallet-01", "USD", "web", "card", "tok_success", package_code="coins_70"
        )
    )
    await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "key-wallet-02", "USD", "web", "card", "tok_success", package_code="coins_350"
        )
    )
    settled_at = first.purchase.settled_at
    assert settled_at is not None
    async with sessions() as session:
        then = await wallet(session, "ana", "USD", settled_at)
        now = await wallet(session, "ana", "USD")
    assert (then.coins, then.coins_value_micros, then.as_of) == (70, 1_090_000, settled_at)
    assert (now.coins, now.coins_value_micros) == (420, 1_090_000 + 4_990_000)


async def test_trial_balance_as_of_a_past_instant(
    purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana buys 350 coins for $4.99 by card, then 500 coins for EUR 4.99 by PayPal. Before the
    second purchase the books hold coins and dollars only; afterwards euros too; each
    commodity balances at both instants."""
    usd = await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "key-trial-001", "USD", "web", "card", "tok_success", package_code="coins_350"
        )
    )
    eur = await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "key-trial-002", "EUR", "web", "paypal", "tok_success", package_code="coins_500"
        )
    )
    first_at = usd.purchase.settled_at
    assert first_at is not None and eur.purchase.settled_at is not None
    assert eur.purchase.settled_at > first_at

    async with sessions() as session:
        then = await trial_balance(session, first_at)
        now = await trial_balance(session)
        before = await trial_balance(session, first_at - timedelta(microseconds=1))

    assert before.lines == [] and before.totals == [] and before.balanced
    assert then.as_of == first_at
    assert then.balanced and now.balanced
    # $4.99 by card: fee 2.9 % + 30 cents = 44 cents
    assert {(t.commodity, t.debit, t.credit) for t in then.totals} == {
        ("COIN", 350, 350),
        ("USD", 4_990_000, 4_990_000),
    }
    assert {(line.code, line.debit, line.credit) for line in then.lines} == {
        (ISSUED.code, 350, 0),
        ("user:ana:coins", 0, 350),
        ("platform:clearing:card:USD", 4_550_000, 0),
        ("platform:expense:processor_fees:USD", 440_000, 0),
        ("user:ana:coins_value", 0, 4_990_000),
    }
    # EUR 4.99 = $5.3892 at 1.08; PayPal keeps 3.49 % + 39 cents = 56 cents
    assert [t.commodity for t in now.totals] == ["COIN", "EUR", "USD"]
    totals = {t.commodity: (t.debit, t.credit) for t in now.totals}
    assert totals["COIN"] == (850, 850)
    assert totals["EUR"] == (4_990_000, 4_990_000)
    lines = {line.code: (line.debit, line.credit) for line in now.lines}
    assert lines["user:ana:coins_value"] == (0, 4_990_000 + 5_389_200)
    assert lines["platform:fx:EUR"] == (0, 4_990_000)
    assert lines["platform:fx:USD"] == (5_389_200, 0)
    assert lines["platform:clearing:paypal:EUR"] == (4_430_000, 0)


# ---------------------------------------------------------------------------------------------
# Wallet history, page by page
# ---------------------------------------------------------------------------------------------


async def test_wallet_history_pages_return_every_movement_once(
    purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana buys 70 coins, is granted coins 15 times and spends one coin 7 times: 23
    movements. Read five at a time, newest first, every movement comes back exactly once."""
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "key-history-1", "USD", "web", "card", "tok_success", package_code="coins_70"
        )
    )
    expected: dict[int, int] = {}  # entry id -> coins in (+) or out (-)
    assert bought.purchase.entry_id is not None
    expected[bought.purchase.entry_id] = 70
    for number in range(15):
        expected[(await post(sessions, grant("ana", number + 1, f"grant:ana:{number}"))).id] = (
            number + 1
        )
        if number % 2 == 1:
            expected[(await post(sessions, spend("ana", 1, f"spend:ana:{number}"))).id] = -1
    await post(sessions, grant("bo", 9, "grant:bo:1"))  # someone else's movement
    assert len(expected) == 23

    pages: list[list[WalletMovement]] = []
    cursor: HistoryCursor | None = None
    while True:
        async with sessions() as session:
            page = await wallet_history(session, "ana", "USD", first=5, before=cursor)
        pages.append(page.items)
        if not page.has_next:
            break
        cursor = page.items[-1].cursor
        assert len(pages) < 10, "pagination does not end"

    assert [len(items) for items in pages] == [5, 5, 5, 5, 3]
    movements = [movement for items in pages for movement in items]
    assert [m.seq for m in movements] == list(range(23, 0, -1))
    assert {m.entry_id: m.coins for m in movements} == expected
    assert len({m.entry_id for m in movements}) == 23
    total = 70 + sum(range(1, 16)) - 7
    assert movements[0].coins_after == total == await balance_of(sessions, "user:ana:coins")
    for newer, older in pairwise(movements):
        assert newer.coins_after == older.coins_after + newer.coins
        assert newer.posted_at >= older.posted_at
    purchase = movements[-1]
    assert (purchase.kind, purchase.coins, purchase.value_micros) == ("purchase", 70, 1_090_000)
    assert all(m.value_micros == 0 for m in movements[:-1])


async def test_a_deep_wallet_history_page_reads_only_its_own_movements(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ana is granted one coin 60 times: 60 movements. The page of five after the 50th newest
    reads its five movements from the history index, not the 50 newer ones it would pass over
    if the cursor held only a sequence number (the history index is (account, instant)).
    Counted by PostgreSQL for the reading transaction alone, with the plan held to an index
    scan as on a long history."""
    for number in range(60):
        await post(sessions, grant("ana", 1, f"grant:ana:{number}"))
    async with sessions() as session:
        newest = await wallet_history(session, "ana", "USD", first=50)
    cursor = newest.items[-1].cursor
    assert newest.items[-1].seq == 11

    returned = text(
        "SELECT pg_stat_get_xact_tuples_returned('ix_posting_account_history'::regclass)"
    )
    async with sessions() as session, session.begin():
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        await session.execute(text("SET LOCAL enable_bitmapscan = off"))
        before = await session.scalar(returned)  # what this connection read and did not report
        page = await wallet_history(session, "ana", "USD", first=5, before=cursor)
        read = await session.scalar(returned) - before
    assert [m.seq for m in page.items] == [10, 9, 8, 7, 6] and page.has_next
    # the cursor's own movement (its instant, filtered out by its number), the five, one more
    # that tells there is a next page, one more that ends the sort of that last instant's
    # movements by number: 8 on PostgreSQL 18, a few more where a plan reads ahead (11 on 15);
    # never the 50 newer movements a cursor of the number alone passed over (58 and more)
    assert 1 + 5 + 1 + 1 <= read < 50


async def test_wallet_history_page_size_is_bounded(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    for number in range(MAX_PAGE + 3):
        await post(sessions, grant("ana", 1, f"grant:ana:{number}"))
    async with sessions() as session:
        huge = await wallet_history(session, "ana", "USD", first=10_000)
        tiny = await wallet_history(session, "ana", "USD", first=0)
        nobody = await wallet_history(session, "nobody", "USD")
    assert (len(huge.items), huge.has_next) == (MAX_PAGE, True)
    assert [m.seq for m in tiny.items] == [MAX_PAGE + 3]
    assert tiny.has_next
    assert (nobody.items, nobody.has_next) == ([], False)
