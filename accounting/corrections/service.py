"""Corrections by finance, each one unit of work in its own transaction, audited (who, when,
why):

- **Reversal** of a mistaken entry by id: the exact negation, referring to the original, at most
  once per entry, only of a plain transfer or a manual adjustment (a flow's entry is corrected by
  the flow's own action: a refund, a rejected or failed payout...).
- **Adjusting entries under maker-checker**: one finance person proposes the postings (checked
  now: amounts, accounts, balance per commodity; nothing is posted), a different one approves
  them, which posts them as one ``adjustment`` entry, at most once; or anyone in finance rejects
  the proposal.

An adjustment moves only accounts that already exist: a new account enters the chart through
the flow that owns it. It never moves an account a flow keeps equal to its own records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.corrections.errors import ProposalDecided, ProposalNotFound, SelfApproval
from accounting.corrections.rules import (
    ProposedPosting,
    adjustment_entry,
    check_adjustable,
    check_reversible,
    parse_amount,
)
from accounting.corrections.tables import AdjustmentProposalRow, EntryReversalRow
from accounting.ledger import idempotency
from accounting.ledger.chart import AccountSpec
from accounting.ledger.entries import MAX_POSTINGS_PER_ENTRY
from accounting.ledger.errors import (
    AccountNotFound,
    AlreadyReversed,
    CommodityMismatch,
    EntryNotFound,
    IdempotencyKeyReused,
    InvalidEntry,
    InvalidReason,
    UnbalancedEntry,
)
from accounting.ledger.pages import Page, newest_first
from accounting.ledger.posting import in_transaction, post_entry, reverse_entry, spec_of
from accounting.ledger.tables import AccountRow, JournalEntryRow
from accounting.policy import audit, separation

MAX_MEMO = 500

# --- reversals ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReversalRequest:
    entry_id: int
    idempotency_key: str
    actor: str
    """Who reverses (``user:<id>`` of a finance person): recorded, with ``reason``."""
    reason: str


@dataclass(frozen=True, slots=True)
class ReversalResult:
    reversal: EntryReversalRow
    replayed: bool


async def reverse(
    sessions: async_sessionmaker[AsyncSession], request: ReversalRequest
) -> ReversalResult:
    """Reverse entry ``request.entry_id`` in one transaction: the entry is locked (two reversals
    of it queue, and the second finds the first), checked reversible, negated, recorded and
    audited. The same idempotency key again gives back the first reversal; with another entry it
    is refused."""
    idempotency.check_key(request.idempotency_key)
    reason = audit.check_reason(request.reason, required=True).strip()

    async def work(session: AsyncSession) -> ReversalResult:
        replayed = await _reversal_by_key(session, request)
        if replayed is not None:
            return replayed
        original = await session.scalar(
            select(JournalEntryRow).where(JournalEntryRow.id == request.entry_id).with_for_update()
        )
        if original is None:
            raise EntryNotFound(
                f"No journal entry {request.entry_id}", field="entryId", entry_id=request.entry_id
            )
        check_reversible(original.id, original.kind)
        await separation.check_entry_not_own(
            session,
            request.actor,
            original.id,
            doing="reverse an entry that moves your own accounts",
            field="entryId",
        )
        posted = await reverse_entry(session, original.id, actor=request.actor, reason=reason)
        if posted.replayed:  # reversed behind this flow's back (the entry lock makes it rare)
            raise AlreadyReversed(
                f"Entry {original.id} was already reversed by entry {posted.id}",
                field="entryId",
                entry_id=original.id,
                reversal_id=posted.id,
            )
        row = EntryReversalRow(
            entry_id=original.id,
            reversal_entry_id=posted.id,
            actor=request.actor,
            idempotency_key=request.idempotency_key,
            reason=reason,
            created_at=posted.posted_at,
        )
        session.add(row)
        await session.flush()
        await audit.record(
            session,
            actor=request.actor,
            action="entry.reversed",
            subject=f"entry:{original.id}",
            reason=reason,
            details={"reversal_entry_id": posted.id, "kind": original.kind},
        )
        return ReversalResult(row, replayed=False)

    return await in_transaction(sessions, work)


async def _reversal_by_key(
    session: AsyncSession, request: ReversalRequest
) -> ReversalResult | None:
    existing = await session.scalar(
        select(EntryReversalRow).where(
            EntryReversalRow.actor == request.actor,
            EntryReversalRow.idempotency_key == request.idempotency_key,
        )
    )
    if existing is None:
        return None
    if existing.entry_id != request.entry_id:
        raise IdempotencyKeyReused(
            "This idempotency key was used to reverse another entry", field="idempotencyKey"
        )
    return ReversalResult(existing, replayed=True)


# --- proposing an adjustment --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposedLine:
    """One posting as finance types it: an account, its commodity, and a debit-positive amount
    as a decimal string in the commodity's unit (``"-4.99"`` USD, ``"350"`` coins)."""

    account_code: str
    commodity: str
    amount: str


