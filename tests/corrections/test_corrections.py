"""Corrections by finance, in the domain: reversing a mistaken entry (only a plain transfer or a
manual adjustment; a flow's entry is refused with the flow's own correction), and adjusting
entries under maker-checker (proposed and checked by one finance person, posted only when
another approves, at most once). Every figure below is worked out in the test's text."""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.corrections import service
from accounting.corrections.errors import (
    AccountOwnedByFlow,
    EntryNotReversible,
    EntryOwnedByFlow,
    ProposalDecided,
    SelfApproval,
)
from accounting.corrections.rules import OWNED_BY_FLOW
from accounting.corrections.service import (
    ApprovalRequest,
    ProposalRequest,
    ProposedLine,
    RejectionRequest,
    ReversalRequest,
)
from accounting.corrections.tables import AdjustmentProposalRow, EntryReversalRow
from accounting.integrity import check_integrity
from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.errors import (
    AccountNotFound,
    AlreadyReversed,
    CommodityMismatch,
    EntryNotFound,
    IdempotencyKeyReused,
    InsufficientCoins,
    InvalidAmount,
    InvalidReason,
    LedgerError,
    UnbalancedEntry,
)
from accounting.ledger.posting import PostedEntry, in_transaction, post_entry
from accounting.ledger.tables import AccountRow, JournalEntryRow, PostingRow
from accounting.policy.tables import AuditRow
from accounting.purchases.service import PurchaseRequest, PurchaseService
from tests.conftest import race

BANK = chart.bank("USD")
CARD = chart.provider_clearing("card", "USD")
FEES = chart.fee_expense("card", "USD")
FIN_A = "user:fin-a"
FIN_B = "user:fin-b"

_keys = itertools.count(1)


def key() -> str:
    return f"correction-{next(_keys):06d}"


async def post(sessions: async_sessionmaker[AsyncSession], entry: Entry) -> PostedEntry:
    return await in_transaction(sessions, lambda session: post_entry(session, entry))


def settlement(event_key: str, micros: int) -> Entry:
    """A plain transfer: the card provider's clearing settled into the bank."""
    return Entry(
        EntryKind.TRANSFER,
        event_key,
        (Posting(BANK, micros), Posting(CARD, -micros)),
        actor="test:treasury",
    )


async def balances(sessions: async_sessionmaker[AsyncSession], entry_id: int) -> dict[str, int]:
    """The entry's amount on each account it moves."""
    async with sessions() as session:
        rows = await session.execute(
            select(AccountRow.code, PostingRow.amount)
            .join(PostingRow, PostingRow.account_id == AccountRow.id)
            .where(PostingRow.entry_id == entry_id)
        )
        return {code: amount for code, amount in rows}


async def count(sessions: async_sessionmaker[AsyncSession], table: type[object]) -> int:
    async with sessions() as session:
        found = await session.scalar(select(func.count()).select_from(table))
    assert found is not None
    return found


async def audit_actions(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str, str]]:
    async with sessions() as session:
        rows = await session.scalars(select(AuditRow).order_by(AuditRow.id))
        return [(row.actor, row.action, row.subject) for row in rows]


