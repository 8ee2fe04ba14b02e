"""Breakage runs against a real PostgreSQL: the policy's boundary, the dry run, once per run
date (again, and racing itself on real connections), the same idempotency key, and the integrity
check finding a forged breakage entry.

Every run here is dated ahead of the day the wallets moved (``T``): the books cannot be written
in the past, so a run dated ``T + 730`` stands for a run two years later, with "today" the day
after its date (the service takes the current date; the command line and GraphQL read it from
the database)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting import integrity
from accounting.breakage.errors import BreakageDateNotEnded
from accounting.breakage.service import BreakageRequest, BreakageRun, recognise_breakage
from accounting.gifts.posting import GiftRequest, GiftResult
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.errors import IdempotencyKeyReused
from accounting.ledger.posting import in_transaction, post_entry
from accounting.ledger.tables import JournalEntryRow
from accounting.policy.tables import AuditRow
from accounting.purchases.service import PurchaseService
from tests.breakage.support import POLICY, balance, buy, counts, last_moved_on, run, wallet
from tests.conftest import race


async def test_a_wallet_active_one_day_inside_the_period_is_not_broken(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Ana buys 350 coins for $4.99 on day T. As of the end of T + 729 her wallet has gone
    unused for 729 whole days and the day T itself, inside the 730: nothing breaks. As of the
    end of T + 730 it has been unused for 730 whole days: her $4.99 is breakage."""
    await buy(purchases, "ana", "ana-buys-0001")
    day_t = await last_moved_on(sessions, "ana")

    inside = await run(sessions, day_t + timedelta(days=729), key="breakage-inside-01")
    assert inside.wallets == [] and not inside.more
    assert inside.cutoff.date() == day_t  # the cut-off is midnight starting day T: she moved after
    assert await wallet(sessions, "ana") == (350, 4_990_000)

    past = await run(sessions, day_t + timedelta(days=730), key="breakage-past-0001")
    assert [(w.user_id, w.coins, w.value_micros) for w in past.wallets] == [("ana", 350, 4_990_000)]
    assert past.cutoff.date() == day_t + timedelta(days=1)
    assert await wallet(sessions, "ana") == (350, 0)  # the coins stay; their value is revenue
    assert await balance(sessions, "platform:revenue:breakage") == 4_990_000

    async with sessions() as session:
        entry = await session.get(JournalEntryRow, past.wallets[0].entry_id)
    assert entry is not None
    assert entry.kind == "breakage"
    assert entry.event_key == f"breakage:{day_t + timedelta(days=730)}:ana"
    assert entry.refs["coins_unused"] == 350 and entry.refs["value_micros"] == 4_990_000
    assert entry.refs["after_days"] == 730


async def test_a_dry_run_shows_the_run_and_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """A dry run lists the wallets a run would break, with their coins and value, and writes
    no entry, no audit row, nothing; it may look ahead of today (a forecast)."""
    await buy(purchases, "ana", "ana-buys-0001")
    await buy(purchases, "bo", "bo-buys-00001", package="coins_70")
    day_t = await last_moved_on(sessions, "bo")
    before = await counts(sessions)

    preview = await run(sessions, day_t + timedelta(days=730), dry_run=True)
    forecast = await recognise_breakage(
        sessions,
        BreakageRequest(day_t + timedelta(days=3650), "user:fin", "forecast-0001", dry_run=True),
        policy=POLICY,
        functional_currency="USD",
    )
    assert preview.dry_run and forecast.dry_run
    # 350 coins for $4.99 and 70 coins for $1.09: 4,990,000 and 1,090,000 micro-dollars
    expected = {("ana", 350, 4_990_000), ("bo", 70, 1_090_000)}
    assert {(w.user_id, w.coins, w.value_micros) for w in preview.wallets} == expected
    assert {(w.user_id, w.coins, w.value_micros) for w in forecast.wallets} == expected
    assert all(w.entry_id is None for w in preview.wallets)
    assert (preview.coins, preview.value_micros) == (350 + 70, 4_990_000 + 1_090_000)
    assert await counts(sessions) == before
    assert await wallet(sessions, "ana") == (350, 4_990_000)

    # A real run of a day that has not ended is refused, and changes nothing either.
    with pytest.raises(BreakageDateNotEnded) as refused:
        await recognise_breakage(
            sessions,
            BreakageRequest(day_t + timedelta(days=730), "user:fin", "too-early-01"),
            policy=POLICY,
            functional_currency="USD",
        )
    assert refused.value.code == "BREAKAGE_DATE_NOT_ENDED" and refused.value.field == "asOf"
    assert await counts(sessions) == before


