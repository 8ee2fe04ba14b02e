"""The journal as finance reads it: entries with their postings, rates, references and
reversal links, filtered and paged by keyset on (posted_at, id); and the same entries, one
line per posting, as the query PostgreSQL writes the export file from.

Filters combine (all must hold):

- ``start`` / ``end``: posted in [start, end).
- ``kind``: the entry's kind (``purchase``, ``gift``, ...).
- ``account``: a posting on that account: the exact code (a platform account's with its
  sub-accounts, ``platform:revenue:gifts#3``), or every code that starts with it when it ends
  with ``:`` (``creator:bo:`` is all of Bo's accounts).
- ``user_id``: a posting on any account of that user or creator (``user:<id>:...``,
  ``creator:<id>:...``).
- ``actor``: who caused the entry (``user:ana``, ``system:settlement``...).
- business references: ``purchase_id``, ``payout_id`` and ``provider_reference`` are read from
  the entry's ``refs`` (a purchase's references are copied to its refund, chargeback, dispute
  won and dispute fee, and to any reversal, so ``purchase_id`` finds them all); ``gift_id``,
  ``refund_id`` and ``chargeback_id`` from the flow's own record of the entries it posted (a
  gift and its hold release; a refund; a chargeback and its dispute won), with their
  reversals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Numeric,
    Select,
    Text,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from accounting.chargebacks.tables import ChargebackRow
from accounting.gifts.tables import GiftRow
from accounting.ledger.chart import check_user_id, with_sub_accounts
from accounting.ledger.entries import EntryKind
from accounting.ledger.errors import LedgerError
from accounting.ledger.money import COMMODITIES, CommodityKind, format_micros
from accounting.ledger.pages import Page, page_size
from accounting.ledger.tables import AccountRow, CommodityRow, JournalEntryRow, PostingRow
from accounting.reads.export import ExportFormat
from accounting.refunds.tables import RefundRow

MAX_FILTER_TEXT = 200

EXPORT_COLUMNS = (
    "entry_id",
    "posted_at",
    "kind",
    "event_key",
    "actor",
    "account_code",
    "commodity",
    "side",
    "amount",
    "memo",
    "refs",
)
"""The journal export's columns: one row per posting."""


class InvalidJournalFilter(LedgerError):
    code = "INVALID_FILTER"


class Side(StrEnum):
    DEBIT = "DEBIT"
    CREDIT = "CREDIT"


@dataclass(frozen=True, slots=True)
class JournalFilter:
    start: datetime | None = None
    end: datetime | None = None
    kind: str | None = None
    account: str | None = None
    user_id: str | None = None
    actor: str | None = None
    purchase_id: int | None = None
    gift_id: int | None = None
    payout_id: int | None = None
    refund_id: int | None = None
    chargeback_id: int | None = None
    provider_reference: str | None = None


@dataclass(frozen=True, slots=True)
class JournalPosting:
    account_code: str
    commodity: str
    units: int
    """Signed, in the commodity's smallest unit: a debit is positive."""

    @property
    def side(self) -> Side:
        return Side.DEBIT if self.units > 0 else Side.CREDIT

    @property
    def amount(self) -> str:
        return amount_text(abs(self.units), self.commodity)


@dataclass(frozen=True, slots=True)
class JournalLine:
    id: int
    kind: str
    event_key: str
    posted_at: datetime
    actor: str
    memo: str
    rates: dict[str, str]
    refs: dict[str, Any]
    reverses_entry_id: int | None
    reversed_by_entry_id: int | None
    postings: list[JournalPosting]


JournalCursor = tuple[datetime, int]
"""Where a page ends: the last entry's (posted_at, id)."""


def amount_text(units: int, commodity: str) -> str:
    """A decimal string in the commodity's unit: coins and diamonds whole (``350``), money
    in whole currency units with at least its minor-unit digits (``4.99``, ``0.014257``)."""
    known = COMMODITIES.get(commodity)
    if known is not None and known.kind is CommodityKind.FIAT:
        return format_micros(units, commodity)
    return str(units)


