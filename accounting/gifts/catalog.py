"""The catalogs of gifts and premium features, managed by admins. Changing a price changes
nothing already posted: every gift and unlock records the price it used. Every change is
audited with the item as it was (null when new) and as it is now."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.errors import InvalidCatalogItem
from accounting.gifts.tables import FeatureRow, GiftTypeRow
from accounting.ledger.posting import in_transaction
from accounting.policy import audit

GIFT_TIERS = ("basic", "popular", "premium", "legendary")
FEATURE_KINDS = ("effect", "sticker", "badge", "highlight")
MAX_COIN_PRICE = 10_000_000
_CODE = re.compile(r"^[a-z0-9_]{1,50}$")

Row = TypeVar("Row", GiftTypeRow, FeatureRow)


@dataclass(frozen=True, slots=True)
class CatalogItem:
    code: str
    name: str
    coin_price: int
    category: str
    """A gift's tier or a feature's kind."""
    animation: str | None = None
    active: bool = True

    def check(self, categories: tuple[str, ...]) -> None:
        if not _CODE.fullmatch(self.code):
            raise InvalidCatalogItem("A code is 1-50 of a-z, 0-9 and _", field="code")
        if not 1 <= len(self.name.strip()) <= 100:
            raise InvalidCatalogItem("A name is 1-100 characters", field="name")
        if not 1 <= self.coin_price <= MAX_COIN_PRICE:
            raise InvalidCatalogItem(f"A price is 1 to {MAX_COIN_PRICE:,} coins", field="coinPrice")
        if self.animation is not None and not 1 <= len(self.animation) <= 50:
            raise InvalidCatalogItem("An animation name is 1-50 characters", field="animation")
        if self.category not in categories:
            raise InvalidCatalogItem(f"One of {', '.join(categories)}", field="category")


async def save_gift_type(
    sessions: async_sessionmaker[AsyncSession], item: CatalogItem, *, actor: str
) -> GiftTypeRow:
    """Add a gift to the catalog or change one, audited, in a transaction of its own."""
    return await in_transaction(sessions, lambda session: upsert_gift_type(session, item, actor))


async def save_feature(
    sessions: async_sessionmaker[AsyncSession], item: CatalogItem, *, actor: str
) -> FeatureRow:
    """Add a premium feature or change one, audited, in a transaction of its own."""
    return await in_transaction(sessions, lambda session: upsert_feature(session, item, actor))


async def upsert_gift_type(session: AsyncSession, item: CatalogItem, actor: str) -> GiftTypeRow:
    item.check(GIFT_TIERS)
    columns = {"tier": item.category, "animation": item.animation}
    return await _upsert(session, GiftTypeRow, item, columns, actor=actor, kind="gift_type")


async def upsert_feature(session: AsyncSession, item: CatalogItem, actor: str) -> FeatureRow:
    item.check(FEATURE_KINDS)
    columns = {"kind": item.category}
    return await _upsert(session, FeatureRow, item, columns, actor=actor, kind="feature")


async def _upsert(
    session: AsyncSession,
    table: type[Row],
    item: CatalogItem,
    columns: Mapping[str, str | None],
    *,
    actor: str,
    kind: str,
) -> Row:
    """Insert the item by its code, or change the one of that code (and its ``updated_at``);
    audit it with its values before (read under the row's lock; null when new) and after."""
    before = await session.scalar(select(table).where(table.code == item.code).with_for_update())
    was = None if before is None else _audited(before, columns)
    values = {
        "code": item.code,
        "name": item.name.strip(),
        "coin_price": item.coin_price,
        **columns,
        "active": item.active,
    }
    statement = pg_insert(table).values(**values)
    row: Row | None = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["code"], set_={**values, "updated_at": func.now()}
        ).returning(table),
        execution_options={"populate_existing": True},
    )
    assert row is not None
    await audit.record(
        session,
        actor=actor,
        action=f"{kind}.{'created' if was is None else 'changed'}",
        subject=f"{kind}:{item.code}",
        details={"before": was, "after": _audited(row, columns)},
    )
    return row


def _audited(row: GiftTypeRow | FeatureRow, columns: Mapping[str, str | None]) -> dict[str, Any]:
    """What the audit keeps of a catalog item: its code, name, price, own columns and whether
    it is on sale."""
    own = {name: getattr(row, name) for name in columns}
    return {
        "code": row.code,
        "name": row.name,
        "coin_price": row.coin_price,
        **own,
        "active": row.active,
    }


async def gift_types(session: AsyncSession, *, include_retired: bool = False) -> list[GiftTypeRow]:
    statement = select(GiftTypeRow).order_by(GiftTypeRow.coin_price, GiftTypeRow.code)
    if not include_retired:
        statement = statement.where(GiftTypeRow.active)
    return list((await session.scalars(statement)).all())


async def features(session: AsyncSession, *, include_retired: bool = False) -> list[FeatureRow]:
    statement = select(FeatureRow).order_by(FeatureRow.coin_price, FeatureRow.code)
    if not include_retired:
        statement = statement.where(FeatureRow.active)
    return list((await session.scalars(statement)).all())
