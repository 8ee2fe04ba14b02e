"""Chargebacks, enforced by PostgreSQL itself: raw SQL around the Python layer cannot delete a
chargeback or rewrite what it clawed back, resolve a dispute other than open -> won | lost once,
start a chargeback in any state but the one its kind starts in, claw diamonds back from a gift
that left its hold, from another creator's gift or beyond the coins the gift has left, or edit
a clawback, a provider event or a refused webhook delivery. After every refusal the books and
the chargeback records are exactly as they were. What the database accepts but should not
happen (a dispute marked won by hand), the integrity check finds."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.provider_events import (
    Refusal,
    WebhookRefused,
    accept_event,
    read_event,
    record_refusal,
)
from accounting.chargebacks.rules import LossPolicy
from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger.posting import in_transaction
from accounting.purchases.service import PurchaseRequest, PurchaseService
from api.database import libpq_url
from tests.chargebacks.deliveries import apple_refund, dispute
from tests.ledger.test_database_invariants import Books, found, integrity, read_books

Refused = asyncpg.RestrictViolationError


@dataclass(frozen=True)
class Records:
    """The chargeback tables, to compare before and after a refused statement."""

    books: Books
    chargebacks: tuple[tuple[Any, ...], ...]
    clawbacks: tuple[tuple[Any, ...], ...]
    events: tuple[tuple[Any, ...], ...]
    rejections: tuple[tuple[Any, ...], ...]


async def read_records(raw: asyncpg.Connection) -> Records:
    async def rows(sql: str) -> tuple[tuple[Any, ...], ...]:
        return tuple(tuple(row) for row in await raw.fetch(sql))

    return Records(
        books=await read_books(raw),
        chargebacks=await rows("SELECT * FROM chargeback ORDER BY id"),
        clawbacks=await rows("SELECT * FROM chargeback_clawback ORDER BY chargeback_id, gift_id"),
        events=await rows("SELECT * FROM provider_event ORDER BY id"),
        rejections=await rows("SELECT * FROM webhook_refusal ORDER BY id"),
    )


@dataclass(frozen=True)
class Case:
    """What the attacks aim at."""

    dispute: int
    """Mallory's card purchase disputed: open, 500 coins of a pending gift clawed back."""
    final: int
    """Vic's Apple purchase refunded by Apple: final, nothing clawed back."""
    spare_purchase: int
    """Cy's purchase, never charged back."""
    released_gift: int
    """Mallory's 300-coin gift to Shady, out of its hold (traced to, not clawed from)."""
    clawed_gift: int
    """Mallory's 500-coin gift to Shady, in its hold, every coin claimed by the dispute."""
    spare_gift: int
    """Cy's 100-coin gift to Shady, in its hold, claimed by nobody."""


@pytest.fixture
async def raw(db_url: URL) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(libpq_url(db_url))
    try:
        yield connection
    finally:
        await connection.close()


async def deliver(
    sessions: async_sessionmaker[AsyncSession], provider: str, event: dict[str, Any]
) -> str:
    """A provider event accepted as the webhook accepts it; its outcome."""
    accepted = await accept_event(
        sessions,
        read_event(provider, json.dumps(event).encode()),
        signed_at=datetime.now(UTC),
        functional_currency="USD",
        loss_policy=LossPolicy.RECEIVABLE,
    )
    return accepted.event.outcome


async def reference(raw: asyncpg.Connection, purchase_id: int) -> str:
    found: str = await raw.fetchval(
        "SELECT provider_reference FROM purchase WHERE id = $1", purchase_id
    )
    return found


