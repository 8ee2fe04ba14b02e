"""Every staff mutation leaves an audit record, over HTTP through the real ASGI app: each row of
``AUDITED`` sets up what the mutation needs, a support, finance or admin person makes it, and the
newest audit record names that person, the action and its subject. ``NOT_STAFF`` lists the
mutations that callers make for themselves; the two lists together are every mutation of the
committed SDL, so a new staff mutation cannot go unaudited unnoticed.

A catalog change keeps the item as it was and as it is now: Adam raises the Rose from 1 coin to
2 and retires the Glow effect (50 coins, on sale)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from graphql import build_schema
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.policy.tables import AuditRow
from accounting.purchases.service import PurchaseService
from api.database import libpq_url
from schema import SDL_PATH
from tests.close.support import grant, months_ago, name
from tests.conftest import GraphQLClient
from tests.graphql.test_graphql_self_approval import (
    World,
    approve_olives,
    bos_payout,
    freeze_sam,
    mallory_receivable,
    reject_olives,
    sam_proposes,
    sams_charge_missing,
    sams_purchase,
    transfer_to_sam,
    verify_bo,
)
from tests.settlement.support import buy as buy_by_card
from tests.settlement.support import report

NOT_STAFF = {
    "purchaseCoins",
    "purchaseCoinsInAppStore",
    "startStream",
    "endStream",
    "sendGift",
    "unlockFeature",
    "registerPayoutMethod",
    "enrolSecondFactor",
    "confirmSecondFactor",
    "requestPayout",
}
"""Mutations a viewer or creator makes for themselves: not staff actions, not audited."""

_keys = itertools.count(1)


def key() -> str:
    return f"audited-{next(_keys):06d}"


async def rose_at_two(world: World) -> dict[str, Any]:
    return {"code": "rose", "name": "Rose", "coinPrice": "2", "tier": "BASIC"}


async def glow_retired(world: World) -> dict[str, Any]:
    return {
        "code": "glow_effect",
        "name": "Glow effect",
        "coinPrice": "50",
        "kind": "EFFECT",
        "active": False,
    }


async def settlement_report(world: World) -> dict[str, Any]:
    ana = await buy_by_card(world.purchases, "ana", "coins_350")
    text = report("card-audit-1", "card", (ana.reference, "charge", "4.99", "0.44", "4.55", "USD"))
    return {"report": text}


async def yesterday(world: World) -> dict[str, Any]:
    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    return {"asOf": day, "dryRun": False, "idempotencyKey": key()}


async def month_to_close(world: World) -> dict[str, Any]:
    """One entry dated two months ago: that month is the next to close."""
    raw = await asyncpg.connect(libpq_url(world.db_url))
    try:
        await grant(raw, "audited-close", months_ago(2) + timedelta(days=3), 5)
    finally:
        await raw.close()
    return {"month": name(months_ago(2)), "reason": "month-end"}


@dataclass(frozen=True)
class Audited:
    mutation: str
    input_type: str
    actor: str
    role: str
    action: str
    ready: Callable[[World], Awaitable[dict[str, Any]]]


AUDITED = [
    Audited(
        "upsertGiftType", "UpsertGiftTypeInput", "adam", "admin", "gift_type.changed", rose_at_two
    ),
    Audited(
        "upsertFeature", "UpsertFeatureInput", "adam", "admin", "feature.changed", glow_retired
    ),
    Audited(
        "setAccountFrozen", "SetAccountFrozenInput", "sue", "support", "account.frozen", freeze_sam
    ),
    Audited("setKycVerified", "SetKycVerifiedInput", "adam", "admin", "kyc.verified", verify_bo),
    Audited(
        "refundPurchase",
        "RefundPurchaseInput",
        "sue",
        "support",
        "purchase.refunded",
        sams_purchase,
    ),
    Audited(
        "rejectPayout",
        "PayoutActionInput",
        "fiona",
        "finance",
        "payout.rejected",
        bos_payout(reason="not this week"),
    ),
    Audited("markPayoutSent", "PayoutActionInput", "fiona", "finance", "payout.sent", bos_payout()),
    Audited(
        "markPayoutPaid", "PayoutActionInput", "fiona", "finance", "payout.paid", bos_payout("sent")
    ),
    Audited(
        "markPayoutFailed",
        "PayoutActionInput",
        "fiona",
        "finance",
        "payout.failed",
        bos_payout("sent", reason="account closed"),
    ),
    Audited(
        "markPayoutReturned",
        "PayoutActionInput",
        "fiona",
        "finance",
        "payout.returned",
        bos_payout("sent", "paid", reason="bounced"),
    ),
    Audited(
        "reverseEntry", "ReverseEntryInput", "olive", "finance", "entry.reversed", transfer_to_sam
    ),
    Audited(
        "proposeAdjustment",
        "ProposeAdjustmentInput",
        "olive",
        "finance",
        "adjustment.proposed",
        sam_proposes,
    ),
    Audited(
        "approveAdjustment",
        "ApproveAdjustmentInput",
        "otto",
        "finance",
        "adjustment.approved",
        approve_olives,
    ),
    Audited(
        "rejectAdjustment",
        "RejectAdjustmentInput",
        "otto",
        "finance",
        "adjustment.rejected",
        reject_olives,
    ),
    Audited(
        "importSettlementReport",
        "ImportSettlementReportInput",
        "olive",
        "finance",
        "settlement.imported",
        settlement_report,
    ),
    Audited(
        "resolveReconciliationException",
        "ResolveReconciliationExceptionInput",
        "olive",
        "finance",
        "reconciliation_exception.resolved",
        sams_charge_missing,
    ),
    Audited("closePeriod", "ClosePeriodInput", "fiona", "finance", "close_period", month_to_close),
    Audited(
        "recogniseBreakage",
        "RecogniseBreakageInput",
        "fiona",
        "finance",
        "breakage.recognised",
        yesterday,
    ),
    Audited(
        "writeOffReceivable",
        "WriteOffReceivableInput",
        "fin",
        "finance",
        "receivable.written_off",
        mallory_receivable,
    ),
]


def test_every_mutation_is_either_audited_here_or_a_callers_own() -> None:
    mutations = build_schema(SDL_PATH.read_text()).mutation_type
    assert mutations is not None
    listed = {row.mutation for row in AUDITED}
    assert set(mutations.fields) - NOT_STAFF == listed


async def audit_rows(sessions: async_sessionmaker[AsyncSession]) -> list[AuditRow]:
    async with sessions() as session:
        return list((await session.scalars(select(AuditRow).order_by(AuditRow.id))).all())


@pytest.mark.parametrize("row", AUDITED, ids=[row.mutation for row in AUDITED])
async def test_every_staff_mutation_leaves_an_audit_record(
    gql: GraphQLClient,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    db_url: URL,
    row: Audited,
) -> None:
    given = await row.ready(World(gql, sessions, purchases, db_url))
    before = len(await audit_rows(sessions))
    document = (
        f"mutation($input: {row.input_type}!) {{ {row.mutation}(input: $input) "
        "{ errors { code message field } } }"
    )

    reply = await gql(document, {"input": given}, user=row.actor, roles=(row.role,))

    assert reply["data"][row.mutation]["errors"] == [], reply
    after = await audit_rows(sessions)
    assert len(after) == before + 1
    newest = after[-1]
    assert (newest.actor, newest.action) == (f"user:{row.actor}", row.action)


async def test_a_catalog_change_is_audited_with_the_item_before_and_after(
    gql: GraphQLClient,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    db_url: URL,
) -> None:
    world = World(gql, sessions, purchases, db_url)
    document = (
        "mutation($g: UpsertGiftTypeInput!, $f: UpsertFeatureInput!, $n: UpsertGiftTypeInput!) {"
        " a: upsertGiftType(input: $g) { errors { code } }"
        " b: upsertFeature(input: $f) { errors { code } }"
        " c: upsertGiftType(input: $n) { errors { code } } }"
    )
    new = {
        "code": "comet",
        "name": "Comet",
        "coinPrice": "7",
        "tier": "POPULAR",
        "animation": "streak",
    }
    variables = {"g": await rose_at_two(world), "f": await glow_retired(world), "n": new}

    reply = await gql(document, variables, user="adam", roles=("admin",))

    assert reply == {"data": {"a": {"errors": []}, "b": {"errors": []}, "c": {"errors": []}}}
    found = {(r.action, r.subject): (r.actor, r.details) for r in await audit_rows(sessions)}
    rose = {"code": "rose", "name": "Rose", "tier": "basic", "animation": None, "active": True}
    glow = {"code": "glow_effect", "name": "Glow effect", "kind": "effect", "coin_price": 50}
    assert found[("gift_type.changed", "gift_type:rose")] == (
        "user:adam",
        {"before": {**rose, "coin_price": 1}, "after": {**rose, "coin_price": 2}},
    )
    assert found[("feature.changed", "feature:glow_effect")] == (
        "user:adam",
        {"before": {**glow, "active": True}, "after": {**glow, "active": False}},
    )
    assert found[("gift_type.created", "gift_type:comet")] == (
        "user:adam",
        {
            "before": None,
            "after": {
                "code": "comet",
                "name": "Comet",
                "coin_price": 7,
                "tier": "popular",
                "animation": "streak",
                "active": True,
            },
        },
    )


async def test_a_refused_catalog_change_leaves_no_audit_record(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    document = (
        "mutation($g: UpsertGiftTypeInput!) { upsertGiftType(input: $g) { errors { code field } } }"
    )
    bad = {"code": "rose", "name": "Rose", "coinPrice": "0", "tier": "BASIC"}
    reply = await gql(document, {"g": bad}, user="adam", roles=("admin",))
    assert reply["data"]["upsertGiftType"]["errors"] == [
        {"code": "INVALID_CATALOG_ITEM", "field": "coinPrice"}
    ]
    refused_by_role = await gql(
        document, {"g": {**bad, "coinPrice": "3"}}, user="sue", roles=("support",)
    )
    assert refused_by_role["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await audit_rows(sessions) == []
