"""Corrections over GraphQL, as finance asks for them over HTTP: reverseEntry, and adjusting
entries under maker-checker (proposeAdjustment, approveAdjustment by another finance person,
rejectAdjustment, adjustmentProposals). Finance only: every other role is refused, and
nothing moves."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.posting import in_transaction, post_entry
from tests.conftest import GraphQLClient

REVERSE = """
mutation Reverse($input: ReverseEntryInput!) {
  reverseEntry(input: $input) {
    reversal { id entryId reversalEntryId reversedBy reason }
    replayed
    errors { code message field flow }
  }
}
"""
PROPOSAL_FIELDS = """
    proposal { id status proposedBy reason memo decidedBy decisionReason entryId
               postings { accountCode commodity amount } }
"""
PROPOSE = (
    """
mutation Propose($input: ProposeAdjustmentInput!) {
  proposeAdjustment(input: $input) {"""
    + PROPOSAL_FIELDS
    + """ replayed errors { code message field } }
}
"""
)
APPROVE = (
    """
mutation Approve($input: ApproveAdjustmentInput!) {
  approveAdjustment(input: $input) {"""
    + PROPOSAL_FIELDS
    + """ replayed errors { code message field } }
}
"""
)
REJECT = (
    """
mutation Reject($input: RejectAdjustmentInput!) {
  rejectAdjustment(input: $input) {"""
    + PROPOSAL_FIELDS
    + """ errors { code message field } }
}
"""
)
PROPOSALS = """
query Proposals($status: AdjustmentStatus, $first: Int, $after: String) {
  adjustmentProposals(status: $status, first: $first, after: $after) {
    edges { node { id status proposedBy } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
BOOKS = "{ integrityReport { ok entries } }"
FEES = "platform:expense:processor_fees:USD"
CARD = "platform:clearing:card:USD"

_keys = itertools.count(1)


def key() -> str:
    return f"gql-correction-{next(_keys):06d}"


async def as_finance(
    gql: GraphQLClient, query: str, variables: dict[str, Any], user: str = "fin-a"
) -> dict[str, Any]:
    reply = await gql(query, variables, user=user, roles=("finance",))
    assert "errors" not in reply, reply
    [payload] = reply["data"].values()
    assert isinstance(payload, dict)
    return payload


async def settlement(sessions: async_sessionmaker[AsyncSession], micros: int) -> str:
    """A plain transfer: card clearing settled into the bank."""
    entry = Entry(
        EntryKind.TRANSFER,
        f"settle:{micros}",
        (
            Posting(chart.bank("USD"), micros),
            Posting(chart.provider_clearing("card", "USD"), -micros),
        ),
        actor="test:treasury",
    )
    posted = await in_transaction(sessions, lambda session: post_entry(session, entry))
    return str(posted.id)


def fee_input(amount: str = "0.30", **overrides: Any) -> dict[str, Any]:
    return {
        "idempotencyKey": key(),
        "reason": "October card fee missing from the books",
        "memo": "fee statement 2026-10",
        "postings": [
            {"accountCode": FEES, "commodity": "USD", "amount": amount},
            {"accountCode": CARD, "commodity": "USD", "amount": f"-{amount}"},
        ],
        **overrides,
    }


async def books(gql: GraphQLClient) -> dict[str, Any]:
    found: dict[str, Any] = (await gql(BOOKS, user="auditor", roles=("finance",)))["data"][
        "integrityReport"
    ]
    return found


async def test_finance_reverses_a_transfer_once_and_replays_by_key(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A $120.50 settlement booked by mistake is reversed by Fin A; the same key again answers
    the same reversal; Fin B reversing it again is refused."""
    entry_id = await settlement(sessions, 120_500_000)
    fields = {"entryId": entry_id, "reason": "no money came", "idempotencyKey": key()}
    done = await as_finance(gql, REVERSE, {"input": fields})
    assert done["errors"] == [] and done["replayed"] is False
    reversal = done["reversal"]
    assert (reversal["entryId"], reversal["reversedBy"], reversal["reason"]) == (
        entry_id,
        "user:fin-a",
        "no money came",
    )
    again = await as_finance(gql, REVERSE, {"input": fields})
    assert again["replayed"] is True and again["reversal"] == reversal

    twice = await as_finance(gql, REVERSE, {"input": {**fields, "idempotencyKey": key()}}, "fin-b")
    assert [e["code"] for e in twice["errors"]] == ["ALREADY_REVERSED"]
    assert twice["reversal"] is None
    assert await books(gql) == {"ok": True, "entries": "2"}


async def test_a_flows_entry_is_refused_with_the_flows_own_correction(
    gql: GraphQLClient,
) -> None:
    bought = await gql(
        """mutation Buy($input: PurchaseCoinsInput!) {
             purchaseCoins(input: $input) { purchase { id } errors { code } } }""",
        {
            "input": {
                "idempotencyKey": key(),
                "currency": "USD",
                "channel": "WEB",
                "provider": "CARD",
                "paymentToken": "tok_success",
                "packageCode": "coins_350",
            }
        },
        user="ana",
    )
    assert bought["data"]["purchaseCoins"]["errors"] == []
    fields = {"entryId": "1", "reason": "customer asked", "idempotencyKey": key()}
    refused = await as_finance(gql, REVERSE, {"input": fields})
    [error] = refused["errors"]
    assert (error["code"], error["field"], error["flow"]) == (
        "ENTRY_OWNED_BY_FLOW",
        "entryId",
        "purchases",
    )
    assert "refund the purchase" in error["message"]
    missing = await as_finance(gql, REVERSE, {"input": {**fields, "entryId": "x"}})
    assert [e["code"] for e in missing["errors"]] == ["ENTRY_NOT_FOUND"]
    assert await books(gql) == {"ok": True, "entries": "1"}


async def test_maker_checker_over_http(gql: GraphQLClient) -> None:
    """Fin A proposes the missing $0.30 card fee; nothing posts. Fin A cannot approve it; Fin B
    does, and the adjustment entry (entry 1, the books' first) posts; the list shows it posted."""
    proposed = await as_finance(gql, PROPOSE, {"input": fee_input()})
    assert proposed["errors"] == []
    proposal = proposed["proposal"]
    assert (proposal["status"], proposal["proposedBy"], proposal["entryId"]) == (
        "PROPOSED",
        "user:fin-a",
        None,
    )
    assert proposal["postings"] == [
        {"accountCode": FEES, "commodity": "USD", "amount": "0.30"},
        {"accountCode": CARD, "commodity": "USD", "amount": "-0.30"},
    ]
    assert await books(gql) == {"ok": True, "entries": "0"}

    approval = {"proposalId": proposal["id"], "idempotencyKey": key()}
    own = await as_finance(gql, APPROVE, {"input": approval})
    assert [e["code"] for e in own["errors"]] == ["SELF_APPROVAL"]
    approved = await as_finance(gql, APPROVE, {"input": approval}, user="fin-b")
    assert approved["errors"] == []
    assert (approved["proposal"]["status"], approved["proposal"]["decidedBy"]) == (
        "POSTED",
        "user:fin-b",
    )
    assert approved["proposal"]["entryId"] == "1"
    late = await as_finance(gql, REJECT, {"input": {"proposalId": proposal["id"], "reason": "no"}})
    assert [e["code"] for e in late["errors"]] == ["PROPOSAL_DECIDED"]
    assert await books(gql) == {"ok": True, "entries": "1"}

    listed = await as_finance(gql, PROPOSALS, {"status": "POSTED"})
    assert listed["edges"] == [
        {"node": {"id": proposal["id"], "status": "POSTED", "proposedBy": "user:fin-a"}}
    ]
    assert (await as_finance(gql, PROPOSALS, {"status": "PROPOSED"}))["edges"] == []


async def test_a_rejected_proposal_and_a_refused_one(gql: GraphQLClient) -> None:
    proposed = await as_finance(gql, PROPOSE, {"input": fee_input()})
    proposal_id = proposed["proposal"]["id"]
    rejected = await as_finance(
        gql, REJECT, {"input": {"proposalId": proposal_id, "reason": "booked in November"}}, "fin-b"
    )
    assert rejected["errors"] == []
    assert (rejected["proposal"]["status"], rejected["proposal"]["decisionReason"]) == (
        "REJECTED",
        "booked in November",
    )
    unbalanced = fee_input()
    unbalanced["postings"][1]["amount"] = "-0.29"
    refused = await as_finance(gql, PROPOSE, {"input": unbalanced})
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [
        ("UNBALANCED_ENTRY", "postings")
    ]
    unknown = fee_input()
    unknown["postings"][0]["accountCode"] = "platform:nowhere"
    refused = await as_finance(gql, PROPOSE, {"input": unknown})
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [
        ("ACCOUNT_NOT_FOUND", "postings.0.accountCode")
    ]
    page = await as_finance(gql, PROPOSALS, {"first": 5})
    assert [edge["node"]["status"] for edge in page["edges"]] == ["REJECTED"]
    assert await books(gql) == {"ok": True, "entries": "0"}


OPERATIONS = [
    (
        "reverseEntry",
        REVERSE,
        {"input": {"entryId": "1", "reason": "r", "idempotencyKey": "k" * 8}},
    ),
    ("proposeAdjustment", PROPOSE, {"input": fee_input()}),
    ("approveAdjustment", APPROVE, {"input": {"proposalId": "1", "idempotencyKey": "k" * 8}}),
    ("rejectAdjustment", REJECT, {"input": {"proposalId": "1", "reason": "r"}}),
    ("adjustmentProposals", PROPOSALS, {}),
]


@pytest.mark.parametrize(("name", "query", "variables"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
@pytest.mark.parametrize("roles", [("viewer",), ("creator",), ("support",), ("admin",), ()])
async def test_only_finance_corrects_the_books(
    gql: GraphQLClient,
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    query: str,
    variables: dict[str, Any],
    roles: tuple[str, ...],
) -> None:
    """Every other role is forbidden, a caller without a token unauthenticated; the books
    stay as they were."""
    await settlement(sessions, 1_000_000)
    if roles:
        reply = await gql(query, variables, user="someone", roles=roles)
        expected = "FORBIDDEN"
    else:
        reply = await gql(query, variables)
        expected = "UNAUTHENTICATED"
    [error] = reply["errors"]
    assert error["extensions"]["code"] == expected
    assert error["path"] == [name]
    if expected == "FORBIDDEN":
        assert "without the finance role" in error["message"]
    assert await books(gql) == {"ok": True, "entries": "1"}
