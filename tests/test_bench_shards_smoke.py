"""The platform-shards benchmark's load, run for a second: gifts through two gift services at
once with the platform accounts split in four land on the sub-accounts their senders and
creators hash to, and the books hold exactly the gifts acknowledged. Nothing here is timed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.integrity import check_integrity
from accounting.ledger import balances, chart
from accounting.reads import reports
from bench.books import check_books, entries_of_kind
from bench.gifts import drive_gifts, gift_service, seed_gifting
from bench.platform_shards import platform_accounts_moved


@pytest.fixture
def four_shards() -> Iterator[None]:
    before = chart.configure_platform_shards(4)
    yield
    chart.configure_platform_shards(before)


async def test_gifts_through_two_services_split_in_four_keep_the_books(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], four_shards: None
) -> None:
    setup = await seed_gifting(sessions, senders=8, creators=3)
    before = await entries_of_kind(sessions, "gift")
    services = [gift_service(sessions), gift_service(sessions)]
    load = await drive_gifts(services, setup, clients=8, seconds=1.0)

    assert load.acknowledged > 0
    assert load.errors == 0, load.error_examples
    books = await check_books(sessions, load.acknowledged, before, kind="gift")
    assert books.ok, books.problems()
    async with sessions() as session:
        rows = await session.execute(text("SELECT sender_id, sum(coins) FROM gift GROUP BY 1"))
        spent_by: dict[str, int] = {str(sender): int(coins) for sender, coins in rows}
        moved = set(
            (
                await session.scalars(
                    text(
                        "SELECT code FROM account"
                        " WHERE code LIKE 'platform:coins:spent#%' AND posting_count > 0"
                    )
                )
            ).all()
        )
        spent = await balances.account_balance(session, "platform:coins:spent")
        trial = await reports.trial_balance(session)
    # each sender's coins went to the sub-account its id hashes to, and nowhere else
    expected = {chart.coins_spent(sender).code for sender in spent_by} - {"platform:coins:spent"}
    assert moved == expected
    assert spent is not None and spent.balance == -sum(spent_by.values())
    assert trial.balanced
    assert [line.code for line in trial.lines if "#" in line.code] == []
    assert await platform_accounts_moved(db_url) > 3
    async with sessions() as session:
        report = await check_integrity(session)
    assert report.ok, report.violations
