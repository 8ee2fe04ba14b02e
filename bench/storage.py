"""Storage per gift: how much the database's tables and their indexes grew while a gift phase
ran, divided by the gifts it wrote."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from api.database import libpq_url

TABLE_SIZES = """
SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind = 'r'
"""
"""Every table of the schema: its size (heap, TOAST, free-space and visibility maps) and its
indexes' size, in bytes."""


@dataclass(frozen=True, slots=True)
class TableSize:
    table_bytes: int
    index_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.table_bytes + self.index_bytes


async def table_sizes(url: URL) -> dict[str, TableSize]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        rows = await conn.fetch(TABLE_SIZES)
    finally:
        await conn.close()
    return {str(name): TableSize(int(table), int(index)) for name, table, index in rows}


@dataclass(frozen=True, slots=True)
class StorageGrowth:
    gifts: int
    """Gifts written between the two measurements."""
    grown: dict[str, TableSize]
    """Growth of each table that grew, and of its indexes, in bytes."""

    @classmethod
    def between(
        cls, before: dict[str, TableSize], after: dict[str, TableSize], gifts: int
    ) -> StorageGrowth:
        grown: dict[str, TableSize] = {}
        for name, size in sorted(after.items()):
            was = before.get(name, TableSize(0, 0))
            growth = TableSize(
                size.table_bytes - was.table_bytes, size.index_bytes - was.index_bytes
            )
            if growth.table_bytes or growth.index_bytes:
                grown[name] = growth
        return cls(gifts, grown)

    @property
    def total_bytes(self) -> int:
        return sum(size.total_bytes for size in self.grown.values())

    @property
    def bytes_per_gift(self) -> float | None:
        return self.total_bytes / self.gifts if self.gifts else None

    def to_json(self) -> dict[str, Any]:
        per_gift = self.bytes_per_gift
        return {
            "gifts": self.gifts,
            "bytes": self.total_bytes,
            "bytes_per_gift": None if per_gift is None else round(per_gift, 1),
            "tables": {
                name: {
                    "table_bytes": size.table_bytes,
                    "index_bytes": size.index_bytes,
                    "bytes_per_gift": (
                        round(size.total_bytes / self.gifts, 1) if self.gifts else None
                    ),
                }
                for name, size in self.grown.items()
            },
        }