@pytest.fixture
async def case(
    raw: asyncpg.Connection,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> Case:
    """Mallory buys 1,000 coins by card and gifts Shady 300 (out of its hold) and 500 (in it);
    her card's owner disputes the charge: the 500 pending diamonds are clawed back. Vic buys
    coins from Apple and Apple refunds them. Cy buys coins and gifts Shady 100 (in its hold).
    One delivery was refused unread."""

    async def buy(user: str, **how: Any) -> int:
        fields: dict[str, Any] = {
            "currency": "USD",
            "channel": "web",
            "provider": "card",
            "payment_token": "tok_success",
        }
        fields.update(how)
        result = await purchases.purchase_coins(PurchaseRequest(user, uuid.uuid4().hex, **fields))
        assert result.purchase.status == "completed"
        return result.purchase.id

    at_once = GiftService(sessions, hold=timedelta(0))
    held = GiftService(sessions, hold=timedelta(days=7))
    stream = await in_transaction(sessions, lambda s: start_stream(s, "shady", "live"))

    async def send(service: GiftService, sender: str, code: str, quantity: int) -> int:
        request = GiftRequest(sender, uuid.uuid4().hex, stream.id, code, quantity)
        return (await service.send_gift(request)).gift.id

    stolen = await buy("mallory", custom_coins=1_000)
    released_gift = await send(at_once, "mallory", "hand_hearts", 3)
    assert await release_due(sessions) == 1
    clawed_gift = await send(held, "mallory", "money_gun", 1)
    refunded = await buy("vic", channel="ios", provider="apple", package_code="coins_350")
    spare_purchase = await buy("cy", package_code="coins_350")
    spare_gift = await send(held, "cy", "hand_hearts", 1)

    price = await raw.fetchval("SELECT price_minor FROM purchase WHERE id = $1", stolen)
    event = dispute(await reference(raw, stolen), amount=price, fee=1500, dispute_id="dp_raw")
    assert await deliver(sessions, "card", event) == "charged_back"
    assert await deliver(sessions, "apple", apple_refund(await reference(raw, refunded))) == (
        "charged_back"
    )
    await record_refusal(
        sessions,
        provider="card",
        refusal=WebhookRefused(Refusal.BAD_SIGNATURE, "The signature does not match the body"),
        body=b'{"id": "evt_forged"}',
        client="203.0.113.7",
    )
    ids = {
        row["purchase_id"]: row["id"]
        for row in await raw.fetch("SELECT id, purchase_id FROM chargeback")
    }
    clawbacks = await raw.fetch("SELECT chargeback_id, gift_id, coins FROM chargeback_clawback")
    assert [tuple(row) for row in clawbacks] == [(ids[stolen], clawed_gift, 500)]
    assert (await integrity(sessions)).violations == []
    return Case(
        dispute=ids[stolen],
        final=ids[refunded],
        spare_purchase=spare_purchase,
        released_gift=released_gift,
        clawed_gift=clawed_gift,
        spare_gift=spare_gift,
    )


async def refused(
    raw: asyncpg.Connection,
    statement: str,
    *args: Any,
    error: type[Exception] = Refused,
    match: str,
) -> None:
    """``statement`` is refused with ``error`` and a message matching ``match``, and the books
    and the chargeback records are as they were."""
    before = await read_records(raw)
    with pytest.raises(error, match=match):
        async with raw.transaction():
            await raw.execute(statement, *args)
    assert await read_records(raw) == before


# ---------------------------------------------------------------------------------------------
# A chargeback is never deleted
# ---------------------------------------------------------------------------------------------


async def test_a_chargeback_is_never_deleted(raw: asyncpg.Connection, case: Case) -> None:
    for statement in (
        "DELETE FROM chargeback",
        "DELETE FROM chargeback WHERE status = 'final'",
        "TRUNCATE chargeback CASCADE",
        "TRUNCATE chargeback, chargeback_clawback, chargeback_trace, provider_event",
    ):
        await refused(
            raw, statement, match="chargebacks are never deleted|is append-only: TRUNCATE refused"
        )


# ---------------------------------------------------------------------------------------------
# A dispute resolves once: open -> won | lost; won only with the entry that undoes it
# ---------------------------------------------------------------------------------------------

OPEN_EDITS: dict[str, tuple[str, type[Exception], str]] = {
    "won_without_its_entry": (
        "status = 'won', resolved_at = now()",
        Refused,
        "is won exactly when its undoing entry exists",
    ),
    "won_without_a_time": (
        "status = 'won', won_entry_id = entry_id",
        Refused,
        "is open: it cannot become won",
    ),
    "lost_without_a_time": ("status = 'lost'", Refused, "is open: it cannot become lost"),
    "lost_with_a_won_entry": (
        "status = 'lost', resolved_at = now(), won_entry_id = entry_id",
        asyncpg.CheckViolationError,
        "ck_chargeback_won_entry",
    ),
    "made_final": ("status = 'final', resolved_at = now()", Refused, "cannot become final"),
    "smaller_loss": ("loss_micros = 0", Refused, "is open: it cannot become open"),
    "other_buyer": ("user_id = 'vic'", Refused, "is open: it cannot become open"),
    "lost_and_fewer_coins": (
        "status = 'lost', resolved_at = now(), coins_clawed = 0",
        Refused,
        "clawed back cannot change",
    ),
    "lost_and_another_policy": (
        "status = 'lost', resolved_at = now(), loss_booked_to = 'fraud_loss'",
        Refused,
        "clawed back cannot change",
    ),
    "lost_and_another_entry": (
        "status = 'lost', resolved_at = now(),"
        " entry_id = (SELECT entry_id FROM purchase WHERE id = purchase_id)",
        Refused,
        "clawed back cannot change",
    ),
}


async def test_an_open_dispute_becomes_won_or_lost_and_nothing_else(
    raw: asyncpg.Connection, case: Case
) -> None:
    for change, error, message in OPEN_EDITS.values():
        await refused(
            raw,
            f"UPDATE chargeback SET {change} WHERE id = $1",
            case.dispute,
            error=error,
            match=message,
        )
    assert await raw.fetchval("SELECT status FROM chargeback WHERE id = $1", case.dispute) == "open"


RESOLVED_EDITS: dict[str, str] = {
    "won_after_all": "status = 'won', won_entry_id = entry_id, resolved_at = now()",
    "reopened": "status = 'open', resolved_at = NULL",
    "lost_again": "status = 'lost', resolved_at = now()",
    "made_final": "status = 'final'",
    "reason": "reason = 'edited'",
}


async def test_a_lost_dispute_is_lost_for_good(raw: asyncpg.Connection, case: Case) -> None:
    """The control first: an open dispute may be marked lost, once. Then nothing about it
    changes again."""
    await raw.execute(
        "UPDATE chargeback SET status = 'lost', resolved_at = now() WHERE id = $1", case.dispute
    )
    for edit in RESOLVED_EDITS.values():
        await refused(
            raw,
            f"UPDATE chargeback SET {edit} WHERE id = $1",
            case.dispute,
            match=rf"chargeback {case.dispute} is lost: it cannot become",
        )


async def test_a_final_chargeback_never_changes(raw: asyncpg.Connection, case: Case) -> None:
    """An Apple refund is no dispute: it is final from the start."""
    for edit in RESOLVED_EDITS.values():
        await refused(
            raw,
            f"UPDATE chargeback SET {edit} WHERE id = $1",
            case.final,
            match=rf"chargeback {case.final} is final: it cannot become",
        )


async def test_a_dispute_won_stays_won(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession], case: Case
) -> None:
    purchase = await raw.fetchval("SELECT purchase_id FROM chargeback WHERE id = $1", case.dispute)
    price = await raw.fetchval("SELECT price_minor FROM purchase WHERE id = $1", purchase)
    won = dispute(
        await reference(raw, purchase), amount=price, status="won", closed=True, dispute_id="dp_raw"
    )
    assert await deliver(sessions, "card", won) == "dispute_won"
    for edit in (
        "status = 'lost', resolved_at = now(), won_entry_id = NULL",
        "status = 'open', resolved_at = NULL, won_entry_id = NULL",
        "won_entry_id = entry_id",
        "resolved_at = now()",
    ):
        await refused(
            raw,
            f"UPDATE chargeback SET {edit} WHERE id = $1",
            case.dispute,
            match=rf"chargeback {case.dispute} is won: it cannot become",
        )
    assert (await integrity(sessions)).violations == []


