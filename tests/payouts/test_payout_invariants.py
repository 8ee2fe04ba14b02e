"""Payouts, enforced by PostgreSQL itself: raw SQL around the Python layer cannot resolve a
payout twice, skip or reorder its phases, change what it redeems, or overdraw a creator's
available or reserved diamonds. And the integrity check finds books a table owner corrupted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.payouts.rules import PayoutPhase
from accounting.payouts.service import PayoutService
from accounting.purchases.service import PurchaseService
from api.database import libpq_url
from tests.ledger.test_database_invariants import (
    corrupt,
    found,
    insert_entry,
    insert_postings,
    integrity,
    read_books,
)
from tests.payouts.support import (
    ReadyCreator,
    advance,
    check_books,
    earn,
    make_ready,
    payout_service,
)

AVAILABLE = "creator:bo:diamonds:available"
RESERVED = "creator:bo:diamonds:reserved"
REDEEMED = "platform:diamonds:redeemed"
Refused = asyncpg.RestrictViolationError


@pytest.fixture
async def raw(db_url: URL) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(libpq_url(db_url))
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def payouts(sessions: async_sessionmaker[AsyncSession]) -> PayoutService:
    return payout_service(sessions)


@pytest.fixture
async def bo(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> ReadyCreator:
    await earn(sessions, purchases, "bo", 4)
    return await make_ready(sessions, "bo")


async def payout_in(
    payouts: PayoutService, bo: ReadyCreator, key: str, *phases: PayoutPhase
) -> int:
    payout = (await payouts.request_payout(bo.request(key, 2_000))).payout
    for phase in phases:
        await advance(payouts, payout.id, phase, "because")
    return payout.id


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE payout SET status = 'rejected' WHERE id = $1", "payout {id} is paid"),
        ("UPDATE payout SET status = 'sent' WHERE id = $1", "payout {id} is paid"),
        ("UPDATE payout SET amount_micros = 1 WHERE id = $1", "payout {id} is paid"),
        ("DELETE FROM payout WHERE id = $1", "payouts are never deleted"),
        (
            "INSERT INTO payout_event (payout_id, phase, actor, idempotency_key, request_hash,"
            " entry_id, created_at) SELECT $1, 'failed', 'user:mallory', 'second-resolution',"
            " 'x', min(id), now() FROM journal_entry",
            "payout {id} is paid: it cannot be failed",
        ),
        ("UPDATE payout_event SET reason = 'nothing' WHERE payout_id = $1", "append-only"),
        ("DELETE FROM payout_event WHERE payout_id = $1", "append-only"),
    ],
)
async def test_a_paid_payout_cannot_be_resolved_again_or_changed(
    raw: asyncpg.Connection,
    payouts: PayoutService,
    bo: ReadyCreator,
    statement: str,
    message: str,
) -> None:
    payout_id = await payout_in(payouts, bo, "bo-payout-0001", PayoutPhase.SENT, PayoutPhase.PAID)
    before = await read_books(raw)
    with pytest.raises(Refused) as refused:
        await raw.execute(statement, payout_id)
    assert message.format(id=payout_id) in str(refused.value)
    assert await read_books(raw) == before
    assert await raw.fetchval("SELECT status FROM payout WHERE id = $1", payout_id) == "paid"


async def test_a_phase_needs_its_event_and_comes_in_order(
    raw: asyncpg.Connection, payouts: PayoutService, bo: ReadyCreator
) -> None:
    requested = await payout_in(payouts, bo, "bo-payout-0001")
    with pytest.raises(
        asyncpg.RestrictViolationError, match="cannot become sent without its sent event"
    ):
        await raw.execute("UPDATE payout SET status = 'sent' WHERE id = $1", requested)
    with pytest.raises(Refused, match="is requested: it cannot become paid"):
        await raw.execute("UPDATE payout SET status = 'paid' WHERE id = $1", requested)
    with pytest.raises(Refused, match="a payout starts requested, not paid"):
        await raw.execute(
            "INSERT INTO payout (creator_id, idempotency_key, request_hash, method_id,"
            " diamonds_requested, diamonds, currency, amount_micros, status, created_at,"
            " updated_at) SELECT creator_id, 'forged-paid', request_hash, method_id,"
            " 1, 1, currency, 1, 'paid', now(), now() FROM payout WHERE id = $1",
            requested,
        )


async def test_a_second_rejection_is_refused_by_the_unique_phase(
    raw: asyncpg.Connection, payouts: PayoutService, bo: ReadyCreator
) -> None:
    """Even with the guard trigger switched off, a payout has one event per phase and one
    entry per event key."""
    rejected = await payout_in(payouts, bo, "bo-payout-0001", PayoutPhase.REJECTED)
    with pytest.raises(asyncpg.UniqueViolationError) as refused:
        async with raw.transaction():
            await raw.execute("ALTER TABLE payout_event DISABLE TRIGGER payout_event_guard")
            await raw.execute(
                "INSERT INTO payout_event (payout_id, phase, actor, idempotency_key,"
                " request_hash, entry_id, created_at) SELECT $1, 'rejected', 'user:mallory',"
                " 'second-rejection', 'x', max(id), now() FROM journal_entry",
                rejected,
            )
    assert refused.value.constraint_name in {
        "uq_payout_event_payout_id_phase",
        "uq_payout_event_entry_id",
    }
    with pytest.raises(asyncpg.UniqueViolationError) as duplicate:
        await insert_entry(raw, f"payout:{rejected}:rejected", kind="payout")
    assert duplicate.value.constraint_name == "uq_journal_entry_event_key"


async def test_reserved_and_available_diamonds_cannot_be_overdrawn_by_raw_postings(
    raw: asyncpg.Connection, payouts: PayoutService, bo: ReadyCreator
) -> None:
    """Bo has 2,000 diamonds reserved and 2,000 available. Redeeming 2,001 reserved diamonds,
    or reserving 2,001 available ones, is refused at once by the account row's CHECK."""
    await payout_in(payouts, bo, "bo-payout-0001")
    before = await read_books(raw)
    for source, target in ((RESERVED, REDEEMED), (AVAILABLE, RESERVED)):
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            async with raw.transaction():
                entry = await insert_entry(raw, f"raw:overdraw:{source}", kind="payout")
                await insert_postings(raw, entry, [(source, 2_001), (target, -2_001)])
        assert refused.value.constraint_name == "ck_account_no_overdraft"
        assert await read_books(raw) == before


