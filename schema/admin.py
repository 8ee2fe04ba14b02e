"""Administration (admin role): the gift and feature catalogs, and freezing accounts."""

from __future__ import annotations

from datetime import datetime

import strawberry

from accounting.gifts import catalog as gift_catalog
from accounting.gifts.catalog import CatalogItem
from accounting.gifts.errors import InvalidCatalogItem
from accounting.ledger.errors import InvalidReason, InvalidUserId
from accounting.policy import standing
from accounting.policy.access import may_freeze_accounts, may_manage_catalog
from accounting.policy.separation import SelfApprovalForbidden
from accounting.policy.tables import UserStatusRow
from schema.context import Info
from schema.errors import MutationError, error_type, errors_in_payload, require_role
from schema.gifts import Feature, FeatureKind, GiftTier, GiftType, feature_of, gift_type_of
from schema.payloads import AS_STORED, null_on_error
from schema.scalars import BigInt


@strawberry.input
class CatalogItemInput:
    """What a gift and a premium feature both have (each input adds its own fields after)."""

    code: str = strawberry.field(description="1-50 of a-z, 0-9 and _; never changes.")
    name: str = strawberry.field(description="1-100 characters.")
    coin_price: BigInt = strawberry.field(description="1 to 10,000,000 coins.")


# --- upsertGiftType -----------------------------------------------------------------------------


@error_type(InvalidCatalogItem)
class UpsertGiftTypeError(MutationError): ...


@strawberry.type
class UpsertGiftTypePayload:
    gift_type: GiftType | None = null_on_error(AS_STORED)
    errors: list[UpsertGiftTypeError]


@strawberry.input(
    description="A gift, new or changed (by code). A new price applies to gifts sent from now "
    "on: gifts already sent keep the price they were sent at."
)
class UpsertGiftTypeInput(CatalogItemInput):
    tier: GiftTier
    animation: str | None = None
    active: bool = strawberry.field(default=True, description="False retires the gift.")


# --- upsertFeature ------------------------------------------------------------------------------


@error_type(InvalidCatalogItem)
class UpsertFeatureError(MutationError): ...


@strawberry.type
class UpsertFeaturePayload:
    feature: Feature | None = null_on_error(AS_STORED)
    errors: list[UpsertFeatureError]


@strawberry.input(
    description="A premium feature, new or changed (by code). A new price applies to unlocks "
    "from now on."
)
class UpsertFeatureInput(CatalogItemInput):
    kind: FeatureKind
    active: bool = strawberry.field(default=True, description="False retires the feature.")


# --- setAccountFrozen ---------------------------------------------------------------------------


@strawberry.type(description="Whether a user's account is frozen, by whom and why.")
class AccountStanding:
    user_id: str
    frozen: bool = strawberry.field(
        description="A frozen account may not buy coins, send gifts or unlock features."
    )
    reason: str
    changed_by: str
    changed_at: datetime


def standing_of(row: UserStatusRow) -> AccountStanding:
    return AccountStanding(
        user_id=row.user_id,
        frozen=row.frozen,
        reason=row.reason,
        changed_by=row.changed_by,
        changed_at=row.changed_at,
    )


@error_type(SelfApprovalForbidden, InvalidUserId, InvalidReason)
class SetAccountFrozenError(MutationError): ...


@strawberry.type
class SetAccountFrozenPayload:
    standing: AccountStanding | None = null_on_error(AS_STORED)
    errors: list[SetAccountFrozenError]


@strawberry.input
class SetAccountFrozenInput:
    user_id: str
    frozen: bool = strawberry.field(description="True freezes the account, false thaws it.")
    reason: str = strawberry.field(description="Kept with the standing, for the next reader.")


@strawberry.type
class AdminMutations:
    @strawberry.mutation(description="Add a gift to the catalog, or change one (admin role).")
    @errors_in_payload(UpsertGiftTypePayload, UpsertGiftTypeError)
    async def upsert_gift_type(
        self, info: Info, input: UpsertGiftTypeInput
    ) -> UpsertGiftTypePayload:
        what = "change the gift catalog without the admin role"
        principal = require_role(info, may_manage_catalog, what)
        item = CatalogItem(
            code=input.code,
            name=input.name,
            coin_price=input.coin_price,
            category=input.tier.value,
            animation=input.animation,
            active=input.active,
        )
        sessions = info.context.services.sessions
        row = await gift_catalog.save_gift_type(sessions, item, actor=principal.actor)
        return UpsertGiftTypePayload(gift_type=gift_type_of(row), errors=[])

    @strawberry.mutation(description="Add a premium feature, or change one (admin role).")
    @errors_in_payload(UpsertFeaturePayload, UpsertFeatureError)
    async def upsert_feature(self, info: Info, input: UpsertFeatureInput) -> UpsertFeaturePayload:
        what = "change the feature catalog without the admin role"
        principal = require_role(info, may_manage_catalog, what)
        item = CatalogItem(
            code=input.code,
            name=input.name,
            coin_price=input.coin_price,
            category=input.kind.value,
            active=input.active,
        )
        sessions = info.context.services.sessions
        row = await gift_catalog.save_feature(sessions, item, actor=principal.actor)
        return UpsertFeaturePayload(feature=feature_of(row), errors=[])

    @strawberry.mutation(
        description="Freeze or thaw a user's account (support or admin role). Coins already held"
        " stay. A chargeback freezes the buyer's account; support lifts it here."
    )
    @errors_in_payload(SetAccountFrozenPayload, SetAccountFrozenError)
    async def set_account_frozen(
        self, info: Info, input: SetAccountFrozenInput
    ) -> SetAccountFrozenPayload:
        principal = require_role(
            info, may_freeze_accounts, "freeze accounts without the support or admin role"
        )
        row = await standing.freeze_account(
            info.context.services.sessions,
            input.user_id,
            frozen=input.frozen,
            reason=input.reason,
            actor=principal.actor,
        )
        return SetAccountFrozenPayload(standing=standing_of(row), errors=[])