@dataclass(frozen=True, slots=True)
class ProposalRequest:
    proposer: str
    idempotency_key: str
    reason: str
    lines: tuple[ProposedLine, ...]
    memo: str = ""


@dataclass(frozen=True, slots=True)
class ProposalResult:
    proposal: AdjustmentProposalRow
    replayed: bool


def parse_lines(lines: Sequence[ProposedLine]) -> list[tuple[str, str, int]]:
    """Each line's account code, commodity and amount in the smallest unit; refused unless there
    are 2 to 64 lines, every amount reads, and each commodity's amounts sum to zero."""
    if not 2 <= len(lines) <= MAX_POSTINGS_PER_ENTRY:
        raise InvalidEntry(
            f"An adjustment has 2 to {MAX_POSTINGS_PER_ENTRY} postings", field="postings"
        )
    parsed = []
    sums: dict[str, int] = {}
    for index, line in enumerate(lines):
        code = line.commodity.strip().upper()
        amount = parse_amount(line.amount, code, field=f"postings.{index}.amount")
        parsed.append((line.account_code.strip(), code, amount))
        sums[code] = sums.get(code, 0) + amount
    unbalanced = {code: total for code, total in sums.items() if total}
    if unbalanced:
        raise UnbalancedEntry(
            "Debits and credits differ: "
            + ", ".join(f"{code} by {total}" for code, total in sorted(unbalanced.items())),
            field="postings",
            sums=unbalanced,
        )
    return parsed


async def chart_postings(
    session: AsyncSession, parsed: Sequence[tuple[str, str, int]]
) -> list[ProposedPosting]:
    """Each parsed line on its account: the account must exist, hold the line's commodity, and
    be one an adjustment may move."""
    codes = {code for code, _, _ in parsed}
    rows = await session.scalars(select(AccountRow).where(AccountRow.code.in_(codes)))
    accounts: dict[str, AccountSpec] = {row.code: spec_of(row) for row in rows}
    postings = []
    for index, (code, commodity_code, amount) in enumerate(parsed):
        field = f"postings.{index}.accountCode"
        spec = accounts.get(code)
        if spec is None:
            raise AccountNotFound(f"No account {code!r} in the chart", field=field, account=code)
        if spec.commodity != commodity_code:
            raise CommodityMismatch(
                f"Account {code} holds {spec.commodity}, not {commodity_code}",
                field=f"postings.{index}.commodity",
                account=code,
            )
        check_adjustable(code, field=field)
        postings.append(ProposedPosting(spec, amount))
    return postings


def _check_memo(memo: str) -> str:
    if len(memo) > MAX_MEMO:
        raise InvalidReason(f"A memo is at most {MAX_MEMO} characters", field="memo")
    return memo.strip()


async def propose_adjustment(
    sessions: async_sessionmaker[AsyncSession], request: ProposalRequest
) -> ProposalResult:
    """Check an adjusting entry and keep it as a proposal: nothing is posted until another
    finance person approves it. The same key again gives back the first proposal, if it asked
    the same; otherwise it is refused."""
    idempotency.check_key(request.idempotency_key)
    reason = audit.check_reason(request.reason, required=True).strip()
    memo = _check_memo(request.memo)
    parsed = parse_lines(request.lines)
    separation.check_accounts_not_own(
        request.proposer,
        (code for code, _, _ in parsed),
        doing="propose an adjustment to your own accounts",
        field="postings",
    )

    async def work(session: AsyncSession) -> ProposalResult:
        postings = await chart_postings(session, parsed)
        stored = [posting.stored() for posting in postings]
        existing = await session.scalar(
            select(AdjustmentProposalRow).where(
                AdjustmentProposalRow.proposed_by == request.proposer,
                AdjustmentProposalRow.idempotency_key == request.idempotency_key,
            )
        )
        if existing is not None:
            if (existing.postings, existing.reason, existing.memo) != (stored, reason, memo):
                raise IdempotencyKeyReused(
                    "This idempotency key was used for another proposal", field="idempotencyKey"
                )
            return ProposalResult(existing, replayed=True)
        # the entry it would post, built now so that it is checked now (amounts in range)
        adjustment_entry(
            0,
            postings,
            approver=request.proposer,
            proposer=request.proposer,
            reason=reason,
            memo=memo,
        )
        row = AdjustmentProposalRow(
            proposed_by=request.proposer,
            idempotency_key=request.idempotency_key,
            reason=reason,
            memo=memo,
            postings=stored,
            status="proposed",
        )
        session.add(row)
        await session.flush()
        await audit.record(
            session,
            actor=request.proposer,
            action="adjustment.proposed",
            subject=f"adjustment:{row.id}",
            reason=reason,
            details={"postings": stored},
        )
        await session.refresh(row)
        return ProposalResult(row, replayed=False)

    return await in_transaction(sessions, work)


