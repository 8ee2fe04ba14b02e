"""Velocity limits in the domain, on real concurrent connections: purchases of one buyer racing
for the day's coin limit, a burst of one sender's gifts crossing the gift rate inside one
batch, a batch that waited for the sender's wallet while another server's batch wrote gifts,
and the gift-by-gift path a refused batch falls back to. The same rules over HTTP are in
tests/graphql/test_graphql_limits.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.errors import GiftRateLimited
from accounting.gifts.posting import GiftRateLimit, GiftRequest, GiftResult, post_gifts
from accounting.gifts.service import GiftService
from accounting.gifts.tables import GiftRow
from accounting.integrity import check_integrity
from accounting.ledger.balances import wallet
from accounting.ledger.errors import LedgerError
from accounting.purchases.errors import PurchaseLimitExceeded
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseRequest, PurchaseResult, PurchaseService
from accounting.purchases.tables import PurchaseRow, SandboxPaymentRow
from api.database import create_engine, libpq_url, session_factory
from tests.conftest import ZERO, race
from tests.gifts.support import live, sent_at_once
from tests.gifts.test_gift_batches import take_event_key

ZERO_HOLD = timedelta(0)


def package(user: str, code: str = "coins_350", key: str | None = None) -> PurchaseRequest:
    return PurchaseRequest(
        user, key or uuid.uuid4().hex, "USD", "web", "card", "tok_success", package_code=code
    )


def gift(sender: str, stream_id: int, key: str | None = None) -> GiftRequest:
    return GiftRequest(sender, key or uuid.uuid4().hex, stream_id, "rose", 1)


async def count(sessions: async_sessionmaker[AsyncSession], table: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def coins_of(sessions: async_sessionmaker[AsyncSession], user: str) -> int:
    async with sessions() as session:
        return (await wallet(session, user, "USD")).coins


async def no_problems(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        report = await check_integrity(session)
    assert report.violations == []


async def test_purchases_racing_for_the_days_limit_pass_only_as_far_as_it_goes(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    """A 1,000-coin day. Ana sends six purchases of 350 coins at once and Cy three, each on a
    connection of its own: Ana's purchases queue on her, so exactly two go through (700) and
    four are refused, each having counted the two before it; Cy's do not wait for Ana's, and
    two of his go through. Nothing is charged for a refused purchase."""
    purchases = PurchaseService(
        racing, SandboxGateway(racing), unanswered_grace=ZERO, daily_coin_limit=1_000
    )

    results = await race(
        [lambda: purchases.purchase_coins(package("ana")) for _ in range(6)]
        + [lambda: purchases.purchase_coins(package("cy")) for _ in range(3)]
    )

    ana, cy = results[:6], results[6:]
    for mine, passed in ((ana, 2), (cy, 2)):
        done = [r for r in mine if isinstance(r, PurchaseResult)]
        refused = [r for r in mine if isinstance(r, PurchaseLimitExceeded)]
        assert (len(done), len(refused)) == (passed, len(mine) - passed), mine
        assert {r.purchase.status for r in done} == {"completed"}
        assert all(
            r.facts == {"limit_coins": 1_000, "bought_today_coins": 700, "asked_coins": 350}
            for r in refused
        )
    assert (await coins_of(racing, "ana"), await coins_of(racing, "cy")) == (700, 700)
    assert await count(racing, PurchaseRow) == 4
    assert await count(racing, SandboxPaymentRow) == 4
    await no_problems(racing)


async def test_a_replay_racing_new_purchases_is_still_the_first_purchase(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    """Ana's first purchase is retried (same key) while she makes new ones that fill her day:
    every retry returns that first purchase; the day holds at most its 1,000 coins."""
    purchases = PurchaseService(
        racing, SandboxGateway(racing), unanswered_grace=ZERO, daily_coin_limit=1_000
    )
    first = await purchases.purchase_coins(package("ana", "coins_700", key="ana-first-700"))

    results = await race(
        [lambda: purchases.purchase_coins(package("ana", "coins_700", key="ana-first-700"))] * 4
        + [lambda: purchases.purchase_coins(package("ana", "coins_70")) for _ in range(6)]
    )

    replays, new = results[:4], results[4:]
    assert all(
        isinstance(r, PurchaseResult) and r.replayed and r.purchase.id == first.purchase.id
        for r in replays
    ), replays
    assert sum(isinstance(r, PurchaseResult) for r in new) == 4  # 700 + 4 × 70 = 980
    assert sum(isinstance(r, PurchaseLimitExceeded) for r in new) == 2
    assert await coins_of(racing, "ana") == 980
    assert await count(racing, SandboxPaymentRow) == 5


# --- gifts per sender per window ----------------------------------------------------------------


async def test_a_burst_crossing_the_gift_rate_inside_one_batch_is_cut_at_the_limit(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """At most 5 gifts a minute. Ana fires 8 Roses at once, Cy 2 among them; they share one
    batch, checked in the order they came: Ana's first five go, her last three are refused
    with GIFT_RATE_LIMITED and leave no trace; Cy's, in the same batch, go."""
    for user in ("ana", "cy"):
        await purchases.purchase_coins(package(user))
    stream = await live(sessions, "bo", "limits")
    gifts = GiftService(
        sessions, functional_currency="USD", hold=ZERO_HOLD, rate_limit=GiftRateLimit(5)
    )
    senders = ["ana", "ana", "cy", "ana", "ana", "ana", "cy", "ana", "ana", "ana"]

    results = await sent_at_once(gifts, [gift(sender, stream) for sender in senders])

    assert gifts.batches.batches_written == 1
    outcomes = [
        (sender, "sent" if isinstance(r, GiftResult) else r.code)
        for sender, r in zip(senders, results, strict=True)
    ]
    assert outcomes == [
        ("ana", "sent"),
        ("ana", "sent"),
        ("cy", "sent"),
        ("ana", "sent"),
        ("ana", "sent"),
        ("ana", "sent"),
        ("cy", "sent"),
        ("ana", "GIFT_RATE_LIMITED"),
        ("ana", "GIFT_RATE_LIMITED"),
        ("ana", "GIFT_RATE_LIMITED"),
    ]
    refused = results[-1]
    assert isinstance(refused, GiftRateLimited)
    assert refused.facts == {"limit_gifts": 5, "window_seconds": 60, "sent_in_window": 5}
    assert (await coins_of(sessions, "ana"), await coins_of(sessions, "cy")) == (345, 348)
    assert await count(sessions, GiftRow) == 7
    await no_problems(sessions)


