"""Keyset pages, newest first: a page costs the same however long the history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from accounting.ledger.tables import Base

MAX_PAGE = 100


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    total: int | None = None
    """Every row the list holds, all pages together, where the list counts them (``counted``)."""


def page_size(first: int) -> int:
    return max(1, min(first, MAX_PAGE))


R = TypeVar("R", bound=Base)


async def newest_first(
    session: AsyncSession,
    row: type[R],
    *conditions: ColumnElement[bool],
    first: int,
    before_id: int | None,
    counted: bool = False,
) -> Page[R]:
    """A page of ``row`` (a table with an ``id``) matching ``conditions``, newest first, after
    the cursor ``before_id``: one index range, whatever the page's depth. ``counted``: with the
    number of rows matching, all pages together (a scan of them: for short lists only)."""
    size = page_size(first)
    id_column: Any = getattr(row, "id")  # noqa: B009 (every paged table has one)
    statement = select(row).where(*conditions).order_by(id_column.desc()).limit(size + 1)
    if before_id is not None:
        statement = statement.where(id_column < before_id)
    rows = list((await session.scalars(statement)).all())
    total = None
    if counted:
        total = await session.scalar(select(func.count()).select_from(row).where(*conditions))
    return Page(rows[:size], len(rows) > size, total)
