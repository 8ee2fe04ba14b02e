"""Nobody acts with a staff role on their own account or objects, over HTTP through the real
ASGI app. Each staff mutation that targets something a user owns is tried by a person whose
token holds the staff role and a role with money of their own (a viewer in support, a creator in
finance, a creator who is an admin): the payload says ``SELF_APPROVAL_FORBIDDEN`` with the field
naming their object, and nothing is written (no journal entry, no audit record). The same
request by another staff member goes through, so it is the self-dealing that is refused.

Each row of ``STAFF_ACTIONS`` sets up one owned object and gives the mutation's input."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.posting import in_transaction, post_entry
from accounting.ledger.tables import JournalEntryRow
from accounting.policy.tables import AuditRow
from accounting.purchases.service import PurchaseService
from tests.chargebacks.test_receivables import mallory_owes
from tests.conftest import GraphQLClient
from tests.graphql.test_graphql_payouts import act, ready_bo, request
from tests.graphql.test_graphql_refunds import buy
from tests.settlement.support import buy as buy_by_card
from tests.settlement.support import report

_keys = itertools.count(1)


def key() -> str:
    return f"self-approval-{next(_keys):06d}"


@dataclass(frozen=True)
class World:
    gql: GraphQLClient
    sessions: async_sessionmaker[AsyncSession]
    purchases: PurchaseService
    db_url: URL


@dataclass(frozen=True)
class StaffAction:
    """``actor`` (with ``roles``) tries ``mutation`` on an object of their own that ``ready``
    sets up (it returns the input); ``other`` (with the staff role alone) may do it."""

    name: str
    mutation: str
    input_type: str
    actor: str
    roles: tuple[str, ...]
    other: str
    field: str
    message: str
    ready: Callable[[World], Awaitable[dict[str, Any]]]

    @property
    def document(self) -> str:
        return (
            f"mutation($input: {self.input_type}!) {{ {self.mutation}(input: $input) "
            "{ errors { code message field } } }"
        )

    @property
    def staff_role(self) -> str:
        return self.roles[0]


def refused(doing: str) -> str:
    return f"You may not {doing}: another staff member does it"


# --- what each row sets up ----------------------------------------------------------------------


async def sams_purchase(world: World) -> dict[str, Any]:
    """Sam (a viewer) buys 350 coins; Sam asks to refund them."""
    purchase_id = await buy(world.gql, "sam")
    return {"purchaseId": purchase_id, "idempotencyKey": key(), "reason": "changed my mind"}


async def freeze_sam(world: World) -> dict[str, Any]:
    return {"userId": "sam", "frozen": True, "reason": "looks odd"}


async def thaw_sam(world: World) -> dict[str, Any]:
    """Sue in support froze Sam's account; Sam would lift the freeze."""
    frozen = await world.gql(
        'mutation { setAccountFrozen(input: {userId: "sam", frozen: true, reason: "dispute"}) '
        "{ errors { code } } }",
        user="sue",
        roles=("support",),
    )
    assert frozen["data"]["setAccountFrozen"]["errors"] == []
    return {"userId": "sam", "frozen": False, "reason": "sorted out"}


async def verify_bo(world: World) -> dict[str, Any]:
    return {"userId": "bo", "verified": True, "reason": "passport checked"}


def bos_payout(*before: str, reason: str = "") -> Callable[[World], Awaitable[dict[str, Any]]]:
    """Bo requests a payout of 2,000 diamonds; Fiona in finance takes it through ``before``."""

    async def ready(world: World) -> dict[str, Any]:
        secret, method_id = await ready_bo(world.gql)
        requested = await request(world.gql, secret, method_id)
        assert requested["errors"] == [], requested
        payout_id = requested["payout"]["id"]
        for phase in before:
            assert (await act(world.gql, phase, payout_id))["errors"] == []
        return {"payoutId": payout_id, "idempotencyKey": key(), "reason": reason}

    return ready


async def transfer_to_sam(world: World) -> dict[str, Any]:
    """Sam buys 350 coins, and a plain transfer moves 100 of them back to the platform."""
    await buy(world.gql, "sam")
    entry = Entry(
        EntryKind.TRANSFER,
        "transfer:sam:100",
        (Posting(chart.user_coins("sam"), 100), Posting(chart.coins_spent(), -100)),
        actor="test:operations",
    )
    posted = await in_transaction(world.sessions, lambda s: post_entry(s, entry))
    return {"entryId": str(posted.id), "idempotencyKey": key(), "reason": "posted in error"}


