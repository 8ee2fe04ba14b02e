"""The catalogs of gifts and premium features, managed by admins. Changing a price changes
nothing already posted: every gift and unlock records the price it used."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.gifts.errors import InvalidCatalogItem
from accounting.gifts.tables import FeatureRow, GiftTypeRow

GIFT_TIERS = ("basic", "popular", "premium", "legendary")
FEATURE_KINDS = ("effect", "sticker", "badge", "highlight")
MAX_COIN_PRICE = 10_000_000
_CODE = re.compile(r"^[a-z0-9_]{1,50}$")


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


async def upsert_gift_type(session: AsyncSession, item: CatalogItem) -> GiftTypeRow:
    item.check(GIFT_TIERS)
    values = {
        "code": item.code,
        "name": item.name.strip(),
        "coin_price": item.coin_price,
        "tier": item.category,
        "animation": item.animation,
        "active": item.active,
    }
    statement = pg_insert(GiftTypeRow).values(**values)
    row: Any = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["code"], set_={**values, "updated_at": func.now()}
        ).returning(GiftTypeRow)
    )
    assert row is not None
    return row  # type: ignore[no-any-return]


async def upsert_feature(session: AsyncSession, item: CatalogItem) -> FeatureRow:
    item.check(FEATURE_KINDS)
    values = {
        "code": item.code,
        "name": item.name.strip(),
        "coin_price": item.coin_price,
        "kind": item.category,
        "active": item.active,
    }
    statement = pg_insert(FeatureRow).values(**values)
    row: Any = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["code"], set_={**values, "updated_at": func.now()}
        ).returning(FeatureRow)
    )
    assert row is not None
    return row  # type: ignore[no-any-return]


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
