"""Account statements deep into a long period: a page reads its own movements, not the ones
before it, for one account and for a platform account summed over its sub-accounts; and a
movement written between two pages of a summed statement is not read twice.

Counted by PostgreSQL for the reading transaction alone (the entries of the history index
``(account_id, posted_at)`` it returned), with the plan held to index scans as on a long
history. Before the statements were read by keyset, a page of one account passed over every
movement of the period before its cursor (read from the period's start and filtered by
sequence number), and a page of a summed statement read the whole period twice (its place in
the period was an offset, and the balance before it a sum of everything before).

Coins in their natural reading: a user's wallet holds what was granted less what was spent
(positive); ``platform:coins:spent`` is a contra-equity account read debit-positive, so each
coin spent into it is -1 and its balance falls by what was spent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.pages import Page
from accounting.ledger.posting import in_transaction, post_entry
from accounting.reads.statements import (
    AccountStatement,
    StatementCursor,
    StatementMovement,
    UnknownCursor,
    account_statement,
    later_movements,
)
from tests.ledger.test_concurrency import grant

T = TypeVar("T")
RETURNED = text("SELECT pg_stat_get_xact_tuples_returned('ix_posting_account_history'::regclass)")
SNAPSHOT = text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")


def spend(user_id: str, coins: int, event_key: str) -> Entry:
    """Coins leave the wallet for the user's sub-account of ``platform:coins:spent``."""
    return Entry(
        kind=EntryKind.TRANSFER,
        event_key=event_key,
        postings=(
            Posting(chart.user_coins(user_id), coins),
            Posting(chart.coins_spent(user_id), -coins),
        ),
        actor="test:spend",
    )


async def post(sessions: async_sessionmaker[AsyncSession], entry: Entry) -> None:
    await in_transaction(sessions, lambda session: post_entry(session, entry))


@pytest.fixture
def four_shards() -> Iterator[None]:
    """Ana's spending goes to ``platform:coins:spent`` itself, Eve's to ``#2``, Di's to ``#3``."""
    before = chart.configure_platform_shards(4)
    assert [chart.coins_spent(u).code for u in ("ana", "eve", "di")] == [
        "platform:coins:spent",
        "platform:coins:spent#2",
        "platform:coins:spent#3",
    ]
    yield
    chart.configure_platform_shards(before)


async def counted(
    sessions: async_sessionmaker[AsyncSession], read: Callable[[AsyncSession], Awaitable[T]]
) -> tuple[T, int]:
    """What ``read`` returns, and how many entries of the history index it read."""
    async with sessions() as session, session.begin():
        await session.execute(SNAPSHOT)
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        await session.execute(text("SET LOCAL enable_bitmapscan = off"))
        before = await session.scalar(RETURNED)  # what this connection read and did not report
        found = await read(session)
        return found, await session.scalar(RETURNED) - before


async def read(
    sessions: async_sessionmaker[AsyncSession],
    code: str,
    start: datetime,
    end: datetime,
    *,
    first: int,
    after: StatementCursor | None = None,
) -> AccountStatement:
    async with sessions() as session:
        found = await account_statement(session, code, start, end, first=first, after=after)
    assert found is not None
    return found


def lines(movements: list[StatementMovement]) -> list[tuple[int, int]]:
    return [(m.amount, m.balance_after) for m in movements]