def ten_coins_for_sam() -> dict[str, Any]:
    return {
        "idempotencyKey": key(),
        "reason": "goodwill for an outage",
        "memo": "",
        "postings": [
            {"accountCode": "user:sam:coins", "commodity": "COIN", "amount": "-10"},
            {"accountCode": "platform:coins:issued", "commodity": "COIN", "amount": "10"},
        ],
    }


async def sam_proposes(world: World) -> dict[str, Any]:
    await buy(world.gql, "sam")
    return ten_coins_for_sam()


async def olive_proposes(world: World) -> dict[str, Any]:
    """Olive in finance proposes 10 coins for Sam's wallet; Sam, also in finance, decides."""
    await buy(world.gql, "sam")
    reply = await world.gql(
        "mutation($input: ProposeAdjustmentInput!) { proposeAdjustment(input: $input) "
        "{ proposal { id } errors { code } } }",
        {"input": ten_coins_for_sam()},
        user="olive",
        roles=("finance",),
    )
    payload = reply["data"]["proposeAdjustment"]
    assert payload["errors"] == [], payload
    return {"proposalId": payload["proposal"]["id"]}


async def approve_olives(world: World) -> dict[str, Any]:
    return {**await olive_proposes(world), "idempotencyKey": key()}


async def reject_olives(world: World) -> dict[str, Any]:
    return {**await olive_proposes(world), "reason": "not how we do goodwill"}


async def sams_charge_missing(world: World) -> dict[str, Any]:
    """Ana and Sam each buy 350 coins by card; the card's report has Ana's charge only, so Sam's
    is missing in the report: an exception over Sam's purchase entry."""
    ana = await buy_by_card(world.purchases, "ana", "coins_350")
    sam = await buy_by_card(world.purchases, "sam", "coins_350")
    text = report("card-self-1", "card", (ana.reference, "charge", "4.99", "0.44", "4.55", "USD"))
    reply = await world.gql(
        "mutation($input: ImportSettlementReportInput!) { importSettlementReport(input: $input) "
        "{ exceptions { id providerReference } errors { code } } }",
        {"input": {"report": text}},
        user="olive",
        roles=("finance",),
    )
    payload = reply["data"]["importSettlementReport"]
    assert payload["errors"] == [], payload
    [exception] = [x for x in payload["exceptions"] if x["providerReference"] == sam.reference]
    return {
        "exceptionId": exception["id"],
        "action": "ACCEPT",
        "reason": "the provider will report it next week",
        "idempotencyKey": key(),
    }


async def mallory_receivable(world: World) -> dict[str, Any]:
    """Mallory spends coins bought with a stolen card, which is then charged back: she owes."""
    await mallory_owes(world.sessions, world.purchases)
    return {"userId": "mallory", "idempotencyKey": key(), "reason": "uncollectable"}


SUPPORT_VIEWER = ("support", "viewer")
ADMIN_VIEWER = ("admin", "viewer")
ADMIN_CREATOR = ("admin", "creator")
FINANCE_CREATOR = ("finance", "creator")
FINANCE_VIEWER = ("finance", "viewer")
PAYOUT = "PayoutActionInput"