async def test_a_run_twice_for_the_same_date_posts_once(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    await buy(purchases, "ana", "ana-buys-0001")
    as_of = await last_moved_on(sessions, "ana") + timedelta(days=731)
    entries, _, _ = await counts(sessions)

    first = await run(sessions, as_of, key="breakage-first-01")
    again = await run(sessions, as_of, key="breakage-again-01")
    later = await run(sessions, as_of + timedelta(days=31), key="breakage-later-01")
    replay = await run(sessions, as_of, key="breakage-first-01")

    assert [w.value_micros for w in first.wallets] == [4_990_000]
    assert again.wallets == [] and later.wallets == []  # nothing left to recognise
    assert replay.replayed and replay.wallets == first.wallets
    # one breakage entry; three runs audited (the replay is the first run, not a new one)
    assert await counts(sessions) == (entries + 1, 1, 3)
    assert await balance(sessions, "platform:revenue:breakage") == 4_990_000

    with pytest.raises(IdempotencyKeyReused):
        await run(sessions, as_of + timedelta(days=1), key="breakage-first-01")


async def test_runs_racing_each_other_on_real_connections_post_each_wallet_once(
    sessions: async_sessionmaker[AsyncSession],
    racing: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    """Eight runs for the same date at once, four more under one idempotency key: the runs
    queue, and each of the three wallets is broken by exactly one of them."""
    for user in ("ana", "bo", "cy"):
        await buy(purchases, user, f"{user}-buys-0001")
    as_of = await last_moved_on(sessions, "cy") + timedelta(days=730)

    keys = [f"breakage-race-{n:02}" for n in range(8)] + ["breakage-same-key"] * 4
    results = await race([partial(run, racing, as_of, key=key) for key in keys])
    runs = [r for r in results if isinstance(r, BreakageRun)]
    assert len(runs) == len(keys), results
    broken = sorted(w.user_id for r in runs if not r.replayed for w in r.wallets)
    assert broken == ["ana", "bo", "cy"]
    same = [r for r, key in zip(runs, keys, strict=True) if key == "breakage-same-key"]
    assert sum(not r.replayed for r in same) == 1
    assert all(r.wallets == same[0].wallets for r in same)
    _, breakage_entries, audited = await counts(sessions)
    assert (breakage_entries, audited) == (3, 9)  # 8 keys + the shared one, each run once
    assert await balance(sessions, "platform:revenue:breakage") == 3 * 4_990_000


async def test_the_integrity_check_is_clean_after_a_run_and_finds_a_forged_breakage(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """A run's entries pass both breakage checks. Then someone posts a "breakage" entry of their
    own, taking $1.00 of the $4.99 Cy has just paid as revenue, while she is active: both
    checks name it."""
    await buy(purchases, "ana", "ana-buys-0001")
    await buy(purchases, "bo", "bo-buys-00001")
    as_of = await last_moved_on(sessions, "bo") + timedelta(days=730)
    done = await run(sessions, as_of)
    assert len(done.wallets) == 2
    async with sessions() as session:
        report = await integrity.check_integrity(session)
    assert report.ok, report.violations
    assert {"breakage_recognises_a_whole_wallet", "breakage_wallet_was_dormant"} <= set(
        report.checks
    )

    await buy(purchases, "cy", "cy-buys-00001")
    forged = Entry(
        kind=EntryKind.BREAKAGE,
        event_key="breakage:forged:cy",
        postings=(
            Posting(chart.user_coins_value("cy", "USD"), 1_000_000),
            Posting(chart.revenue("breakage", "USD"), -1_000_000),
        ),
        actor="user:mallory",
        refs={"user_id": "cy", "run_date": as_of.isoformat(), "value_micros": 1_000_000},
    )
    await in_transaction(sessions, lambda session: post_entry(session, forged))
    # a forger who cannot even write the references is named too, not a check that fails
    await buy(purchases, "dee", "dee-buys-0001")
    garbled = Entry(
        kind=EntryKind.BREAKAGE,
        event_key="breakage:forged:dee",
        postings=(
            Posting(chart.user_coins_value("dee", "USD"), 1_000_000),
            Posting(chart.revenue("breakage", "USD"), -1_000_000),
        ),
        actor="user:mallory",
        refs={"user_id": "dee", "run_date": "someday", "value_micros": "lots", "cutoff": "?"},
    )
    await in_transaction(sessions, lambda session: post_entry(session, garbled))
    async with sessions() as session:
        report = await integrity.check_integrity(session)
    assert sorted((v.check, v.detail.split()[3]) for v in report.violations) == [
        ("breakage_recognises_a_whole_wallet", "(breakage:forged:cy)"),
        ("breakage_recognises_a_whole_wallet", "(breakage:forged:dee)"),
        ("breakage_wallet_was_dormant", "(breakage:forged:cy):"),
        ("breakage_wallet_was_dormant", "(breakage:forged:dee):"),
    ]


async def test_each_run_is_audited_with_its_totals(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    await buy(purchases, "ana", "ana-buys-0001")
    as_of = await last_moved_on(sessions, "ana") + timedelta(days=730)
    done = await run(sessions, as_of, actor="user:fiona")
    async with sessions() as session:
        row = await session.scalar(select(AuditRow).where(AuditRow.action == "breakage.recognised"))
    assert row is not None
    assert (row.actor, row.subject) == ("user:fiona", f"breakage:{as_of}")
    assert row.details["wallets"] == 1
    assert (row.details["coins"], row.details["value_micros"]) == (350, 4_990_000)
    assert row.details["entry_ids"] == [done.wallets[0].entry_id]
    assert row.details["after_days"] == 730


async def test_a_run_racing_gifts_from_the_wallet_never_recognises_value_twice(
    sessions: async_sessionmaker[AsyncSession],
    racing: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    """Ana holds 350 coins worth $4.99; a run (dated two years on) races ten one-rose gifts of
    hers. Each gift either comes first and releases its share, or comes after the run and
    releases nothing: whatever the order, what the gifts released plus what breakage took is
    exactly her 4,990,000, and her wallet ends with 340 coins and no value."""
    await buy(purchases, "ana", "ana-buys-0001")
    stream = await in_transaction(sessions, lambda s: start_stream(s, "bo", "Bo plays piano"))
    as_of = await last_moved_on(sessions, "ana") + timedelta(days=730)
    gifts = GiftService(racing, functional_currency="USD", hold=timedelta(0))

    work: list[Callable[[], Awaitable[object]]] = [
        partial(gifts.send_gift, GiftRequest("ana", f"ana-rose-{n:04}", stream.id, "rose", 1))
        for n in range(10)
    ]
    work.insert(5, partial(run, racing, as_of))
    results = await race(work)
    assert not [r for r in results if isinstance(r, Exception)], results
    runs = [r for r in results if isinstance(r, BreakageRun)]
    released = sum(r.gift.value_micros for r in results if isinstance(r, GiftResult))
    broken = sum(w.value_micros for w in runs[0].wallets)
    assert released + broken == 4_990_000
    assert await wallet(sessions, "ana") == (340, 0)
    async with sessions() as session:
        report = await integrity.check_integrity(session)
    assert report.ok, report.violations
