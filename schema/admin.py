"""Administration (admin role): the gift and feature catalogs, and freezing accounts."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from accounting.gifts import catalog as gift_catalog
from accounting.gifts.catalog import CatalogItem
from accounting.gifts.errors import InvalidCatalogItem
from accounting.ledger.errors import InvalidReason, InvalidUserId, LedgerError
from accounting.ledger.posting import in_transaction
from accounting.policy import standing
from accounting.policy.access import Principal, may_freeze_accounts, may_manage_catalog
from accounting.policy.tables import UserStatusRow
from schema.context import Info
from schema.errors import forbidden, payload_code, require_principal
from schema.gifts import Feature, FeatureKind, GiftTier, GiftType, feature_of, gift_type_of
from schema.scalars import BigInt


def require_admin(info: Info, what: str) -> Principal:
    principal = require_principal(info)
    if not may_manage_catalog(principal):
        raise forbidden(f"{what} without the admin role")
    return principal


# --- upsertGiftType -----------------------------------------------------------------------------


@strawberry.enum
class UpsertGiftTypeErrorCode(Enum):
    INVALID_CATALOG_ITEM = "INVALID_CATALOG_ITEM"


@strawberry.type
class UpsertGiftTypeError:
    code: UpsertGiftTypeErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


@strawberry.type
class UpsertGiftTypePayload:
    gift_type: GiftType | None = strawberry.field(description="As stored; null on error.")
    errors: list[UpsertGiftTypeError]


@strawberry.input(
    description="A gift, new or changed (by code). A new price applies to gifts sent from now "
    "on: gifts already sent keep the price they were sent at."
)
class UpsertGiftTypeInput:
    code: str = strawberry.field(description="1-50 of a-z, 0-9 and _; never changes.")
    name: str = strawberry.field(description="1-100 characters.")
    coin_price: BigInt = strawberry.field(description="1 to 10,000,000 coins.")
    tier: GiftTier
    animation: str | None = None
    active: bool = strawberry.field(default=True, description="False retires the gift.")


# --- upsertFeature ------------------------------------------------------------------------------


@strawberry.enum
class UpsertFeatureErrorCode(Enum):
    INVALID_CATALOG_ITEM = "INVALID_CATALOG_ITEM"


@strawberry.type
class UpsertFeatureError:
    code: UpsertFeatureErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


@strawberry.type
class UpsertFeaturePayload:
    feature: Feature | None = strawberry.field(description="As stored; null on error.")
    errors: list[UpsertFeatureError]


@strawberry.input(
    description="A premium feature, new or changed (by code). A new price applies to unlocks "
    "from now on."
)
class UpsertFeatureInput:
    code: str = strawberry.field(description="1-50 of a-z, 0-9 and _; never changes.")
    name: str = strawberry.field(description="1-100 characters.")
    coin_price: BigInt = strawberry.field(description="1 to 10,000,000 coins.")
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


@strawberry.enum
class SetAccountFrozenErrorCode(Enum):
    INVALID_USER_ID = "INVALID_USER_ID"
    INVALID_REASON = "INVALID_REASON"


@strawberry.type
class SetAccountFrozenError:
    code: SetAccountFrozenErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


@strawberry.type
class SetAccountFrozenPayload:
    standing: AccountStanding | None = strawberry.field(description="As stored; null on error.")
    errors: list[SetAccountFrozenError]


@strawberry.input
class SetAccountFrozenInput:
    user_id: str
    frozen: bool = strawberry.field(description="True freezes the account, false thaws it.")
    reason: str = strawberry.field(description="Kept with the standing, for the next reader.")


@strawberry.type
class AdminMutations:
    @strawberry.mutation(description="Add a gift to the catalog, or change one (admin role).")
    async def upsert_gift_type(
        self, info: Info, input: UpsertGiftTypeInput
    ) -> UpsertGiftTypePayload:
        require_admin(info, "change the gift catalog")
        item = CatalogItem(
            code=input.code,
            name=input.name,
            coin_price=input.coin_price,
            category=input.tier.value,
            animation=input.animation,
            active=input.active,
        )
        try:
            row = await in_transaction(
                info.context.services.sessions,
                lambda session: gift_catalog.upsert_gift_type(session, item),
            )
        except LedgerError as error:
            code = payload_code(
                error, {InvalidCatalogItem: UpsertGiftTypeErrorCode.INVALID_CATALOG_ITEM}
            )
            return UpsertGiftTypePayload(
                gift_type=None,
                errors=[UpsertGiftTypeError(code=code, message=error.message, field=error.field)],
            )
        return UpsertGiftTypePayload(gift_type=gift_type_of(row), errors=[])

    @strawberry.mutation(description="Add a premium feature, or change one (admin role).")
    async def upsert_feature(self, info: Info, input: UpsertFeatureInput) -> UpsertFeaturePayload:
        require_admin(info, "change the feature catalog")
        item = CatalogItem(
            code=input.code,
            name=input.name,
            coin_price=input.coin_price,
            category=input.kind.value,
            active=input.active,
        )
        try:
            row = await in_transaction(
                info.context.services.sessions,
                lambda session: gift_catalog.upsert_feature(session, item),
            )
        except LedgerError as error:
            code = payload_code(
                error, {InvalidCatalogItem: UpsertFeatureErrorCode.INVALID_CATALOG_ITEM}
            )
            return UpsertFeaturePayload(
                feature=None,
                errors=[UpsertFeatureError(code=code, message=error.message, field=error.field)],
            )
        return UpsertFeaturePayload(feature=feature_of(row), errors=[])

    @strawberry.mutation(
        description="Freeze or thaw a user's account (support or admin role). Coins already held"
        " stay. A chargeback freezes the buyer's account; support lifts it here."
    )
    async def set_account_frozen(
        self, info: Info, input: SetAccountFrozenInput
    ) -> SetAccountFrozenPayload:
        principal = require_principal(info)
        if not may_freeze_accounts(principal):
            raise forbidden("freeze accounts without the support or admin role")
        try:
            row = await in_transaction(
                info.context.services.sessions,
                lambda session: standing.set_frozen(
                    session,
                    input.user_id,
                    frozen=input.frozen,
                    reason=input.reason,
                    actor=principal.actor,
                ),
            )
        except LedgerError as error:
            code = payload_code(
                error,
                {
                    InvalidUserId: SetAccountFrozenErrorCode.INVALID_USER_ID,
                    InvalidReason: SetAccountFrozenErrorCode.INVALID_REASON,
                },
            )
            return SetAccountFrozenPayload(
                standing=None,
                errors=[SetAccountFrozenError(code=code, message=error.message, field=error.field)],
            )
        return SetAccountFrozenPayload(standing=standing_of(row), errors=[])