STAFF_ACTIONS = [
    StaffAction(
        "refund own purchase",
        "refundPurchase",
        "RefundPurchaseInput",
        "sam",
        SUPPORT_VIEWER,
        "sue",
        "purchaseId",
        refused("refund your own purchase"),
        sams_purchase,
    ),
    StaffAction(
        "support freezes own account",
        "setAccountFrozen",
        "SetAccountFrozenInput",
        "sam",
        SUPPORT_VIEWER,
        "sue",
        "userId",
        refused("freeze or thaw your own account"),
        freeze_sam,
    ),
    StaffAction(
        "support lifts own freeze",
        "setAccountFrozen",
        "SetAccountFrozenInput",
        "sam",
        SUPPORT_VIEWER,
        "sue",
        "userId",
        refused("freeze or thaw your own account"),
        thaw_sam,
    ),
    StaffAction(
        "admin lifts own freeze",
        "setAccountFrozen",
        "SetAccountFrozenInput",
        "sam",
        ADMIN_VIEWER,
        "adam",
        "userId",
        refused("freeze or thaw your own account"),
        thaw_sam,
    ),
    StaffAction(
        "admin verifies own identity",
        "setKycVerified",
        "SetKycVerifiedInput",
        "bo",
        ADMIN_CREATOR,
        "adam",
        "userId",
        refused("set your own KYC flag"),
        verify_bo,
    ),
    *[
        StaffAction(
            f"finance marks own payout {phase}",
            mutation,
            PAYOUT,
            "bo",
            FINANCE_CREATOR,
            "fiona",
            "payoutId",
            refused("act on your own payout"),
            bos_payout(*before, reason="bank said so"),
        )
        for phase, mutation, before in [
            ("rejected", "rejectPayout", ()),
            ("sent", "markPayoutSent", ()),
            ("paid", "markPayoutPaid", ("sent",)),
            ("failed", "markPayoutFailed", ("sent",)),
            ("returned", "markPayoutReturned", ("sent", "paid")),
        ]
    ],
    StaffAction(
        "finance reverses an entry of own wallet",
        "reverseEntry",
        "ReverseEntryInput",
        "sam",
        FINANCE_VIEWER,
        "olive",
        "entryId",
        refused("reverse an entry that moves your own accounts"),
        transfer_to_sam,
    ),
    StaffAction(
        "finance proposes an adjustment of own wallet",
        "proposeAdjustment",
        "ProposeAdjustmentInput",
        "sam",
        FINANCE_VIEWER,
        "olive",
        "postings",
        refused("propose an adjustment to your own accounts"),
        sam_proposes,
    ),
    StaffAction(
        "finance approves an adjustment of own wallet",
        "approveAdjustment",
        "ApproveAdjustmentInput",
        "sam",
        FINANCE_VIEWER,
        "otto",
        "proposalId",
        refused("approve an adjustment to your own accounts"),
        approve_olives,
    ),
    StaffAction(
        "finance rejects an adjustment of own wallet",
        "rejectAdjustment",
        "RejectAdjustmentInput",
        "sam",
        FINANCE_VIEWER,
        "otto",
        "proposalId",
        refused("reject an adjustment to your own accounts"),
        reject_olives,
    ),
    StaffAction(
        "finance resolves the exception over own purchase",
        "resolveReconciliationException",
        "ResolveReconciliationExceptionInput",
        "sam",
        FINANCE_VIEWER,
        "olive",
        "exceptionId",
        refused("resolve an exception over your own entry"),
        sams_charge_missing,
    ),
    StaffAction(
        "finance writes off own receivable",
        "writeOffReceivable",
        "WriteOffReceivableInput",
        "mallory",
        FINANCE_VIEWER,
        "fin",
        "userId",
        refused("write off what you owe"),
        mallory_receivable,
    ),
]


async def written(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """Journal entries and audit records: what any staff action writes."""
    async with sessions() as session:
        entries = await session.scalar(select(func.count()).select_from(JournalEntryRow))
        audited = await session.scalar(select(func.count()).select_from(AuditRow))
    return int(entries or 0), int(audited or 0)


@pytest.mark.parametrize("action", STAFF_ACTIONS, ids=[a.name for a in STAFF_ACTIONS])
async def test_no_staff_action_targets_the_actors_own_objects(
    gql: GraphQLClient,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    db_url: URL,
    action: StaffAction,
) -> None:
    given = await action.ready(World(gql, sessions, purchases, db_url))
    before = await written(sessions)

    own = await gql(action.document, {"input": given}, user=action.actor, roles=action.roles)

    assert "errors" not in own, own
    assert own["data"][action.mutation]["errors"] == [
        {"code": "SELF_APPROVAL_FORBIDDEN", "message": action.message, "field": action.field}
    ]
    assert await written(sessions) == before
    by_another = await gql(
        action.document, {"input": given}, user=action.other, roles=(action.staff_role,)
    )
    assert by_another["data"][action.mutation]["errors"] == []
    assert (await written(sessions))[1] > before[1]  # audited


async def test_the_proposer_still_may_not_approve_and_that_code_stays(
    gql: GraphQLClient,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    db_url: URL,
) -> None:
    """Maker-checker keeps its own code: Olive may not approve what Olive proposed, whoever's
    accounts it moves."""
    input = await olive_proposes(World(gql, sessions, purchases, db_url))
    reply = await gql(
        "mutation($input: ApproveAdjustmentInput!) { approveAdjustment(input: $input) "
        "{ errors { code field } } }",
        {"input": {**input, "idempotencyKey": key()}},
        user="olive",
        roles=("finance",),
    )
    assert reply["data"]["approveAdjustment"]["errors"] == [
        {"code": "SELF_APPROVAL", "field": "proposalId"}
    ]