async def test_a_deep_page_of_one_account_reads_only_its_own_movements(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ana is granted n coins for n = 1 to 60: she holds 1 + 2 + ... + 60 = 1,830. After the
    50th grant she held 1 + ... + 50 = 1,275; the next five bring 51 (1,326), 52 (1,378),
    53 (1,431), 54 (1,485) and 55 (1,540). That page reads those five movements, one more that
    tells there is a next page, and the cursor's own: not the 50 before it (it read 59 index
    entries before, passing over them)."""
    start = datetime.now(UTC) - timedelta(minutes=1)
    for n in range(1, 61):
        await post(sessions, grant("ana", n, f"grant:ana:{n}"))
    end = datetime.now(UTC) + timedelta(minutes=1)
    head = await read(sessions, "user:ana:coins", start, end, first=50)
    cursor = head.movements.items[-1].cursor
    assert head.movements.items[-1].balance_after == 1_275 == 50 * 51 // 2

    def page_after(
        at: StatementCursor | None,
    ) -> Callable[[AsyncSession], Awaitable[Page[StatementMovement]]]:
        async def page(session: AsyncSession) -> Page[StatementMovement]:
            if at is None:
                found = await account_statement(
                    session, "user:ana:coins", start, end, first=5, totals=False
                )
                assert found is not None
                return found.movements
            return await later_movements(session, "user:ana:coins", start, end, after=at, first=5)

        return page

    deep, read_deep = await counted(sessions, page_after(cursor))
    assert lines(deep.items) == [(51, 1_326), (52, 1_378), (53, 1_431), (54, 1_485), (55, 1_540)]
    assert deep.has_next
    _, read_first = await counted(sessions, page_after(None))
    # the cursor's movement, the five, one that tells there is a next page, one that ends the
    # sort of the last instant's movements by number: 8, a few more where a plan reads ahead;
    # never the 50 movements before the cursor (the page read 59 when it passed over them)
    assert 1 + 5 + 1 + 1 <= read_deep < 20
    assert read_deep <= read_first + 3  # as deep as one likes: what the first page costs

    # The whole statement from any page: opening, closing and count by probes (the totals
    # are asked for here, and read the period's 60 movements).
    page, read_with_totals = await counted(
        sessions,
        lambda s: account_statement(s, "user:ana:coins", start, end, first=5, after=cursor),
    )
    assert page is not None
    assert (page.opening, page.closing, page.movement_count) == (0, 1_830, 60)
    assert (page.total_in, page.total_out) == (1_830, 0)
    assert page.movements.items == deep.items
    assert read_with_totals >= 60


async def test_a_deep_page_of_a_summed_statement_reads_only_its_own_movements(
    sessions: async_sessionmaker[AsyncSession], four_shards: None
) -> None:
    """Ana, Eve and Di are granted 100 coins each, then spend one coin each in turn, 60 coins
    in all, into three sub-accounts of ``platform:coins:spent``. After the 50th the platform
    account stood at -50; the next five are -51 to -55, wherever they were posted. The page
    reads, per sub-account, its next few movements and the balance at the cursor: not the
    period before it (before, 126 index entries for any page but the first, the period read
    whole twice, and 66 for the first)."""
    users = ("ana", "eve", "di")
    for user in users:
        await post(sessions, grant(user, 100, f"grant:{user}"))
    start = datetime.now(UTC)
    for n in range(60):
        await post(sessions, spend(users[n % 3], 1, f"spend:{n}"))
    end = datetime.now(UTC) + timedelta(minutes=1)
    head = await read(sessions, "platform:coins:spent", start, end, first=50)
    assert (head.opening, head.closing, head.movement_count) == (0, -60, 60)
    assert (head.total_in, head.total_out) == (0, 60)
    assert lines(head.movements.items)[-1] == (-1, -50)

    deep, read_deep = await counted(
        sessions,
        lambda s: later_movements(
            s, "platform:coins:spent", start, end, after=head.movements.items[-1].cursor, first=5
        ),
    )
    assert lines(deep.items) == [(-1, -51), (-1, -52), (-1, -53), (-1, -54), (-1, -55)]
    assert [m.seq for m in deep.items] == [17, 18, 18, 18, 19]  # Di's 17th, Ana's 18th, ...
    assert deep.has_next
    # three sub-accounts: each one's balance at the cursor (one entry) and its next movements
    # after it (up to six, and one more that ends the sort of an instant's movements)
    assert 5 <= read_deep <= 3 * (1 + 6 + 1)


async def test_a_movement_written_between_two_pages_of_a_summed_statement_is_not_read_twice(
    sessions: async_sessionmaker[AsyncSession], four_shards: None
) -> None:
    """Ana, Eve and Di are granted 100 coins each. Then they spend, in this order: Ana 1,
    Eve 2, Di 3, Ana 4. Eve starts to spend 5 (her transaction is dated now) but has not
    committed when Di spends 6 and Ana 7, both dated after Eve's. Page one (five movements)
    reads 1, 2, 3, 4 and 6: the platform account at -1, -3, -6, -10, -16. Eve's spending
    commits. Page two starts after Di's 6 and reads Ana's 7 alone; Eve's 5, dated before the
    cursor, is not on it, and no movement is read twice (an offset of five read Di's 6 again,
    as the sixth movement in time order). The balance after Ana's 7 is the account's as it now
    stands: -(1 + 2 + 3 + 4 + 5 + 6 + 7) = -28, the statement's closing."""
    for user in ("ana", "eve", "di"):
        await post(sessions, grant(user, 100, f"grant:{user}"))
    start = datetime.now(UTC)
    for user, coins in (("ana", 1), ("eve", 2), ("di", 3), ("ana", 4)):
        await post(sessions, spend(user, coins, f"spend:{user}:{coins}"))
    end = datetime.now(UTC) + timedelta(minutes=1)

    async with sessions() as eve, eve.begin():
        await post_entry(eve, spend("eve", 5, "spend:eve:5"))
        await post(sessions, spend("di", 6, "spend:di:6"))
        await post(sessions, spend("ana", 7, "spend:ana:7"))
        one = await read(sessions, "platform:coins:spent", start, end, first=5)
    assert lines(one.movements.items) == [(-1, -1), (-2, -3), (-3, -6), (-4, -10), (-6, -16)]
    assert (one.closing, one.movement_count, one.movements.has_next) == (-23, 6, True)

    two = await read(
        sessions, "platform:coins:spent", start, end, first=5, after=one.movements.items[-1].cursor
    )
    assert lines(two.movements.items) == [(-7, -28)]
    assert not two.movements.has_next
    assert (two.opening, two.closing, two.movement_count) == (0, -28, 7)
    assert (two.total_in, two.total_out) == (0, 28)
    seen = [m.posting_id for m in one.movements.items + two.movements.items]
    assert len(seen) == len(set(seen)) == 6


async def test_a_cursor_of_another_account_or_period_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    await post(sessions, grant("ana", 3, "grant:ana"))
    await post(sessions, grant("bo", 4, "grant:bo"))
    end = datetime.now(UTC) + timedelta(minutes=1)
    bo = (await read(sessions, "user:bo:coins", start, end, first=1)).movements.items[0]
    ana = (await read(sessions, "user:ana:coins", start, end, first=1)).movements.items[0]
    wrong = (
        ("user:ana:coins", start, end, bo.cursor),  # Bo's movement
        ("user:ana:coins", start, end, (bo.posted_at, ana.posting_id)),  # not its instant
        ("user:ana:coins", ana.posted_at + timedelta(microseconds=1), end, ana.cursor),
        ("user:ana:coins", start, end, (ana.posted_at, 0)),  # no posting at all
    )
    for code, since, until, cursor in wrong:
        async with sessions() as session:
            with pytest.raises(UnknownCursor):
                await account_statement(session, code, since, until, after=cursor)