# --- the integrity check, on books a table owner corrupted ---------------------------------------


async def test_real_payouts_in_every_phase_pass_every_check(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    payouts: PayoutService,
    bo: ReadyCreator,
) -> None:
    await earn(sessions, purchases, "bo", 6, viewer="eve")  # 10,000 diamonds in all
    await payout_in(payouts, bo, "bo-payout-0001")
    await payout_in(payouts, bo, "bo-payout-0002", PayoutPhase.REJECTED)
    await payout_in(payouts, bo, "bo-payout-0003", PayoutPhase.SENT)
    await payout_in(payouts, bo, "bo-payout-0004", PayoutPhase.SENT, PayoutPhase.PAID)
    await payout_in(payouts, bo, "bo-payout-0005", PayoutPhase.SENT, PayoutPhase.FAILED)
    await check_books(sessions)


async def test_a_payout_whose_status_skips_its_phases_is_found(
    raw: asyncpg.Connection,
    sessions: async_sessionmaker[AsyncSession],
    payouts: PayoutService,
    bo: ReadyCreator,
) -> None:
    payout_id = await payout_in(payouts, bo, "bo-payout-0001")
    await corrupt(raw, "payout", "UPDATE payout SET status = 'paid' WHERE id = $1", payout_id)
    assert found(await integrity(sessions)) == {
        "payout_status_follows_its_phases": [
            f"payout {payout_id} is paid; its phases are requested"
        ],
        "creator_reserved_is_requested_payouts": [
            "creator bo has 2000 diamonds reserved; their requested payouts hold 0"
        ],
    }


async def test_a_payout_entry_without_its_phase_is_found(
    raw: asyncpg.Connection,
    sessions: async_sessionmaker[AsyncSession],
    payouts: PayoutService,
    bo: ReadyCreator,
) -> None:
    """Bo's payout event deleted: its entry reserved 2,000 diamonds for nothing."""
    payout_id = await payout_in(payouts, bo, "bo-payout-0001")
    entry_id = await raw.fetchval(
        "SELECT entry_id FROM payout_event WHERE payout_id = $1", payout_id
    )
    await corrupt(raw, "payout_event", "DELETE FROM payout_event WHERE payout_id = $1", payout_id)
    assert found(await integrity(sessions)) == {
        "payout_entry_belongs_to_a_phase": [
            f"entry {entry_id} (payout:{payout_id}:requested) is no payout phase"
        ],
        "payout_status_follows_its_phases": [
            f"payout {payout_id} is requested; its phases are none"
        ],
    }


async def test_a_payout_that_says_it_redeems_more_than_its_entries_moved_is_found(
    raw: asyncpg.Connection,
    sessions: async_sessionmaker[AsyncSession],
    payouts: PayoutService,
    bo: ReadyCreator,
) -> None:
    payout_id = await payout_in(payouts, bo, "bo-payout-0001", PayoutPhase.SENT)
    entries = dict(
        await raw.fetch("SELECT phase, entry_id FROM payout_event WHERE payout_id = $1", payout_id)
    )
    await corrupt(
        raw,
        "payout",
        "UPDATE payout SET diamonds = 2100, diamonds_requested = 2100,"
        " amount_micros = 10500000 WHERE id = $1",
        payout_id,
    )
    assert found(await integrity(sessions)) == {
        "payout_entry_moved_what_the_payout_says": [
            f"payout {payout_id} {phase}: entry {entry} moved (available, reserved, in transit,"
            f" payable, bank) {moved}, expected {expected}"
            for phase, entry, moved, expected in [
                ("requested", entries["requested"], "(2000,-2000,0,0,0)", "(2100,-2100,0,0,0)"),
                (
                    "sent",
                    entries["sent"],
                    "(0,2000,-10000000,10000000,0)",
                    "(0,2100,-10500000,10500000,0)",
                ),
            ]
        ],
        "payouts_in_transit_are_sent_payouts": [
            "USD in transit is 10000000 micro-units; the sent payouts hold 10500000"
        ],
    }
