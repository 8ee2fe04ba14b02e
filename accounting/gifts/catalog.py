"""The catalogs of gifts and premium features, managed by admins. Changing a price changes
nothing already posted: every gift and unlock records the price it used."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.errors import InvalidCatalogItem
from accounting.gifts.tables import FeatureRow, GiftTypeRow
from accounting.ledger.posting import in_transaction

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
    sessions: async_sessionmaker[AsyncSession], item: CatalogItem
) -> GiftTypeRow:
    """Add a gift to the catalog or change one, in a transaction of its own."""
    return await in_transaction(sessions, lambda session: upsert_gift_type(session, item))


async def save_feature(sessions: async_sessionmaker[AsyncSession], item: CatalogItem) -> FeatureRow:
    """Add a premium feature or change one, in a transaction of its own."""
    return await in_transaction(sessions, lambda session: upsert_feature(session, item))


async def upsert_gift_type(session: AsyncSession, item: CatalogItem) -> GiftTypeRow:
    item.check(GIFT_TIERS)
    return await _upsert(session, GiftTypeRow, item, tier=item.category, animation=item.animation)


async def upsert_feature(session: AsyncSession, item: CatalogItem) -> FeatureRow:
    item.check(FEATURE_KINDS)
    return await _upsert(session, FeatureRow, item, kind=item.category)


async def _upsert(
    session: AsyncSession, table: type[Row], item: CatalogItem, **columns: str | None
) -> Row:
    """Insert the item by its code, or change the one of that code (and its ``updated_at``)."""
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
        ).returning(table)
    )
    assert row is not None
    return row


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