# ---------------------------------------------------------------------------------------------
# A chargeback starts as its kind says: a dispute open, anything else final
# ---------------------------------------------------------------------------------------------

INSERT_CHARGEBACK = """
INSERT INTO chargeback (purchase_id, user_id, provider, kind, case_id, reason, entry_id,
                        currency, cash_minor, value_paid_micros, coins_clawed, coins_spent,
                        value_released_micros, diamonds_clawed, payable_clawed_micros,
                        loss_micros, loss_booked_to, contra_revenue_micros, status,
                        created_at, resolved_at)
SELECT p.id, p.user_id, p.provider, $2, 'forged', '', p.entry_id, p.currency, p.price_minor,
       0, 0, 0, 0, 0, 0, 0, 'receivable', 0, $3, now(), $4
  FROM purchase p WHERE p.id = $1"""


async def test_a_chargeback_starts_open_if_a_dispute_and_final_otherwise(
    raw: asyncpg.Connection, case: Case
) -> None:
    for kind, status, resolved in (
        ("voided", "open", False),
        ("app_store_refund", "open", False),
        ("provider_refund", "lost", True),
        ("voided", "won", True),
        ("dispute", "final", False),
        ("dispute", "won", True),
        ("dispute", "lost", True),
        ("dispute", "open", True),
        ("voided", "final", True),
    ):
        await refused(
            raw,
            INSERT_CHARGEBACK,
            case.spare_purchase,
            kind,
            status,
            datetime.now(UTC) if resolved else None,
            match=f"a {kind} chargeback cannot start {status}",
        )


