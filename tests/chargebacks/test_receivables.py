"""A receivable written off: what a user owes after a chargeback, given up as a fraud loss.

The book: Mallory buys 1,000 coins with a stolen card (price P) and gifts 300 of them to Shady;
the gift leaves its hold at once, so its diamonds stay with Shady. The card's owner disputes
the charge: the 700 coins Mallory holds are clawed back, and the 300 she spent cost the
platform 300/1,000 of P, which the receivable policy books to her: ``user:mallory:receivable``
= P × 300 / 1,000 (she owes it). Finance gives up claiming it: one entry moves the whole of it
to ``platform:expense:fraud_losses``; the receivable is then zero, fraud losses P × 300 / 1,000,
and the books still balance. A second write-off finds nothing owed; the same key replays."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.errors import NothingOwed
from accounting.chargebacks.receivables import WriteOff, WriteOffRequest, write_off_receivable
from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger import chart
from accounting.ledger.errors import InvalidReason
from accounting.ledger.posting import in_transaction
from accounting.ledger.tables import AccountRow
from accounting.policy.tables import AuditRow
from accounting.purchases.service import PurchaseService
from tests.chargebacks.test_chargeback_tracing import buy, integrity_violations, take_back
from tests.conftest import GraphQLClient, race

FIN = "user:fin"
RECEIVABLE = chart.user_receivable("mallory", "USD").code
FRAUD = chart.fraud_losses("USD").code


async def balance(sessions: async_sessionmaker[AsyncSession], code: str) -> int:
    async with sessions() as session:
        found = await session.scalar(select(AccountRow.balance).where(AccountRow.code == code))
    return found or 0


async def mallory_owes(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> int:
    """The book above, up to the chargeback: what Mallory owes, P × 300 / 1,000."""
    stolen = await buy(purchases, "mallory", 1_000)
    stream = await in_transaction(sessions, lambda s: start_stream(s, "shady", "legit"))
    gifts = GiftService(sessions, hold=timedelta(0))
    await gifts.send_gift(GiftRequest("mallory", uuid.uuid4().hex, stream.id, "hand_hearts", 3))
    assert await release_due(sessions) == 1
    await take_back(sessions, stolen.id)
    price_micros = stolen.price_minor * 10_000
    owed = await balance(sessions, RECEIVABLE)
    assert owed == round(price_micros * 300 / 1_000) > 0
    return owed


def write_off(key: str = "write-off-0001", reason: str = "card thief, gone") -> WriteOffRequest:
    return WriteOffRequest("mallory", key, FIN, reason)


async def test_finance_writes_off_the_whole_receivable_once(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    owed = await mallory_owes(sessions, purchases)
    fraud_before = await balance(sessions, FRAUD)

    with pytest.raises(InvalidReason):
        await write_off_receivable(sessions, write_off(reason=" "), "USD")
    done = await write_off_receivable(sessions, write_off(), "USD")
    assert (done.amount_micros, done.replayed) == (owed, False)
    assert await balance(sessions, RECEIVABLE) == 0
    assert await balance(sessions, FRAUD) == fraud_before + owed

    again = await write_off_receivable(sessions, write_off(), "USD")
    assert (again.entry_id, again.amount_micros, again.replayed) == (done.entry_id, owed, True)
    with pytest.raises(NothingOwed):
        await write_off_receivable(sessions, write_off("write-off-0002"), "USD")
    async with sessions() as session:
        audited = (await session.scalars(select(AuditRow))).all()
    assert [(a.actor, a.action, a.subject, a.reason) for a in audited][-1] == (
        FIN,
        "receivable.written_off",
        "user:mallory",
        "card thief, gone",
    )
    assert [a.action for a in audited].count("receivable.written_off") == 1
    assert await integrity_violations(sessions) == []


async def test_two_finance_people_writing_it_off_at_once_write_it_off_once(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    owed = await mallory_owes(sessions, purchases)

    def attempt(n: int) -> Callable[[], Awaitable[WriteOff]]:
        request = write_off(f"write-off-{n:04d}")
        return lambda: write_off_receivable(sessions, request, "USD")

    results = await race(attempt(n) for n in range(5))
    written = [r for r in results if not isinstance(r, Exception)]
    assert [w.amount_micros for w in written] == [owed]
    assert all(isinstance(r, NothingOwed) for r in results if r not in written)
    assert await balance(sessions, RECEIVABLE) == 0
    assert await integrity_violations(sessions) == []


async def test_nobody_owing_nothing_is_written_off(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(NothingOwed):
        await write_off_receivable(sessions, write_off(), "USD")


WRITE_OFF = """
mutation WriteOff($input: WriteOffReceivableInput!) {
  writeOffReceivable(input: $input) {
    writeOff { userId amount { amount currency } }
    replayed
    errors { code message field }
  }
}
"""


@pytest.mark.parametrize("roles", [("viewer",), ("creator",), ("support",), ("admin",)])
async def test_only_finance_writes_off_receivables(
    gql: GraphQLClient, roles: tuple[str, ...]
) -> None:
    variables = {"input": {"userId": "mallory", "reason": "x", "idempotencyKey": "write-off-9"}}
    reply = await gql(WRITE_OFF, variables, user="ana", roles=roles)
    assert reply["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_finance_writes_off_over_graphql(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    owed = await mallory_owes(sessions, purchases)
    variables = {
        "input": {"userId": "mallory", "reason": "gone", "idempotencyKey": "write-off-0001"}
    }
    reply = await gql(WRITE_OFF, variables, user="fin", roles=("finance",))
    payload = reply["data"]["writeOffReceivable"]
    assert payload["errors"] == [] and payload["replayed"] is False
    assert payload["writeOff"]["amount"]["currency"] == "USD"
    assert int(float(payload["writeOff"]["amount"]["amount"]) * 1_000_000) == owed
    nothing = await gql(
        WRITE_OFF,
        {"input": {**variables["input"], "idempotencyKey": "write-off-0002"}},
        user="fin",
        roles=("finance",),
    )
    error = nothing["data"]["writeOffReceivable"]["errors"][0]
    assert (error["code"], error["field"]) == ("NOTHING_OWED", "userId")