def check_filter(wanted: JournalFilter) -> JournalFilter:
    if wanted.start is not None and wanted.end is not None and wanted.end <= wanted.start:
        raise InvalidJournalFilter("'to' must be after 'from'", field="to")
    if wanted.kind is not None and wanted.kind not in {k.value for k in EntryKind}:
        known = ", ".join(k.value for k in EntryKind)
        raise InvalidJournalFilter(f"Unknown entry kind; one of {known}", field="kind")
    for name in ("account", "actor", "provider_reference"):
        value = getattr(wanted, name)
        if value is not None and not 1 <= len(value) <= MAX_FILTER_TEXT:
            raise InvalidJournalFilter(f"{name} is 1-{MAX_FILTER_TEXT} characters", field=name)
    if wanted.user_id is not None:
        check_user_id(wanted.user_id)
    return wanted


def conditions(wanted: JournalFilter) -> list[ColumnElement[bool]]:
    """The filter as conditions on ``journal_entry``."""
    entry = JournalEntryRow
    found: list[ColumnElement[bool]] = []
    if wanted.start is not None:
        found.append(entry.posted_at >= wanted.start)
    if wanted.end is not None:
        found.append(entry.posted_at < wanted.end)
    if wanted.kind is not None:
        found.append(entry.kind == wanted.kind)
    if wanted.actor is not None:
        found.append(entry.actor == wanted.actor)
    if wanted.account is not None:
        code = AccountRow.code
        matches = (
            code.startswith(wanted.account, autoescape=True)
            if wanted.account.endswith(":")
            else code.in_(with_sub_accounts(wanted.account))
        )
        found.append(_posts_to(matches))
    if wanted.user_id is not None:
        found.append(
            _posts_to(
                or_(
                    AccountRow.code.startswith(f"user:{wanted.user_id}:", autoescape=True),
                    AccountRow.code.startswith(f"creator:{wanted.user_id}:", autoescape=True),
                )
            )
        )
    for key in ("purchase_id", "payout_id", "provider_reference"):
        value = getattr(wanted, key)
        if value is not None:
            found.append(entry.refs.contains({key: value}))
    found += _record_conditions(wanted)
    return found


def _posts_to(accounts: ColumnElement[bool]) -> ColumnElement[bool]:
    """The entry has a posting on an account matching ``accounts``."""
    account_ids = select(AccountRow.id).where(accounts)
    return JournalEntryRow.id.in_(
        select(PostingRow.entry_id).where(PostingRow.account_id.in_(account_ids))
    )


def _record_conditions(wanted: JournalFilter) -> list[ColumnElement[bool]]:
    """Entries a flow's record names (a gift's, a refund's, a chargeback's), or their
    reversals: one condition per record filter given."""
    groups: list[list[Select[Any]]] = []
    if wanted.gift_id is not None:
        gift = GiftRow.id == wanted.gift_id
        groups.append(
            [select(GiftRow.entry_id).where(gift), select(GiftRow.release_entry_id).where(gift)]
        )
    if wanted.refund_id is not None:
        groups.append([select(RefundRow.entry_id).where(RefundRow.id == wanted.refund_id)])
    if wanted.chargeback_id is not None:
        chargeback = ChargebackRow.id == wanted.chargeback_id
        groups.append(
            [
                select(ChargebackRow.entry_id).where(chargeback),
                select(ChargebackRow.won_entry_id).where(chargeback),
            ]
        )
    found: list[ColumnElement[bool]] = []
    for group in groups:
        ids = union_all(*group) if len(group) > 1 else group[0]
        found.append(or_(JournalEntryRow.id.in_(ids), JournalEntryRow.reverses_entry_id.in_(ids)))
    return found


async def journal_page(
    session: AsyncSession,
    wanted: JournalFilter,
    *,
    first: int = 20,
    after: JournalCursor | None = None,
    newest_first: bool = True,
) -> Page[JournalLine]:
    """A page of entries matching ``wanted``, newest (or oldest) first, after the cursor."""
    size = page_size(first)
    entry = JournalEntryRow
    key = tuple_(entry.posted_at, entry.id)
    order = (
        (entry.posted_at.desc(), entry.id.desc()) if newest_first else (entry.posted_at, entry.id)
    )
    statement = select(entry).where(*conditions(check_filter(wanted))).order_by(*order)
    if after is not None:
        statement = statement.where(key < tuple_(*after) if newest_first else key > tuple_(*after))
    rows = list((await session.scalars(statement.limit(size + 1))).all())
    lines = await _lines(session, rows[:size])
    return Page(lines, len(rows) > size)


async def journal_entry(session: AsyncSession, entry_id: int) -> JournalLine | None:
    row = await session.get(JournalEntryRow, entry_id)
    if row is None:
        return None
    return (await _lines(session, [row]))[0]