@pytest.mark.parametrize(("kind", "status"), [("voided", "final"), ("dispute", "open")])
async def test_a_chargeback_written_by_hand_is_found_by_the_integrity_check(
    raw: asyncpg.Connection,
    sessions: async_sessionmaker[AsyncSession],
    case: Case,
    kind: str,
    status: str,
) -> None:
    """The control for the refusals above: a chargeback in the state its kind starts in is
    accepted, and the integrity check sees that it has no chargeback entry behind it, and
    that the entry it names did not move what it says."""
    await raw.execute(INSERT_CHARGEBACK, case.spare_purchase, kind, status, None)
    checks = found(await integrity(sessions))
    assert set(checks) == {"chargeback_posted_once", "chargeback_moved_what_it_says"}, checks
    assert checks["chargeback_posted_once"] == [
        f"chargeback {await raw.fetchval('SELECT max(id) FROM chargeback')} of purchase"
        f" {case.spare_purchase} has entry"
        f" {await raw.fetchval('SELECT entry_id FROM purchase WHERE id = $1', case.spare_purchase)}"
        f" keyed purchase:{case.spare_purchase}"
    ]


# ---------------------------------------------------------------------------------------------
# A clawback takes diamonds from a gift in its hold, of its creator, within its coins
# ---------------------------------------------------------------------------------------------

INSERT_CLAWBACK = (
    "INSERT INTO chargeback_clawback (chargeback_id, gift_id, creator_id, coins, diamonds,"
    " payable_micros) VALUES ($1, $2, $3, $4::bigint, $4::bigint, $4::bigint * 5000)"
)


async def test_a_clawback_comes_from_a_gift_in_its_hold_of_its_creator_within_its_coins(
    raw: asyncpg.Connection, case: Case
) -> None:
    """A gift out of its hold gives nothing back; nor does another creator's gift. The dispute
    claims every coin of Mallory's 500-coin gift: no other chargeback may claim one more.
    Cy's 100-coin gift is claimed by nobody: 101 coins of it are too many. And there is no
    clawback from a gift that does not exist."""
    attempts: list[tuple[int, str, int, type[Exception], str]] = [
        (
            case.released_gift,
            "shady",
            1,
            Refused,
            rf"gift {case.released_gift} was released from hold: its diamonds can no longer",
        ),
        (case.spare_gift, "dee", 1, Refused, rf"gift {case.spare_gift} went to shady, not dee"),
        (
            case.clawed_gift,
            "shady",
            1,
            asyncpg.CheckViolationError,
            rf"gift {case.clawed_gift} is 500 coins; chargebacks claim 501 of them",
        ),
        (
            case.spare_gift,
            "shady",
            101,
            asyncpg.CheckViolationError,
            rf"gift {case.spare_gift} is 100 coins; chargebacks claim 101 of them",
        ),
        (case.spare_gift + 1000, "shady", 1, asyncpg.ForeignKeyViolationError, "gift"),
    ]
    for gift, creator, coins, error, message in attempts:
        await refused(
            raw, INSERT_CLAWBACK, case.final, gift, creator, coins, error=error, match=message
        )