async def test_purchases_in_the_window_are_not_gifts(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Every posting on Ana's wallet is a candidate for the cheap bound the batch reads first
    (three purchases and a gift: four, over a limit of 2); the gifts themselves are then
    counted, and only gifts count."""
    for _ in range(3):
        await purchases.purchase_coins(package("ana", "coins_70"))
    stream = await live(sessions, "bo", "limits")
    gifts = GiftService(
        sessions, functional_currency="USD", hold=ZERO_HOLD, rate_limit=GiftRateLimit(2)
    )

    assert isinstance(await gifts.send_gift(gift("ana", stream)), GiftResult)
    assert isinstance(await gifts.send_gift(gift("ana", stream)), GiftResult)
    with pytest.raises(GiftRateLimited):
        await gifts.send_gift(gift("ana", stream))
    assert await coins_of(sessions, "ana") == 208


async def test_gifts_written_while_a_batch_waited_for_the_wallet_count_against_the_rate(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """At most 3 gifts a minute; Ana has sent 2. Another server's transaction writes her third
    and holds her wallet; meanwhile this server's batch, with her fourth, starts reading and
    waits for the wallet. The batch's statement sees the gift table as of its start, so
    without a second look it would count 2 and let the fourth through: it sees instead that
    her wallet moved while it waited, counts again under the lock, and refuses the gift."""
    await purchases.purchase_coins(package("ana"))
    stream = await live(sessions, "bo", "limits")
    engine = create_engine(db_url, pool_size=2, max_overflow=0)
    server = GiftService(
        session_factory(engine),
        functional_currency="USD",
        hold=ZERO_HOLD,
        rate_limit=GiftRateLimit(3),
    )
    try:
        for _ in range(2):
            await server.send_gift(gift("ana", stream))
        async with sessions() as other, other.begin():
            (third,) = await post_gifts(other, [gift("ana", stream)], server.terms)
            assert isinstance(third, GiftResult)
            fourth = asyncio.create_task(server.send_gift(gift("ana", stream)))
            await waiting_for_a_lock(db_url)
        with pytest.raises(GiftRateLimited) as refused:
            await fourth
    finally:
        await engine.dispose()

    assert refused.value.facts["sent_in_window"] == 3
    assert await count(sessions, GiftRow) == 3
    assert await coins_of(sessions, "ana") == 347
    await no_problems(sessions)


async def waiting_for_a_lock(db_url: URL, timeout_s: float = 10.0) -> None:
    """Return once a session of this test's database waits for a row lock."""
    conn = await asyncpg.connect(libpq_url(db_url))
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                return
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    raise AssertionError("no session waited for a lock")


async def test_a_batch_written_gift_by_gift_keeps_the_same_rate(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """A batch the database refuses as a whole (one gift's event key was taken behind the
    ledger's back) is written gift by gift: the rate is checked the same way there, each gift
    counting the ones written before it."""
    for user in ("ana", "cy"):
        await purchases.purchase_coins(package(user))
    stream = await live(sessions, "bo", "limits")
    await take_event_key(db_url, "gift:cy:taken-key-01")
    gifts = GiftService(
        sessions, functional_currency="USD", hold=ZERO_HOLD, rate_limit=GiftRateLimit(3)
    )
    requests = [
        gift("ana", stream),
        gift("cy", stream, key="taken-key-01"),
        *(gift("ana", stream) for _ in range(3)),
    ]

    results = await asyncio.gather(
        *(gifts.send_gift(request) for request in requests), return_exceptions=True
    )

    assert gifts.batches.batches_written == 1
    assert not isinstance(results[1], GiftResult | LedgerError)  # the database's refusal
    assert [type(r) for r in results[2:]] == [GiftResult, GiftResult, GiftRateLimited]
    assert await coins_of(sessions, "ana") == 347
    async with sessions() as session:
        senders = (await session.scalars(select(GiftRow.sender_id))).all()
        assert sorted(senders) == ["ana", "ana", "ana"]
        assert await session.scalar(text("SELECT count(*) FROM gift WHERE sender_id = 'cy'")) == 0
    await no_problems(sessions)