async def assert_books_clean(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        report = await check_integrity(session)
    assert report.ok, report.violations


def reversal(entry_id: int, reason: str = "posted twice by mistake", **kw: str) -> ReversalRequest:
    return ReversalRequest(
        entry_id=entry_id,
        idempotency_key=kw.get("idempotency_key", key()),
        actor=kw.get("actor", FIN_A),
        reason=reason,
    )


# --- reversals ----------------------------------------------------------------------------------


async def test_finance_reverses_a_transfer_exactly_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A settlement of $120.50 was booked (bank +120,500,000 micro-USD, card clearing
    -120,500,000) though no money came. Finance reverses it: the reversal posts exactly the
    negation (bank -120,500,000, clearing +120,500,000), refers to the original, and is recorded
    and audited; a second reversal, under another key, is refused."""
    original = await post(sessions, settlement("settle:1", 120_500_000))
    result = await service.reverse(sessions, reversal(original.id))
    assert not result.replayed
    row = result.reversal
    assert (row.entry_id, row.actor, row.reason) == (original.id, FIN_A, "posted twice by mistake")
    assert await balances(sessions, row.reversal_entry_id) == {
        BANK.code: -120_500_000,
        CARD.code: 120_500_000,
    }
    async with sessions() as session:
        entry = await session.get(JournalEntryRow, row.reversal_entry_id)
    assert entry is not None
    assert (entry.kind, entry.reverses_entry_id, entry.actor, entry.memo) == (
        "reversal",
        original.id,
        FIN_A,
        "posted twice by mistake",
    )
    assert await audit_actions(sessions) == [(FIN_A, "entry.reversed", f"entry:{original.id}")]

    with pytest.raises(AlreadyReversed) as refused:
        await service.reverse(sessions, reversal(original.id, actor=FIN_B))
    assert refused.value.code == "ALREADY_REVERSED"
    assert await count(sessions, JournalEntryRow) == 2
    await assert_books_clean(sessions)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entry_reversal SET reason = 'rewritten'",
        "DELETE FROM entry_reversal",
        "TRUNCATE entry_reversal",
    ],
)
async def test_a_recorded_reversal_is_never_rewritten_or_removed(
    sessions: async_sessionmaker[AsyncSession], statement: str
) -> None:
    """The record of who reversed what, and why, is history: the database refuses to change,
    delete or truncate it, whatever the caller."""
    original = await post(sessions, settlement("settle:1", 120_500_000))
    await service.reverse(sessions, reversal(original.id))
    with pytest.raises(DBAPIError, match="entry_reversal is append-only"):
        async with sessions() as session, session.begin():
            await session.execute(text(statement))
    async with sessions() as session:
        assert await session.scalar(select(EntryReversalRow.reason)) == "posted twice by mistake"


async def test_the_same_key_replays_the_reversal_and_another_entry_under_it_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await post(sessions, settlement("settle:1", 5_000_000))
    second = await post(sessions, settlement("settle:2", 7_000_000))
    request = reversal(first.id)
    made = await service.reverse(sessions, request)
    again = await service.reverse(sessions, request)
    assert again.replayed and again.reversal.id == made.reversal.id
    with pytest.raises(IdempotencyKeyReused):
        await service.reverse(
            sessions, reversal(second.id, idempotency_key=request.idempotency_key)
        )
    assert await count(sessions, JournalEntryRow) == 3
    assert await count(sessions, EntryReversalRow) == 1


@pytest.mark.parametrize("kind", sorted(OWNED_BY_FLOW), ids=str)
async def test_an_entry_a_flow_owns_is_not_reversed_behind_its_back(
    sessions: async_sessionmaker[AsyncSession], kind: EntryKind
) -> None:
    """An entry of each kind a flow keeps records of is refused, naming the flow; nothing is
    posted."""
    entry = Entry(kind, f"{kind}:1", (Posting(BANK, 1), Posting(CARD, -1)), actor="test")
    owned = await post(sessions, entry)
    with pytest.raises(EntryOwnedByFlow) as refused:
        await service.reverse(sessions, reversal(owned.id))
    assert refused.value.code == "ENTRY_OWNED_BY_FLOW"
    assert refused.value.facts["flow"] == OWNED_BY_FLOW[kind][0]
    assert f"of the {OWNED_BY_FLOW[kind][0]} flow" in refused.value.message
    assert await count(sessions, JournalEntryRow) == 1
    assert await audit_actions(sessions) == []


async def test_a_purchase_is_corrected_by_refunding_it(
    purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "key-correct-01", "USD", "web", "card", "tok_success", package_code="coins_350"
        )
    )
    assert bought.purchase.entry_id is not None
    with pytest.raises(EntryOwnedByFlow) as refused:
        await service.reverse(sessions, reversal(bought.purchase.entry_id))
    assert "refund the purchase" in refused.value.message


async def test_a_reversal_is_not_reversed_and_a_missing_entry_is_not_found(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    original = await post(sessions, settlement("settle:1", 1_000_000))
    made = await service.reverse(sessions, reversal(original.id))
    with pytest.raises(EntryNotReversible):
        await service.reverse(sessions, reversal(made.reversal.reversal_entry_id))
    with pytest.raises(EntryNotFound):
        await service.reverse(sessions, reversal(999_999))


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
async def test_a_reversal_needs_a_reason_of_at_most_500_characters(
    sessions: async_sessionmaker[AsyncSession], reason: str
) -> None:
    original = await post(sessions, settlement("settle:1", 1_000_000))
    with pytest.raises(InvalidReason):
        await service.reverse(sessions, reversal(original.id, reason=reason))
    assert await count(sessions, JournalEntryRow) == 1


async def test_a_reversal_that_would_overdraw_a_wallet_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """500 coins moved to Ana by hand, and she spent 200 of them: reversing the grant would
    take 500 from a wallet holding 300."""
    issued, spent, ana = chart.coins_issued(), chart.coins_spent(), chart.user_coins("ana")
    grant = await post(
        sessions,
        Entry(EntryKind.TRANSFER, "grant:1", (Posting(issued, 500), Posting(ana, -500)), actor="t"),
    )
    await post(
        sessions,
        Entry(EntryKind.TRANSFER, "spend:1", (Posting(ana, 200), Posting(spent, -200)), actor="t"),
    )
    with pytest.raises(InsufficientCoins):
        await service.reverse(sessions, reversal(grant.id))
    assert await count(sessions, EntryReversalRow) == 0


async def test_two_finance_people_reversing_at_once_reverse_once(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    original = await post(racing, settlement("settle:1", 3_000_000))
    results = await race(
        [
            lambda: service.reverse(racing, reversal(original.id, actor=FIN_A)),
            lambda: service.reverse(racing, reversal(original.id, actor=FIN_B)),
        ]
    )
    done = [r for r in results if isinstance(r, service.ReversalResult)]
    refused = [r for r in results if isinstance(r, LedgerError)]
    assert len(done) == 1 and [r.code for r in refused] == ["ALREADY_REVERSED"]
    assert await count(racing, JournalEntryRow) == 2
    await assert_books_clean(racing)


# --- adjustments under maker-checker ------------------------------------------------------------


def fee_lines(amount: str = "0.30") -> tuple[ProposedLine, ...]:
    """A card processing fee the provider took and nobody booked: expense debited, clearing
    credited."""
    return (
        ProposedLine(FEES.code, "USD", amount),
        ProposedLine(CARD.code, "USD", f"-{amount}"),
    )


def proposal(lines: tuple[ProposedLine, ...], **kw: str) -> ProposalRequest:
    return ProposalRequest(
        proposer=kw.get("proposer", FIN_A),
        idempotency_key=kw.get("idempotency_key", key()),
        reason=kw.get("reason", "October card fee missing from the books"),
        lines=lines,
        memo=kw.get("memo", "fee statement 2026-10"),
    )


async def propose(sessions: async_sessionmaker[AsyncSession], **kw: str) -> AdjustmentProposalRow:
    result = await service.propose_adjustment(sessions, proposal(fee_lines(), **kw))
    return result.proposal


async def test_a_proposal_posts_nothing_until_another_finance_person_approves_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Fin A proposes the missing $0.30 card fee: stored as 300,000 micro-USD on the fee
    expense and -300,000 on card clearing, nothing posted. Fin A may not approve it; Fin B
    does, and the entry posts exactly those two postings, referring to the proposal."""
    proposed = await propose(sessions)
    assert proposed.status == "proposed"
    assert proposed.postings == [
        {"account": FEES.code, "commodity": "USD", "amount": 300_000},
        {"account": CARD.code, "commodity": "USD", "amount": -300_000},
    ]
    assert await count(sessions, JournalEntryRow) == 0

    with pytest.raises(SelfApproval) as refused:
        await service.approve_adjustment(sessions, ApprovalRequest(proposed.id, key(), FIN_A))
    assert refused.value.code == "SELF_APPROVAL"
    assert await count(sessions, JournalEntryRow) == 0

    approval = ApprovalRequest(proposed.id, key(), FIN_B)
    approved = await service.approve_adjustment(sessions, approval)
    row = approved.proposal
    assert (row.status, row.decided_by) == ("posted", FIN_B)
    assert row.entry_id is not None
    assert await balances(sessions, row.entry_id) == {FEES.code: 300_000, CARD.code: -300_000}
    async with sessions() as session:
        entry = await session.get(JournalEntryRow, row.entry_id)
    assert entry is not None
    assert (entry.kind, entry.event_key, entry.actor) == (
        "adjustment",
        f"adjustment:{row.id}",
        FIN_B,
    )
    assert entry.refs == {"proposal_id": row.id, "proposed_by": FIN_A}

    replayed = await service.approve_adjustment(sessions, approval)
    assert replayed.replayed and replayed.proposal.entry_id == row.entry_id
    with pytest.raises(ProposalDecided):
        await service.approve_adjustment(
            sessions, ApprovalRequest(proposed.id, key(), "user:fin-c")
        )
    assert await count(sessions, JournalEntryRow) == 1
    assert await audit_actions(sessions) == [
        (FIN_A, "adjustment.proposed", f"adjustment:{row.id}"),
        (FIN_B, "adjustment.approved", f"adjustment:{row.id}"),
    ]
    await assert_books_clean(sessions)


async def test_an_adjustment_is_reversible_by_finance(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    proposed = await propose(sessions)
    approved = await service.approve_adjustment(
        sessions, ApprovalRequest(proposed.id, key(), FIN_B)
    )
    assert approved.proposal.entry_id is not None
    made = await service.reverse(sessions, reversal(approved.proposal.entry_id))
    assert await balances(sessions, made.reversal.reversal_entry_id) == {
        FEES.code: -300_000,
        CARD.code: 300_000,
    }
    await assert_books_clean(sessions)


async def test_a_rejected_proposal_never_posts(sessions: async_sessionmaker[AsyncSession]) -> None:
    proposed = await propose(sessions)
    rejected = await service.reject_adjustment(
        sessions, RejectionRequest(proposed.id, FIN_B, "the fee was booked in November")
    )
    assert (rejected.status, rejected.decided_by, rejected.decision_reason) == (
        "rejected",
        FIN_B,
        "the fee was booked in November",
    )
    with pytest.raises(ProposalDecided):
        await service.approve_adjustment(sessions, ApprovalRequest(proposed.id, key(), FIN_B))
    with pytest.raises(InvalidReason):
        await service.reject_adjustment(sessions, RejectionRequest(proposed.id, FIN_B, " "))
    assert await count(sessions, JournalEntryRow) == 0


async def test_the_same_key_replays_a_proposal_and_refuses_a_different_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await propose(sessions, idempotency_key="proposal-key-1")
    again = await service.propose_adjustment(
        sessions, proposal(fee_lines(), idempotency_key="proposal-key-1")
    )
    assert again.replayed and again.proposal.id == first.id
    with pytest.raises(IdempotencyKeyReused):
        await service.propose_adjustment(
            sessions, proposal(fee_lines("0.31"), idempotency_key="proposal-key-1")
        )
    assert await count(sessions, AdjustmentProposalRow) == 1


@pytest.mark.parametrize(
    ("lines", "error", "field"),
    [
        # $0.30 debited, $0.29 credited: USD is off by 10,000 micro-units
        (
            (ProposedLine(FEES.code, "USD", "0.30"), ProposedLine(CARD.code, "USD", "-0.29")),
            UnbalancedEntry,
            "postings",
        ),
        # a coin debit against a dollar credit balances neither commodity
        (
            (
                ProposedLine("platform:coins:issued", "COIN", "5"),
                ProposedLine(CARD.code, "USD", "-5"),
            ),
            UnbalancedEntry,
            "postings",
        ),
        (
            (ProposedLine("platform:nowhere", "USD", "1"), ProposedLine(CARD.code, "USD", "-1")),
            AccountNotFound,
            "postings.0.accountCode",
        ),
        (
            (ProposedLine(FEES.code, "USD", "abc"), ProposedLine(CARD.code, "USD", "-1")),
            InvalidAmount,
            "postings.0.amount",
        ),
        (
            (ProposedLine(FEES.code, "USD", "0.0000001"), ProposedLine(CARD.code, "USD", "-1")),
            InvalidAmount,
            "postings.0.amount",
        ),
        (
            (ProposedLine(FEES.code, "USD", "1"), ProposedLine(CARD.code, "USD", "0")),
            InvalidAmount,
            "postings.1.amount",
        ),
        (
            (
                ProposedLine("platform:coins:issued", "COIN", "1.5"),
                ProposedLine("platform:coins:spent", "COIN", "-1.5"),
            ),
            InvalidAmount,
            "postings.0.amount",
        ),
        (
            (ProposedLine(FEES.code, "EUR", "1"), ProposedLine(CARD.code, "EUR", "-1")),
            CommodityMismatch,
            "postings.0.commodity",
        ),
        (
            (
                ProposedLine("platform:payouts_in_transit:USD", "USD", "1"),
                ProposedLine(BANK.code, "USD", "-1"),
            ),
            AccountOwnedByFlow,
            "postings.0.accountCode",
        ),
    ],
    ids=[
        "unbalanced",
        "unbalanced-per-commodity",
        "unknown-account",
        "not-a-number",
        "below-a-micro-unit",
        "zero",
        "half-a-coin",
        "wrong-commodity",
        "account-a-flow-keeps",
    ],
)
async def test_a_proposal_is_checked_when_it_is_made(
    sessions: async_sessionmaker[AsyncSession],
    lines: tuple[ProposedLine, ...],
    error: type[LedgerError],
    field: str,
) -> None:
    with pytest.raises(error) as refused:
        await service.propose_adjustment(sessions, proposal(lines))
    assert refused.value.field == field
    assert await count(sessions, AdjustmentProposalRow) == 0


async def test_approvers_at_once_post_the_adjustment_once(
    racing: async_sessionmaker[AsyncSession],
) -> None:
    """Four finance people (none the proposer) approve the same proposal at the same moment,
    each on their own connection: the proposal row is locked, so one posts and the other three
    find it posted."""
    proposed = await propose(racing)
    approvals = [
        ApprovalRequest(proposed.id, key(), who)
        for who in ("user:fin-b", "user:fin-c", "user:fin-d", "user:fin-e")
    ]
    results = await race(
        [functools.partial(service.approve_adjustment, racing, approval) for approval in approvals]
    )
    posted = [r for r in results if isinstance(r, service.ProposalResult)]
    refused = [r for r in results if isinstance(r, LedgerError)]
    assert len(posted) == 1 and not posted[0].replayed
    assert [r.code for r in refused] == ["PROPOSAL_DECIDED"] * 3
    async with racing() as session:
        kinds = (await session.scalars(select(JournalEntryRow.kind))).all()
    assert kinds == ["adjustment"]
    await assert_books_clean(racing)


COINBOOKS = Path(sys.executable).parent / "coinbooks"


async def test_coinbooks_check_is_clean_after_corrections(
    sessions: async_sessionmaker[AsyncSession], db_url: URL
) -> None:
    """A settlement reversed and a fee adjusted: the command finance runs finds nothing."""
    original = await post(sessions, settlement("settle:1", 2_000_000))
    await service.reverse(sessions, reversal(original.id))
    proposed = await propose(sessions)
    await service.approve_adjustment(sessions, ApprovalRequest(proposed.id, key(), FIN_B))
    env = {
        **os.environ,
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "COINBOOKS_ENVIRONMENT": "development",
    }
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS), "check", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    assert "No violations." in out.decode()


async def violations(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session, session.begin():
        report = await check_integrity(session)
    return [violation.check for violation in report.violations]


async def test_the_integrity_check_finds_an_adjustment_behind_the_proposals_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """An adjustment entry written straight to the ledger, with no approved proposal."""
    await post(
        sessions,
        Entry(
            EntryKind.ADJUSTMENT,
            "adjustment:999",
            (Posting(FEES, 1), Posting(CARD, -1)),
            actor="t",
        ),
    )
    assert await violations(sessions) == ["adjustment_posts_what_was_proposed"]


async def test_the_integrity_check_finds_a_posted_proposal_that_says_otherwise(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The approved proposal's postings edited afterwards: the books no longer post them."""
    proposed = await propose(sessions)
    await service.approve_adjustment(sessions, ApprovalRequest(proposed.id, key(), FIN_B))
    async with sessions() as session, session.begin():
        row = await session.get(AdjustmentProposalRow, proposed.id)
        assert row is not None
        row.postings = [{**line, "amount": line["amount"] * 2} for line in row.postings]
    assert await violations(sessions) == ["adjustment_posts_what_was_proposed"]


async def test_the_integrity_check_finds_a_reversal_record_of_the_wrong_entry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A reversal record claiming a settlement was reversed by an entry that reverses another."""
    first = await post(sessions, settlement("settle:1", 1_000_000))
    second = await post(sessions, settlement("settle:2", 2_000_000))
    made = await service.reverse(sessions, reversal(first.id))
    async with sessions() as session, session.begin():
        session.add(
            EntryReversalRow(
                entry_id=second.id,
                reversal_entry_id=first.id,
                actor=FIN_B,
                idempotency_key=key(),
                reason="forged",
                created_at=made.reversal.created_at,
            )
        )
    assert await violations(sessions) == ["reversal_by_finance_reverses_its_entry"]
