"""Gifts raced for real: hundreds of requests at once, each on a pooled connection of its own
(an engine of the test's own with 64 connections, all opened before the race), against one
PostgreSQL. No reasoning about locks stands in for running them."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.holds import release_due, release_due_in
from accounting.gifts.posting import GiftRequest, GiftResult
from accounting.gifts.service import FeatureRequest, GiftService
from accounting.gifts.streams import start_stream
from accounting.gifts.tables import FeatureUnlockRow, GiftRow, StreamRow
from accounting.integrity import check_integrity
from accounting.ledger.balances import account_balance, creator_balances, wallet
from accounting.ledger.errors import IdempotencyKeyReused, InsufficientCoins
from accounting.ledger.posting import in_transaction
from accounting.ledger.tables import JournalEntryRow
from accounting.ledger.valuation import release_value
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseRequest, PurchaseService
from tests.conftest import race

PRICES = {"rose": 1, "finger_heart": 5, "perfume": 20, "doughnut": 30, "hand_hearts": 100}


async def buy(purchases: PurchaseService, user: str, package: str, key: str) -> None:
    result = await purchases.purchase_coins(
        PurchaseRequest(user, key, "USD", "web", "card", "tok_success", package_code=package)
    )
    assert result.purchase.status == "completed"


async def go_live(sessions: async_sessionmaker[AsyncSession], creator: str) -> StreamRow:
    return await in_transaction(sessions, lambda s: start_stream(s, creator, "racing"))


async def coins_and_value(sessions: async_sessionmaker[AsyncSession], user: str) -> tuple[int, int]:
    async with sessions() as session:
        held = await wallet(session, user, "USD")
    return held.coins, held.coins_value_micros


async def balance(sessions: async_sessionmaker[AsyncSession], code: str) -> int:
    async with sessions() as session:
        found = await account_balance(session, code)
    return found.balance if found else 0


async def count(sessions: async_sessionmaker[AsyncSession], table: Any, *where: Any) -> int:
    async with sessions() as session:
        counted: int = (
            await session.scalar(select(func.count()).select_from(table).where(*where)) or 0
        )
    return counted


async def violations(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session, session.begin():
        report = await check_integrity(session)
    return [f"{v.check}: {v.detail}" for v in report.violations]


def services(sessions: async_sessionmaker[AsyncSession]) -> tuple[PurchaseService, GiftService]:
    return (
        PurchaseService(sessions, SandboxGateway(sessions), functional_currency="USD"),
        GiftService(sessions, functional_currency="USD", hold=timedelta(0)),
    )


# ---------------------------------------------------------------------------------------------
# One wallet, hundreds of gifts
# ---------------------------------------------------------------------------------------------


async def test_200_equal_gifts_from_one_wallet_spend_exactly_what_it_holds(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    """Ana holds 350 coins ($4.99) and sends 200 Finger Hearts (5 coins each) at once: exactly
    70 go through, the other 130 are refused with the wallet empty, and the 70 released
    exactly $4.99 between them."""
    purchases, gifts = services(racing)
    await buy(purchases, "ana", "coins_350", "ana-buys-coins")
    stream = await go_live(racing, "bo")

    results = await race(
        lambda n=n: gifts.send_gift(  # type: ignore[misc]
            GiftRequest("ana", f"finger-heart-{n:04d}", stream.id, "finger_heart", 1)
        )
        for n in range(200)
    )
    sent = [r for r in results if isinstance(r, GiftResult)]
    refused = [r for r in results if isinstance(r, InsufficientCoins)]
    assert (len(sent), len(refused)) == (70, 130), Counter(type(r).__name__ for r in results)
    assert not any(r.replayed for r in sent)
    assert {tuple(sorted(r.facts.items())) for r in refused} == {(("held", 0), ("needed", 5))}

    assert await coins_and_value(racing, "ana") == (0, 0)
    assert sum(r.gift.value_micros for r in sent) == 4_990_000
    assert await balance(racing, "creator:bo:diamonds:pending") == 350
    assert await count(racing, GiftRow) == 70
    assert await count(racing, JournalEntryRow, JournalEntryRow.kind == "gift") == 70
    assert await violations(racing) == []


async def test_200_mixed_gifts_from_one_wallet_succeed_exactly_while_affordable(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    """Ana holds 1,400 coins ($19.49) and sends 200 gifts of five kinds and 1-3 of each at
    once, about 12,000 coins' worth. No gift overdraws her wallet; each refusal saw a balance
    the wallet really had, too small for that gift; and replaying the gifts that went through,
    in the order the wallet paid for them, with the weighted average gives exactly the value
    each released and the value left."""
    purchases, gifts = services(racing)
    await buy(purchases, "ana", "coins_1400", "ana-buys-coins")
    stream = await go_live(racing, "bo")
    chosen = random.Random(20261125)
    requests = [
        GiftRequest("ana", f"mixed-gift-{n:04d}", stream.id, *pick(chosen)) for n in range(200)
    ]

    results = await race(lambda r=r: gifts.send_gift(r) for r in requests)  # type: ignore[misc]
    sent = [r.gift for r in results if isinstance(r, GiftResult)]
    refused = [r for r in results if isinstance(r, InsufficientCoins)]
    assert len(sent) + len(refused) == 200, Counter(type(r).__name__ for r in results)
    assert sent and refused

    coins, value = await coins_and_value(racing, "ana")
    assert sum(g.coins for g in sent) + coins == 1_400
    # the balances Ana's wallet went through, in the order it paid
    async with racing() as session:
        history = (
            await session.execute(
                text(
                    "SELECT p.entry_id, -p.balance_after FROM posting p"
                    " JOIN account a ON a.id = p.account_id"
                    " WHERE a.code = 'user:ana:coins' ORDER BY p.account_seq"
                )
            )
        ).all()
    balances = {held for _, held in history}
    for refusal in refused:
        assert refusal.facts["held"] in balances, refusal.facts
        assert refusal.facts["held"] < refusal.facts["needed"], refusal.facts
    assert all(r.facts["held"] >= coins for r in refused)  # the wallet only ever went down

    by_entry = {g.entry_id: g for g in sent}
    held_coins, held_value = 1_400, 19_490_000
    for entry_id, _ in history[1:]:  # after the purchase, each gift in the order it was paid
        gift = by_entry[entry_id]
        assert gift.value_micros == release_value(held_value, held_coins, gift.coins)
        held_coins, held_value = held_coins - gift.coins, held_value - gift.value_micros
    assert (held_coins, held_value) == (coins, value)
    assert len(history) == len(sent) + 1
    assert await balance(racing, "creator:bo:diamonds:pending") == 1_400 - coins
    assert await violations(racing) == []


def pick(chosen: random.Random) -> tuple[str, int]:
    return chosen.choice(sorted(PRICES)), chosen.randint(1, 3)


# ---------------------------------------------------------------------------------------------
# One creator, hundreds of viewers
# ---------------------------------------------------------------------------------------------


async def test_200_viewers_gifting_one_creator_at_once_are_all_credited(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    """200 viewers, 70 coins ($1.09) each, all gift Bo at once: every gift goes through, Bo's
    pending diamonds and payable are exactly the sum of them, and each viewer paid exactly
    their own gift at the weighted average."""
    purchases, gifts = services(racing)
    viewers = [f"viewer-{n:03d}" for n in range(200)]
    await race(lambda v=v: buy(purchases, v, "coins_70", f"{v}-buys-70") for v in viewers)  # type: ignore[misc]
    stream = await go_live(racing, "bo")
    chosen = random.Random(7)
    requests = []
    for viewer in viewers:
        gift = chosen.choice(["rose", "finger_heart", "perfume", "doughnut"])
        quantity = chosen.randint(1, 70 // PRICES[gift])
        requests.append(GiftRequest(viewer, f"{viewer}-gift-1", stream.id, gift, quantity))

    results = await race(lambda r=r: gifts.send_gift(r) for r in requests)  # type: ignore[misc]
    assert all(isinstance(r, GiftResult) and not r.replayed for r in results), [
        r for r in results if not isinstance(r, GiftResult)
    ]
    coins = {r.sender_id: PRICES[r.gift_code] * r.quantity for r in requests}
    total = sum(coins.values())
    assert await balance(racing, "creator:bo:diamonds:pending") == total
    assert await balance(racing, "creator:bo:payable") == total * 5_000
    async with racing() as session:
        bo = await creator_balances(session, "bo", "USD")
        assert (bo.diamonds_pending, bo.payable_micros) == (total, total * 5_000)
        for viewer in viewers:
            held = await wallet(session, viewer, "USD")
            spent = coins[viewer]
            assert (held.coins, held.coins_value_micros) == (
                70 - spent,
                1_090_000 - release_value(1_090_000, 70, spent),
            ), viewer
    assert await count(racing, GiftRow, GiftRow.creator_id == "bo") == 200
    # Bo's pending account took 200 postings, one after another, none lost
    async with racing() as session:
        seqs = (
            await session.scalars(
                text(
                    "SELECT p.account_seq FROM posting p JOIN account a ON a.id = p.account_id"
                    " WHERE a.code = 'creator:bo:diamonds:pending' ORDER BY p.account_seq"
                )
            )
        ).all()
    assert list(seqs) == list(range(1, 201))
    assert await violations(racing) == []


# ---------------------------------------------------------------------------------------------
# Holds released by racing jobs and readers
# ---------------------------------------------------------------------------------------------

CREATORS = ("bo", "cy", "dee")


async def gifts_to_creators(
    purchases: PurchaseService,
    gifts: GiftService,
    sessions: async_sessionmaker[AsyncSession],
    senders: int,
) -> tuple[list[GiftRequest], dict[str, int]]:
    """``senders`` viewers, each with 350 coins, and three live creators; a gift from each
    viewer to each creator (not sent yet), and the diamonds each creator is due from them."""
    viewers = [f"fan-{n:03d}" for n in range(senders)]
    await race(lambda v=v: buy(purchases, v, "coins_350", f"{v}-buys-350") for v in viewers)  # type: ignore[misc]
    streams = {c: await go_live(sessions, c) for c in CREATORS}
    requests, diamonds = [], Counter[str]()
    for n, viewer in enumerate(viewers):
        for creator in CREATORS:
            quantity = 1 + n % 3
            requests.append(
                GiftRequest(
                    viewer, f"{viewer}-to-{creator}", streams[creator].id, "perfume", quantity
                )
            )
            diamonds[creator] += 20 * quantity
    return requests, dict(diamonds)


def release_work(
    sessions: async_sessionmaker[AsyncSession],
) -> list[Callable[[], Awaitable[int]]]:
    """Four release jobs (batches of 7) and, per creator, two reads releasing in batches of 5
    and one releasing inside the read's own transaction before it reads the balances."""

    async def read(creator: str) -> int:
        async def release_then_read(session: AsyncSession) -> int:
            released = await release_due_in(session, creator_id=creator)
            await creator_balances(session, creator, "USD")
            return released

        return await in_transaction(sessions, release_then_read)

    work: list[Callable[[], Awaitable[int]]] = [
        lambda: release_due(sessions, limit=7) for _ in range(4)
    ]
    for creator in CREATORS:
        work += [lambda c=creator: release_due(sessions, creator_id=c, limit=5)] * 2  # type: ignore[misc]
        work.append(lambda c=creator: read(c))  # type: ignore[misc]
    return work