async def _lines(session: AsyncSession, rows: Sequence[JournalEntryRow]) -> list[JournalLine]:
    """The entries with their postings (in the order posted) and who reversed them."""
    ids = [row.id for row in rows]
    if not ids:
        return []
    postings: dict[int, list[JournalPosting]] = {i: [] for i in ids}
    found = await session.execute(
        select(PostingRow.entry_id, AccountRow.code, PostingRow.commodity, PostingRow.amount)
        .join(AccountRow, AccountRow.id == PostingRow.account_id)
        .where(PostingRow.entry_id.in_(ids))
        .order_by(PostingRow.entry_id, PostingRow.id)
    )
    for entry_id, code, commodity, units in found:
        postings[entry_id].append(JournalPosting(code, commodity, units))
    reversals = await session.execute(
        select(JournalEntryRow.reverses_entry_id, JournalEntryRow.id).where(
            JournalEntryRow.reverses_entry_id.in_(ids)
        )
    )
    reversed_by = {int(original): reversal for original, reversal in reversals if original}
    return [
        JournalLine(
            id=row.id,
            kind=row.kind,
            event_key=row.event_key,
            posted_at=row.posted_at,
            actor=row.actor,
            memo=row.memo,
            rates={str(k): str(v) for k, v in row.rates.items()},
            refs=dict(row.refs),
            reverses_entry_id=row.reverses_entry_id,
            reversed_by_entry_id=reversed_by.get(row.id),
            postings=postings[row.id],
        )
        for row in rows
    ]


_ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
"""ISO 8601 in UTC, always to the microsecond (``2026-05-01T09:30:00.000000+00:00``)."""


def _amount_text() -> ColumnElement[str]:
    """:func:`amount_text` in SQL: money in whole currency units with at least its minor-unit
    digits and more only when needed (``4.99``, ``5.00``, ``0.014257``), coins and diamonds
    whole; unsigned."""
    units = cast(func.abs(PostingRow.amount), Numeric)
    whole = func.trim_scale(units / func.power(literal(10, Numeric), CommodityRow.scale))
    fiat_text = func.round(whole, func.greatest(CommodityRow.minor_unit_digits, func.scale(whole)))
    return case((CommodityRow.kind == "fiat", cast(fiat_text, Text)), else_=cast(units, Text))


def export_statement(wanted: JournalFilter, export_format: ExportFormat) -> Select[Any]:
    """Every posting of the entries matching ``wanted``, oldest entry first, as the export's
    rows: the columns of :data:`EXPORT_COLUMNS` for CSV, one JSON object per row for JSON
    lines. Amounts are unsigned decimal strings in the commodity's unit, the side in its own
    column; ``refs`` is the entry's references as JSON. PostgreSQL writes the file
    (:func:`accounting.reads.export.copied`)."""
    entry = JournalEntryRow
    values: dict[str, Any] = {
        "entry_id": entry.id,
        "posted_at": func.to_char(func.timezone("UTC", entry.posted_at), _ISO_UTC),
        "kind": entry.kind,
        "event_key": entry.event_key,
        "actor": entry.actor,
        "account_code": AccountRow.code,
        "commodity": PostingRow.commodity,
        "side": case((PostingRow.amount > 0, "DEBIT"), else_="CREDIT"),
        "amount": _amount_text(),
        "memo": entry.memo,
        "refs": entry.refs,
    }
    assert tuple(values) == EXPORT_COLUMNS
    columns = (
        [value.label(name) for name, value in values.items()]
        if export_format is ExportFormat.CSV
        else [cast(func.json_build_object(*_pairs(values)), Text).label("line")]
    )
    return (
        select(*columns)
        .select_from(entry)
        .join(PostingRow, PostingRow.entry_id == entry.id)
        .join(AccountRow, AccountRow.id == PostingRow.account_id)
        .join(CommodityRow, CommodityRow.code == PostingRow.commodity)
        .where(*conditions(check_filter(wanted)))
        .order_by(entry.posted_at, entry.id, PostingRow.id)
    )


def _pairs(values: dict[str, Any]) -> list[Any]:
    return [part for name, value in values.items() for part in (literal(name), value)]


def parse_filter_time(text: str, *, field: str) -> datetime:
    """An ISO 8601 instant; one without an offset is read as UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidJournalFilter(f"{field} is not an ISO 8601 instant", field=field) from None
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
