"""Relay connections over keyset cursors: a page costs the same however deep it is."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import strawberry

from accounting.ledger.pages import MAX_PAGE
from schema.errors import BAD_USER_INPUT, ClientError
from schema.scalars import MAX_BIG_INT

T = TypeVar("T")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int | None = strawberry.field(
        default=None,
        description="Every item of the list, all pages together, where counting is cheap "
        "(settlementReports, reconciliationExceptions, adjustmentProposals); null on every "
        "other list, whose length grows with the history: walk it with hasNextPage.",
    )


def check_first(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise ClientError(BAD_USER_INPUT, f"'first' is 1 to {MAX_PAGE}")
    return first


def page_start(kind: str, first: int, after: str | None) -> int | None:
    """Where the page asked for starts: ``first`` checked (1 to 100), then the position the
    cursor ``after`` names in the list ``kind``; None for the first page."""
    check_first(first)
    return decode_cursor(kind, after)


def encode_cursor(kind: str, position: int | str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode()


def decode_cursor(kind: str, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        found_kind, _, position = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if found_kind != kind:
            raise ValueError(found_kind)
        parsed = int(position)
        if not 0 <= parsed <= MAX_BIG_INT:  # beyond a bigint, PostgreSQL would refuse it
            raise ValueError(position)
        return parsed
    except ValueError:
        raise ClientError(BAD_USER_INPUT, "'after' is not a cursor from this list") from None


def instant_position(instant: datetime, position: int) -> str:
    """The position of an item of a list walked by time: its instant (microseconds since 1970)
    and its number within that instant, so the next page starts with one probe of a time index
    (read back by :func:`decode_instant_cursor`)."""
    micros = (instant - EPOCH) // timedelta(microseconds=1)
    return f"{micros}:{position}"


def decode_instant_cursor(kind: str, cursor: str | None) -> tuple[datetime, int] | None:
    if cursor is None:
        return None
    try:
        found_kind, micros, position = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        if found_kind != kind:
            raise ValueError(found_kind)
        instant, parsed = EPOCH + timedelta(microseconds=int(micros)), int(position)
        if not 0 <= parsed <= MAX_BIG_INT:  # beyond a bigint, PostgreSQL would refuse it
            raise ValueError(position)
        return instant, parsed
    except (ValueError, OverflowError):
        raise ClientError(BAD_USER_INPUT, "'after' is not a cursor from this list") from None


def connection(
    kind: str, items: Sequence[tuple[int | str, T]], has_next: bool, total: int | None = None
) -> Connection[T]:
    """A page of ``items``, each with its position in the list (a number, or an
    :func:`instant_position`)."""
    edges = [Edge(cursor=encode_cursor(kind, position), node=node) for position, node in items]
    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
        total_count=total,
    )
