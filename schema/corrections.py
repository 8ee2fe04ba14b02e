"""Corrections by finance: reverseEntry, and adjusting entries under maker-checker
(proposeAdjustment, approveAdjustment by another finance person, rejectAdjustment) with the
adjustmentProposals list. Finance role only; the domain (accounting/corrections) does the work."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from accounting.corrections import service
from accounting.corrections.errors import (
    AccountOwnedByFlow,
    EntryNotReversible,
    EntryOwnedByFlow,
    ProposalDecided,
    ProposalNotFound,
    SelfApproval,
)
from accounting.corrections.rules import format_amount
from accounting.corrections.tables import AdjustmentProposalRow, EntryReversalRow
from accounting.ledger.errors import (
    AccountNotFound,
    AlreadyReversed,
    CommodityMismatch,
    EntryNotFound,
    IdempotencyKeyReused,
    InsufficientCoins,
    InvalidAmount,
    InvalidEntry,
    InvalidIdempotencyKey,
    InvalidReason,
    LedgerError,
    Overdraft,
    UnbalancedEntry,
    UnknownCommodity,
)
from accounting.policy.separation import SelfApprovalForbidden
from schema.authorization import ADJUSTMENT_PROPOSALS, require_finance
from schema.context import Info
from schema.errors import MutationError, error_type, errors_in_payload
from schema.nodes import Node, global_id, pk_of
from schema.pagination import Connection, connection, page_start
from schema.payloads import null_on_error, replayed_field


def entry_id_of(id: strawberry.ID) -> int:
    parsed = pk_of(id, "JournalEntry")
    if parsed is None:
        raise EntryNotFound(f"No journal entry {id}", field="entryId")
    return parsed


def proposal_id_of(id: strawberry.ID) -> int:
    parsed = pk_of(id, "AdjustmentProposal")
    if parsed is None:
        raise ProposalNotFound(f"No adjustment proposal {id}", field="proposalId")
    return parsed


# --- reverseEntry -------------------------------------------------------------------------------


@strawberry.type(description="A journal entry reversed by finance: who, when and why.")
class EntryReversal:
    id: strawberry.ID
    entry_id: strawberry.ID = strawberry.field(description="The entry reversed.")
    reversal_entry_id: strawberry.ID = strawberry.field(
        description="The reversal: the exact negation of the entry, referring to it."
    )
    reversed_by: str
    reason: str
    created_at: datetime


def reversal_of(row: EntryReversalRow) -> EntryReversal:
    return EntryReversal(
        id=strawberry.ID(str(row.id)),
        entry_id=strawberry.ID(str(row.entry_id)),
        reversal_entry_id=strawberry.ID(str(row.reversal_entry_id)),
        reversed_by=row.actor,
        reason=row.reason,
        created_at=row.created_at,
    )


@error_type(
    EntryNotFound,
    EntryOwnedByFlow,
    EntryNotReversible,
    SelfApprovalForbidden,
    AlreadyReversed,
    InsufficientCoins,
    Overdraft,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    InvalidReason,
)
class ReverseEntryError(MutationError):
    flow: str | None = strawberry.field(
        description="With ENTRY_OWNED_BY_FLOW: the flow whose own action corrects the entry."
    )

    @classmethod
    def details_of(cls, error: LedgerError) -> dict[str, Any]:
        return {"flow": error.facts.get("flow") if isinstance(error, EntryOwnedByFlow) else None}


@strawberry.type
class ReverseEntryPayload:
    reversal: EntryReversal | None = null_on_error()
    replayed: bool = replayed_field()
    errors: list[ReverseEntryError]


@strawberry.input
class ReverseEntryInput:
    entry_id: strawberry.ID
    reason: str = strawberry.field(description="Why, for the record: 1-500 characters.")
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per reversal (a UUID)."
    )


# --- adjustments --------------------------------------------------------------------------------


@strawberry.enum(description="Where a proposed adjusting entry stands.")
class AdjustmentStatus(Enum):
    PROPOSED = "proposed"
    POSTED = "posted"
    REJECTED = "rejected"


@strawberry.type(description="One posting of an adjusting entry.")
class AdjustmentPosting:
    account_code: str
    commodity: str
    amount: str = strawberry.field(
        description='Debit positive, credit negative, in the commodity\'s unit ("-4.99", "350").'
    )


@strawberry.type(
    description="A manual adjusting entry: proposed by one finance person, posted when another "
    "approves it, or rejected."
)
class AdjustmentProposal(Node):
    status: AdjustmentStatus
    proposed_by: str
    reason: str
    memo: str
    postings: list[AdjustmentPosting]
    created_at: datetime
    decided_by: str | None = strawberry.field(description="Who approved or rejected it.")
    decided_at: datetime | None
    decision_reason: str = strawberry.field(description="Why it was rejected; empty otherwise.")
    entry_id: strawberry.ID | None = strawberry.field(
        description="The adjustment entry it posted, once approved."
    )


def proposal_of(row: AdjustmentProposalRow) -> AdjustmentProposal:
    return AdjustmentProposal(
        id=global_id("AdjustmentProposal", row.id),
        status=AdjustmentStatus(row.status),
        proposed_by=row.proposed_by,
        reason=row.reason,
        memo=row.memo,
        postings=[
            AdjustmentPosting(
                account_code=line["account"],
                commodity=line["commodity"],
                amount=format_amount(int(line["amount"]), line["commodity"]),
            )
            for line in row.postings
        ],
        created_at=row.created_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        decision_reason=row.decision_reason,
        entry_id=None if row.entry_id is None else strawberry.ID(str(row.entry_id)),
    )


@strawberry.input
class AdjustmentPostingInput:
    account_code: str = strawberry.field(description="An account the chart already has.")
    commodity: str = strawberry.field(description="The account's commodity: COIN, DIAMOND, USD...")
    amount: str = strawberry.field(
        description='Debit positive, credit negative, in the commodity\'s unit: "0.30" USD '
        '(at most 6 decimals), "350" coins (whole).'
    )


@strawberry.input
class ProposeAdjustmentInput:
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per proposal (a UUID)."
    )
    reason: str = strawberry.field(description="Why, for the record: 1-500 characters.")
    postings: list[AdjustmentPostingInput] = strawberry.field(
        description="2 to 64 postings that balance per commodity."
    )
    memo: str = strawberry.field(default="", description="The entry's memo (the reason if empty).")


@error_type(
    UnbalancedEntry,
    AccountNotFound,
    CommodityMismatch,
    UnknownCommodity,
    InvalidAmount,
    InvalidEntry,
    AccountOwnedByFlow,
    SelfApprovalForbidden,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    InvalidReason,
)
class ProposeAdjustmentError(MutationError):
    pass


@strawberry.type
class ProposeAdjustmentPayload:
    proposal: AdjustmentProposal | None = null_on_error()
    replayed: bool = replayed_field()
    errors: list[ProposeAdjustmentError]


@strawberry.input
class ApproveAdjustmentInput:
    proposal_id: strawberry.ID
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per approval (a UUID)."
    )


@error_type(
    ProposalNotFound,
    SelfApproval,
    SelfApprovalForbidden,
    ProposalDecided,
    InsufficientCoins,
    Overdraft,
    AccountNotFound,
    CommodityMismatch,
    InvalidIdempotencyKey,
)
class ApproveAdjustmentError(MutationError):
    pass


@strawberry.type
class ApproveAdjustmentPayload:
    proposal: AdjustmentProposal | None = null_on_error()
    replayed: bool = replayed_field()
    errors: list[ApproveAdjustmentError]


@strawberry.input
class RejectAdjustmentInput:
    proposal_id: strawberry.ID
    reason: str = strawberry.field(description="Why, for the record: 1-500 characters.")


@error_type(ProposalNotFound, SelfApprovalForbidden, ProposalDecided, InvalidReason)
class RejectAdjustmentError(MutationError):
    pass


@strawberry.type
class RejectAdjustmentPayload:
    proposal: AdjustmentProposal | None = null_on_error()
    errors: list[RejectAdjustmentError]


# --- the operations -----------------------------------------------------------------------------


@strawberry.type
class CorrectionMutations:
    @strawberry.mutation(
        description="Reverse a mistaken journal entry (finance role): its exact negation, "
        "referring to it, at most once. Only plain transfers and manual adjustments: an entry "
        "of a flow (a purchase, a gift, a payout...) is corrected by the flow's own action."
    )
    @errors_in_payload(ReverseEntryPayload, ReverseEntryError)
    async def reverse_entry(self, info: Info, input: ReverseEntryInput) -> ReverseEntryPayload:
        principal = require_finance(info, "reverse journal entries")
        result = await service.reverse(
            info.context.services.sessions,
            service.ReversalRequest(
                entry_id=entry_id_of(input.entry_id),
                idempotency_key=input.idempotency_key,
                actor=principal.actor,
                reason=input.reason,
            ),
        )
        return ReverseEntryPayload(
            reversal=reversal_of(result.reversal), replayed=result.replayed, errors=[]
        )

    @strawberry.mutation(
        description="Propose a manual adjusting entry (finance role): checked now, posted only "
        "when another finance person approves it."
    )
    @errors_in_payload(ProposeAdjustmentPayload, ProposeAdjustmentError)
    async def propose_adjustment(
        self, info: Info, input: ProposeAdjustmentInput
    ) -> ProposeAdjustmentPayload:
        principal = require_finance(info, "propose adjusting entries")
        lines = tuple(
            service.ProposedLine(line.account_code, line.commodity, line.amount)
            for line in input.postings
        )
        result = await service.propose_adjustment(
            info.context.services.sessions,
            service.ProposalRequest(
                proposer=principal.actor,
                idempotency_key=input.idempotency_key,
                reason=input.reason,
                lines=lines,
                memo=input.memo,
            ),
        )
        return ProposeAdjustmentPayload(
            proposal=proposal_of(result.proposal), replayed=result.replayed, errors=[]
        )

    @strawberry.mutation(
        description="Approve a proposed adjusting entry and post it (finance role; not its "
        "proposer). A proposal posts at most once."
    )
    @errors_in_payload(ApproveAdjustmentPayload, ApproveAdjustmentError)
    async def approve_adjustment(
        self, info: Info, input: ApproveAdjustmentInput
    ) -> ApproveAdjustmentPayload:
        principal = require_finance(info, "approve adjusting entries")
        result = await service.approve_adjustment(
            info.context.services.sessions,
            service.ApprovalRequest(
                proposal_id=proposal_id_of(input.proposal_id),
                idempotency_key=input.idempotency_key,
                approver=principal.actor,
            ),
        )
        return ApproveAdjustmentPayload(
            proposal=proposal_of(result.proposal), replayed=result.replayed, errors=[]
        )

    @strawberry.mutation(
        description="Reject a proposed adjusting entry, with a reason (finance role): it never "
        "posts."
    )
    @errors_in_payload(RejectAdjustmentPayload, RejectAdjustmentError)
    async def reject_adjustment(
        self, info: Info, input: RejectAdjustmentInput
    ) -> RejectAdjustmentPayload:
        principal = require_finance(info, "reject adjusting entries")
        row = await service.reject_adjustment(
            info.context.services.sessions,
            service.RejectionRequest(
                proposal_id=proposal_id_of(input.proposal_id),
                actor=principal.actor,
                reason=input.reason,
            ),
        )
        return RejectAdjustmentPayload(proposal=proposal_of(row), errors=[])


async def load_adjustment_proposal(info: Info, pk: int) -> AdjustmentProposal | None:
    """Proposal ``pk`` for finance (FORBIDDEN to other roles, as adjustmentProposals is); None
    when there is none. ``node(id:)`` answers with it."""
    ADJUSTMENT_PROPOSALS.caller(info)
    async with info.context.services.sessions() as session:
        row = await session.get(AdjustmentProposalRow, pk)
    return None if row is None else proposal_of(row)


@strawberry.type
class CorrectionQueries:
    @strawberry.field(
        description="Proposed adjusting entries, newest first: all, or of one status (finance "
        "role)."
    )
    async def adjustment_proposals(
        self,
        info: Info,
        status: AdjustmentStatus | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[AdjustmentProposal]:
        ADJUSTMENT_PROPOSALS.caller(info)
        before = page_start("adjustment_proposal", first, after)
        async with info.context.services.sessions() as session:
            page = await service.adjustment_proposals(
                session,
                status=None if status is None else status.value,
                first=first,
                before_id=before,
            )
        items = [(row.id, proposal_of(row)) for row in page.items]
        return connection("adjustment_proposal", items, page.has_next, page.total)