async def test_a_clawback_within_the_rules_is_accepted_and_found_by_the_integrity_check(
    raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession], case: Case
) -> None:
    """The control for the refusals above: every coin of Cy's gift, from its creator, while it
    is in its hold, is accepted; the integrity check sees the chargeback no longer adds up and
    Shady's pending diamonds no longer match the gifts'."""
    await raw.execute(INSERT_CLAWBACK, case.final, case.spare_gift, "shady", 100)
    checks = found(await integrity(sessions))
    assert set(checks) == {"chargeback_moved_what_it_says", "creator_pending_is_unreleased_gifts"}


# ---------------------------------------------------------------------------------------------
# Clawbacks, provider events and refused deliveries are append-only
# ---------------------------------------------------------------------------------------------

APPEND_ONLY: dict[str, str] = {
    "chargeback_clawback": "UPDATE chargeback_clawback SET coins = coins - 1",
    "chargeback_trace": "UPDATE chargeback_trace SET coins = coins + 1",
    "provider_event": "UPDATE provider_event SET outcome = 'ignored'",
}

REFUSAL_COUNTS_GO_BACK: dict[str, str] = {
    "its key": "UPDATE webhook_refusal SET reason = 'BAD_SIGNATURE_'",
    "its sample": "UPDATE webhook_refusal SET sample_client = NULL, sample_detail = ''",
    "its first delivery": "UPDATE webhook_refusal SET first_seen_at = now() + interval '1 h'",
    "a count": "UPDATE webhook_refusal SET deliveries = deliveries - 1",
    "the bytes": "UPDATE webhook_refusal SET body_bytes = body_bytes - 1",
    "the last delivery": "UPDATE webhook_refusal SET last_seen_at = last_seen_at - interval '1 s'",
}


async def test_clawbacks_provider_events_and_rejections_are_append_only(
    raw: asyncpg.Connection, case: Case
) -> None:
    for table, update in APPEND_ONLY.items():
        assert await raw.fetchval(f"SELECT count(*) FROM {table}") > 0
        for operation, statement in (
            ("UPDATE", update),
            ("DELETE", f"DELETE FROM {table}"),
            ("TRUNCATE", f"TRUNCATE {table}"),
        ):
            await refused(raw, statement, match=f"{table} is append-only: {operation} refused")


async def test_the_counts_of_refused_deliveries_only_grow(
    raw: asyncpg.Connection, case: Case
) -> None:
    assert await raw.fetchval("SELECT count(*) FROM webhook_refusal") > 0
    for statement in REFUSAL_COUNTS_GO_BACK.values():
        await refused(raw, statement, match="only counts on")
    await refused(raw, "DELETE FROM webhook_refusal", match="DELETE refused")
    await refused(raw, "TRUNCATE webhook_refusal", match="webhook_refusal is append-only")
    grown = await raw.execute(
        "UPDATE webhook_refusal SET deliveries = deliveries + 1, body_bytes = body_bytes + 10,"
        " last_seen_at = last_seen_at + interval '1 s'"
    )
    assert grown.startswith("UPDATE ")


# ---------------------------------------------------------------------------------------------
# What the database lets a table owner do, the integrity check finds
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["its_own_entry", "the_purchase_entry", "a_fee_entry"])
async def test_a_dispute_is_won_only_with_the_entry_that_undoes_it(
    raw: asyncpg.Connection, case: Case, entry: str
) -> None:
    """Won needs the entry that undoes the chargeback (``chargeback:<purchase>:won``): marked
    won with any other entry, which moves no money back, the dispute is refused."""
    won_entry = {
        "its_own_entry": "entry_id",
        "the_purchase_entry": "(SELECT entry_id FROM purchase WHERE id = purchase_id)",
        "a_fee_entry": "(SELECT id FROM journal_entry WHERE kind = 'dispute_fee')",
    }[entry]
    await refused(
        raw,
        f"UPDATE chargeback SET status = 'won', won_entry_id = {won_entry},"
        " resolved_at = now() WHERE id = $1",
        case.dispute,
        match="is won exactly when its undoing entry",
    )