async def check_released_once(
    sessions: async_sessionmaker[AsyncSession], diamonds: dict[str, int]
) -> None:
    """Every gift released, by exactly one hold-release entry of its creator, and each
    creator's diamonds all available."""
    assert await count(sessions, GiftRow, GiftRow.release_entry_id.is_(None)) == 0
    for creator, total in diamonds.items():
        assert await balance(sessions, f"creator:{creator}:diamonds:pending") == 0
        assert await balance(sessions, f"creator:{creator}:diamonds:available") == total
    async with sessions() as session:
        moved = await session.scalar(
            text(
                "SELECT sum(p.amount) FROM posting p JOIN journal_entry e ON e.id = p.entry_id"
                " JOIN account a ON a.id = p.account_id"
                " WHERE e.kind = 'hold_release' AND a.code LIKE 'creator:%\\:pending'"
            )
        )
    assert moved == sum(diamonds.values())
    assert await violations(sessions) == []


async def test_racing_release_jobs_and_readers_release_each_gift_once(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    """150 gifts to three creators, all due; then four release jobs and nine reads of the
    creators' balances release them all at once. Between them they release 150 gifts, each
    exactly once."""
    purchases, gifts = services(racing)
    requests, diamonds = await gifts_to_creators(purchases, gifts, racing, senders=50)
    sent = await race(lambda r=r: gifts.send_gift(r) for r in requests)  # type: ignore[misc]
    assert all(isinstance(r, GiftResult) for r in sent)

    released = await race(release_work(racing))
    assert all(isinstance(n, int) for n in released), released
    assert sum(n for n in released if isinstance(n, int)) == 150
    await check_released_once(racing, diamonds)


async def test_holds_released_while_gifts_keep_arriving_are_released_once(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    """The same race with the gifts still arriving: 150 gifts and 13 releasers at once. Each
    releaser releases what is due and committed when it looks; a last job releases the rest.
    Every gift is released exactly once across all of them."""
    purchases, gifts = services(racing)
    requests, diamonds = await gifts_to_creators(purchases, gifts, racing, senders=50)
    work: list[Callable[[], Awaitable[object]]] = [
        lambda r=r: gifts.send_gift(r)  # type: ignore[misc]
        for r in requests
    ]
    releasers = release_work(racing)
    for n, releaser in enumerate(releasers):  # spread the releasers through the gifts
        work.insert(n * len(work) // len(releasers), releaser)
    results = await race(work)
    assert sum(isinstance(r, GiftResult) for r in results) == 150
    released = [r for r in results if isinstance(r, int) and not isinstance(r, bool)]
    assert len(released) == len(releasers) == 13
    last = await release_due(racing)
    assert sum(released) + last == 150, (released, last)
    await check_released_once(racing, diamonds)


# ---------------------------------------------------------------------------------------------
# Retries of one gift
# ---------------------------------------------------------------------------------------------


async def test_racing_retries_of_one_gift_charge_once(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    """Ana's app sends one gift of three Hand Hearts (300 of her 350 coins) 50 times at once,
    under one idempotency key: one gift, one charge. None of the retries is refused for the
    coins the first one spent: they all get the first gift back."""
    purchases, gifts = services(racing)
    await buy(purchases, "ana", "coins_350", "ana-buys-coins")
    stream = await go_live(racing, "bo")
    request = GiftRequest("ana", "one-gift-many-retries", stream.id, "hand_hearts", 3)

    results = await race(lambda: gifts.send_gift(request) for _ in range(50))
    assert all(isinstance(r, GiftResult) for r in results), results
    sent = [r for r in results if isinstance(r, GiftResult)]
    assert Counter(r.replayed for r in sent) == {True: 49, False: 1}
    assert {r.gift.id for r in sent} == {sent[0].gift.id}

    assert await coins_and_value(racing, "ana") == (
        50,
        4_990_000 - release_value(4_990_000, 350, 300),
    )
    assert await count(racing, GiftRow) == 1
    assert await count(racing, JournalEntryRow, JournalEntryRow.kind == "gift") == 1
    assert await balance(racing, "creator:bo:diamonds:pending") == 300
    assert await violations(racing) == []


async def test_racing_one_key_for_two_different_gifts_sends_one(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    """40 requests under one key, half for one rose and half for two: whichever arrives first
    is the gift; the requests that match it get it back, the others are refused as a reused
    key, naming it."""
    purchases, gifts = services(racing)
    await buy(purchases, "ana", "coins_350", "ana-buys-coins")
    stream = await go_live(racing, "bo")
    one, two = (GiftRequest("ana", "same-key-two-asks", stream.id, "rose", q) for q in (1, 2))

    results = await race(
        lambda r=r: gifts.send_gift(r)  # type: ignore[misc]
        for r in [one, two] * 20
    )
    sent = [r for r in results if isinstance(r, GiftResult)]
    reused = [r for r in results if isinstance(r, IdempotencyKeyReused)]
    assert len(sent) + len(reused) == 40
    assert Counter(r.replayed for r in sent) == {True: 19, False: 1}
    gift = sent[0].gift
    assert {r.gift.id for r in sent} == {gift.id}
    assert len(reused) == 20 and {r.facts["gift_id"] for r in reused} == {gift.id}
    assert await coins_and_value(racing, "ana") == (
        350 - gift.coins,
        4_990_000 - release_value(4_990_000, 350, gift.coins),
    )
    assert await count(racing, GiftRow) == 1
    assert await violations(racing) == []


async def test_racing_retries_of_one_unlock_charge_once(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    purchases, gifts = services(racing)
    await buy(purchases, "ana", "coins_350", "ana-buys-coins")
    request = FeatureRequest("ana", "one-unlock-retried", "supporter_badge")

    results = await race(lambda: gifts.unlock_feature(request) for _ in range(50))
    replayed = Counter(getattr(r, "replayed", None) for r in results)
    assert replayed == {True: 49, False: 1}, results
    assert await count(racing, FeatureUnlockRow) == 1
    assert await coins_and_value(racing, "ana") == (
        250,
        4_990_000 - release_value(4_990_000, 350, 100),
    )
    assert await balance(racing, "platform:revenue:features") == release_value(4_990_000, 350, 100)
    assert await violations(racing) == []