# --- approving or rejecting it ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    proposal_id: int
    idempotency_key: str
    approver: str


async def _locked_proposal(session: AsyncSession, proposal_id: int) -> AdjustmentProposalRow:
    row = await session.scalar(
        select(AdjustmentProposalRow)
        .where(AdjustmentProposalRow.id == proposal_id)
        .with_for_update()
    )
    if row is None:
        raise ProposalNotFound(
            f"No adjustment proposal {proposal_id}", field="proposalId", proposal_id=proposal_id
        )
    return row


def _check_not_own(row: AdjustmentProposalRow, actor: str, decision: str) -> None:
    """Maker-checker's second rule: nobody decides an adjustment of their own accounts."""
    separation.check_accounts_not_own(
        actor,
        (posting["account"] for posting in row.postings),
        doing=f"{decision} an adjustment to your own accounts",
        field="proposalId",
    )


def _check_pending(row: AdjustmentProposalRow) -> None:
    if row.status != "proposed":
        raise ProposalDecided(
            f"Adjustment proposal {row.id} was already {row.status} by {row.decided_by}",
            field="proposalId",
            status=row.status,
        )


async def approve_adjustment(
    sessions: async_sessionmaker[AsyncSession], request: ApprovalRequest
) -> ProposalResult:
    """Post a proposal's adjusting entry, approved by a finance person other than its proposer.
    The proposal row is locked first, so two approvals queue and the second finds it posted;
    the approver's own key again gives back the approval."""
    idempotency.check_key(request.idempotency_key)

    async def work(session: AsyncSession) -> ProposalResult:
        row = await _locked_proposal(session, request.proposal_id)
        if (row.status, row.decided_by, row.decision_key) == (
            "posted",
            request.approver,
            request.idempotency_key,
        ):
            return ProposalResult(row, replayed=True)
        if row.proposed_by == request.approver:
            raise SelfApproval(
                "You proposed this adjustment: another finance person approves it",
                field="proposalId",
            )
        _check_not_own(row, request.approver, "approve")
        _check_pending(row)
        parsed = [(p["account"], p["commodity"], int(p["amount"])) for p in row.postings]
        postings = await chart_postings(session, parsed)
        entry = adjustment_entry(
            row.id,
            postings,
            approver=request.approver,
            proposer=row.proposed_by,
            reason=row.reason,
            memo=row.memo,
        )
        posted = await post_entry(session, entry)
        row.status, row.entry_id = "posted", posted.id
        row.decided_by, row.decided_at = request.approver, posted.posted_at
        row.decision_key = request.idempotency_key
        await session.flush()
        await audit.record(
            session,
            actor=request.approver,
            action="adjustment.approved",
            subject=f"adjustment:{row.id}",
            reason=row.reason,
            details={"entry_id": posted.id, "proposed_by": row.proposed_by},
        )
        return ProposalResult(row, replayed=False)

    return await in_transaction(sessions, work)


@dataclass(frozen=True, slots=True)
class RejectionRequest:
    proposal_id: int
    actor: str
    reason: str


async def reject_adjustment(
    sessions: async_sessionmaker[AsyncSession], request: RejectionRequest
) -> AdjustmentProposalRow:
    """Reject a proposal still waiting, with a reason: nothing is posted, ever, for it. Its
    proposer may withdraw it this way too."""
    reason = audit.check_reason(request.reason, required=True).strip()

    async def work(session: AsyncSession) -> AdjustmentProposalRow:
        row = await _locked_proposal(session, request.proposal_id)
        _check_not_own(row, request.actor, "reject")
        _check_pending(row)
        row.status, row.decision_reason = "rejected", reason
        row.decided_by = request.actor
        row.decided_at = await session.scalar(select(func.now()))
        await session.flush()
        await audit.record(
            session,
            actor=request.actor,
            action="adjustment.rejected",
            subject=f"adjustment:{row.id}",
            reason=reason,
        )
        return row

    return await in_transaction(sessions, work)


# --- reads --------------------------------------------------------------------------------------

PROPOSAL_STATUSES = ("proposed", "posted", "rejected")


async def adjustment_proposals(
    session: AsyncSession, *, status: str | None, first: int, before_id: int | None
) -> Page[AdjustmentProposalRow]:
    """Proposals, newest first, all or of one status."""
    conditions = [] if status is None else [AdjustmentProposalRow.status == status]
    return await newest_first(
        session, AdjustmentProposalRow, *conditions, first=first, before_id=before_id, counted=True
    )


async def reversal_of(session: AsyncSession, entry_id: int) -> EntryReversalRow | None:
    """The reversal finance made of entry ``entry_id``, if any."""
    return await session.scalar(
        select(EntryReversalRow).where(EntryReversalRow.entry_id == entry_id)
    )
