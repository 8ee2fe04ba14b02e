"""Posting a batch of gifts in one transaction, with one statement per table.

The gifts of a batch are taken in the order they arrived, as if one after another: each is
checked (stream live, gift on sale, sender not frozen, enough coins) against the books as the
gifts before it in the batch left them, and one that fails is answered with its error and
leaves no trace, while the others go on. Then the whole batch is written: its journal
entries, all their postings, and the gift records, each in one INSERT ... SELECT FROM unnest;
the database checks the postings statement as a whole (migrations/sql/0004), and moves each
account's balance once per batch however many gifts touched it.

Locks: the streams are held FOR KEY SHARE (a stream ending waits for the gifts in flight, and
a gift after it sees the stream ended); every account the batch touches is locked FOR UPDATE
in one statement, in ascending id order, before anything is read from it, so two batches over
the same accounts queue rather than deadlock, and a retry of a gift sees the first attempt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting import chart, idempotency
from accounting.chart import AccountSpec
from accounting.entries import Entry
from accounting.errors import (
    AccountFrozen,
    GiftNotFound,
    GiftRetired,
    IdempotencyKeyReused,
    InsufficientCoins,
    LedgerError,
    SelfGift,
    StreamNotFound,
    StreamNotLive,
)
from accounting.ledger import LockedBooks, fingerprint, insert_postings, lock_accounts
from accounting.posting_rules import CoinRates, GiftAmounts, Spending, gift_entry
from accounting.tables import GiftRow


@dataclass(frozen=True, slots=True)
class GiftRequest:
    sender_id: str
    idempotency_key: str
    stream_id: int
    gift_code: str
    quantity: int

    def fingerprint(self) -> str:
        return idempotency.request_hash(
            "send_gift",
            {"stream_id": self.stream_id, "gift_code": self.gift_code, "quantity": self.quantity},
        )


@dataclass(frozen=True, slots=True)
class GiftResult:
    gift: GiftRow
    replayed: bool


@dataclass(frozen=True, slots=True)
class GiftTerms:
    """What every gift of a service is posted at: the rates, the hold, the currency."""

    rates: CoinRates
    hold: timedelta
    functional_currency: str


@dataclass(frozen=True, slots=True)
class _Accepted:
    """A gift of the batch that passed every check: its entry, waiting to be written."""

    index: int
    request: GiftRequest
    request_hash: str
    creator_id: str
    coin_price: int
    entry: Entry
    amounts: GiftAmounts
    postings: list[dict[str, Any]]
    """Its postings as laid on the books, numbered by the batch index until written."""


_STREAMS = text(
    "SELECT id, creator_id, status FROM stream WHERE id = ANY(CAST(:ids AS bigint[]))"
    " ORDER BY id FOR KEY SHARE"
)
_GIFT_TYPES = text(
    "SELECT code, name, coin_price, active FROM gift_type WHERE code = ANY(CAST(:codes AS text[]))"
)
_FROZEN = text(
    "SELECT user_id FROM user_status WHERE frozen AND user_id = ANY(CAST(:users AS text[]))"
)
_SENT_BEFORE = text(
    "SELECT gift.* FROM gift"
    " JOIN unnest(CAST(:senders AS text[]), CAST(:keys AS text[]))"
    "      AS asked(sender_id, idempotency_key) USING (sender_id, idempotency_key)"
)
_INSERT_ENTRIES = text(
    "WITH now AS MATERIALIZED (SELECT clock_timestamp() AS at)"
    " INSERT INTO journal_entry (kind, event_key, fingerprint, posted_at, actor, rates, refs,"
    "                            memo)"
    " SELECT 'gift', e.event_key, e.fingerprint, now.at, e.actor, CAST(e.rates AS jsonb),"
    "        CAST(e.refs AS jsonb), e.memo"
    "   FROM now, unnest(CAST(:event_key AS text[]), CAST(:fingerprint AS text[]),"
    "                    CAST(:actor AS text[]), CAST(:rates AS text[]), CAST(:refs AS text[]),"
    "                    CAST(:memo AS text[]))"
    "        AS e(event_key, fingerprint, actor, rates, refs, memo)"
    " RETURNING id, event_key, posted_at"
)
_GIFT_COLUMNS = (
    "sender_id",
    "idempotency_key",
    "request_hash",
    "stream_id",
    "creator_id",
    "gift_code",
    "quantity",
    "coin_price",
    "coins",
    "value_micros",
    "diamonds",
    "payable_micros",
    "entry_id",
)
_GIFT_TYPES_SQL = (
    "text",
    "text",
    "text",
    "bigint",
    "text",
    "text",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
)
_INSERT_GIFTS = text(
    f"INSERT INTO gift ({', '.join(_GIFT_COLUMNS)}, created_at, release_at)"
    f" SELECT {', '.join(_GIFT_COLUMNS)},"
    "        CAST(:created_at AS timestamptz), CAST(:release_at AS timestamptz)"
    "   FROM unnest("
    + ", ".join(
        f"CAST(:{column} AS {sql_type}[])"
        for column, sql_type in zip(_GIFT_COLUMNS, _GIFT_TYPES_SQL, strict=True)
    )
    + f") AS g({', '.join(_GIFT_COLUMNS)})"
    " RETURNING id, sender_id, idempotency_key"
)


def gift_accounts(terms: GiftTerms, sender_id: str, creator_id: str | None) -> list[AccountSpec]:
    """Every account a gift from ``sender_id`` to ``creator_id`` may post to."""
    currency = terms.functional_currency
    accounts = [chart.user_coins(sender_id), chart.user_coins_value(sender_id, currency)]
    if creator_id is not None:
        accounts += [
            chart.creator_payable(creator_id, currency),
            chart.creator_diamonds(creator_id, "pending"),
        ]
    return accounts


def platform_gift_accounts(terms: GiftTerms) -> list[AccountSpec]:
    currency = terms.functional_currency
    return [
        chart.coins_spent(),
        chart.revenue("gifts", currency),
        chart.promotions(currency),
        chart.diamonds_issued(),
    ]


async def post_gifts(
    session: AsyncSession, requests: Sequence[GiftRequest], terms: GiftTerms
) -> list[GiftResult | LedgerError]:
    """Post ``requests`` (distinct (sender, idempotency key) pairs) inside the caller's
    transaction; one outcome per request, in order: the gift, or why it was refused."""
    streams = {
        row.id: row
        for row in await session.execute(_STREAMS, {"ids": sorted({r.stream_id for r in requests})})
    }
    gift_types = {
        row.code: row
        for row in await session.execute(
            _GIFT_TYPES, {"codes": sorted({r.gift_code for r in requests})}
        )
    }
    wanted: dict[str, AccountSpec] = {a.code: a for a in platform_gift_accounts(terms)}
    for request in requests:
        stream = streams.get(request.stream_id)
        creator = stream.creator_id if stream is not None else None
        wanted.update((a.code, a) for a in gift_accounts(terms, request.sender_id, creator))
    books = LockedBooks(await lock_accounts(session, wanted.values()))

    # Under the wallets' locks: what was sent before under these keys, and who is frozen.
    senders = [r.sender_id for r in requests]
    sent_before = {
        (gift.sender_id, gift.idempotency_key): gift
        for gift in await session.scalars(
            select(GiftRow).from_statement(_SENT_BEFORE),
            {"senders": senders, "keys": [r.idempotency_key for r in requests]},
        )
    }
    frozen = set((await session.scalars(_FROZEN, {"users": sorted(set(senders))})).all())

    outcomes: list[GiftResult | LedgerError | None] = [None] * len(requests)
    accepted: list[_Accepted] = []
    for index, request in enumerate(requests):
        try:
            existing = sent_before.get((request.sender_id, request.idempotency_key))
            if existing is not None:
                outcomes[index] = _replay(existing, request)
                continue
            accepted.append(
                _check_and_lay(
                    index,
                    request,
                    books,
                    streams.get(request.stream_id),
                    gift_types.get(request.gift_code),
                    frozen=request.sender_id in frozen,
                    terms=terms,
                )
            )
        except LedgerError as refused:
            outcomes[index] = refused

    if accepted:
        for gift in await _write(session, accepted, terms):
            outcomes[gift.index] = gift.result
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _replay(existing: GiftRow, request: GiftRequest) -> GiftResult:
    if existing.request_hash != request.fingerprint():
        raise IdempotencyKeyReused(
            "This idempotency key was used for a different gift",
            field="idempotencyKey",
            gift_id=existing.id,
        )
    return GiftResult(existing, replayed=True)


def _check_and_lay(
    index: int,
    request: GiftRequest,
    books: LockedBooks,
    stream: Row[Any] | None,
    gift_type: Row[Any] | None,
    *,
    frozen: bool,
    terms: GiftTerms,
) -> _Accepted:
    """Every check of one gift, in the order a single gift is checked, against the books as
    the batch has left them; then its entry, laid on the books."""
    if stream is None:
        raise StreamNotFound(f"No stream {request.stream_id}", field="streamId")
    if stream.creator_id == request.sender_id:
        raise SelfGift("Creators cannot send gifts to themselves", field="streamId")
    if stream.status != "live":
        raise StreamNotLive(f"Stream {stream.id} is not live", field="streamId")
    if gift_type is None:
        raise GiftNotFound(f"No gift {request.gift_code!r}", field="giftCode")
    if not gift_type.active:
        raise GiftRetired(f"{gift_type.name} is no longer available", field="giftCode")
    if frozen:
        raise AccountFrozen(
            f"Account {request.sender_id} is frozen: it may not send gifts",
            user_id=request.sender_id,
        )
    wallet_coins = books[chart.user_coins(request.sender_id).code].normal_balance
    wallet_value = books[
        chart.user_coins_value(request.sender_id, terms.functional_currency).code
    ].normal_balance
    coins = request.quantity * gift_type.coin_price
    if wallet_coins < coins:
        raise InsufficientCoins(
            f"{coins:,} coins needed, {wallet_coins:,} held",
            field="quantity",
            held=wallet_coins,
            needed=coins,
        )
    spending = Spending(request.sender_id, coins, wallet_coins, wallet_value)
    entry, amounts = gift_entry(
        spending,
        creator_id=stream.creator_id,
        event_key=f"gift:{request.sender_id}:{request.idempotency_key}",
        rates=terms.rates,
        functional_currency=terms.functional_currency,
        refs={
            "stream_id": stream.id,
            "gift_code": gift_type.code,
            "quantity": request.quantity,
            "coin_price": gift_type.coin_price,
            "sender_id": request.sender_id,
            "creator_id": stream.creator_id,
        },
        actor=f"user:{request.sender_id}",
    )
    postings = books.lay(entry, entry_id=index)
    return _Accepted(
        index=index,
        request=request,
        request_hash=request.fingerprint(),
        creator_id=stream.creator_id,
        coin_price=gift_type.coin_price,
        entry=entry,
        amounts=amounts,
        postings=postings,
    )


@dataclass(frozen=True, slots=True)
class _Written:
    index: int
    result: GiftResult


async def _write(
    session: AsyncSession, accepted: list[_Accepted], terms: GiftTerms
) -> list[_Written]:
    """The batch's entries, postings and gift records: one statement each."""
    entries = [gift.entry for gift in accepted]
    inserted = (
        await session.execute(
            _INSERT_ENTRIES,
            {
                "event_key": [e.event_key for e in entries],
                "fingerprint": [fingerprint(e) for e in entries],
                "actor": [e.actor for e in entries],
                "rates": [json.dumps(dict(e.rates)) for e in entries],
                "refs": [json.dumps(dict(e.refs)) for e in entries],
                "memo": [e.memo for e in entries],
            },
        )
    ).all()
    entry_ids = {row.event_key: row.id for row in inserted}
    posted_at: datetime = inserted[0].posted_at
    rows = [
        {**row, "entry_id": entry_ids[gift.entry.event_key]}
        for gift in accepted
        for row in gift.postings
    ]
    await insert_postings(session, posted_at, rows)

    release_at = posted_at + terms.hold
    values: dict[str, list[Any]] = {column: [] for column in _GIFT_COLUMNS}
    for gift in accepted:
        request, amounts = gift.request, gift.amounts
        for column, value in (
            ("sender_id", request.sender_id),
            ("idempotency_key", request.idempotency_key),
            ("request_hash", gift.request_hash),
            ("stream_id", request.stream_id),
            ("creator_id", gift.creator_id),
            ("gift_code", request.gift_code),
            ("quantity", request.quantity),
            ("coin_price", gift.coin_price),
            ("coins", request.quantity * gift.coin_price),
            ("value_micros", amounts.value_micros),
            ("diamonds", amounts.diamonds),
            ("payable_micros", amounts.payable_micros),
            ("entry_id", entry_ids[gift.entry.event_key]),
        ):
            values[column].append(value)
    gift_ids = {
        (row.sender_id, row.idempotency_key): row.id
        for row in await session.execute(
            _INSERT_GIFTS, {**values, "created_at": posted_at, "release_at": release_at}
        )
    }
    written = []
    for gift in accepted:
        request, amounts = gift.request, gift.amounts
        row = GiftRow(
            id=gift_ids[(request.sender_id, request.idempotency_key)],
            sender_id=request.sender_id,
            idempotency_key=request.idempotency_key,
            request_hash=gift.request_hash,
            stream_id=request.stream_id,
            creator_id=gift.creator_id,
            gift_code=request.gift_code,
            quantity=request.quantity,
            coin_price=gift.coin_price,
            coins=request.quantity * gift.coin_price,
            value_micros=amounts.value_micros,
            diamonds=amounts.diamonds,
            payable_micros=amounts.payable_micros,
            entry_id=entry_ids[gift.entry.event_key],
            created_at=posted_at,
            release_at=release_at,
            release_entry_id=None,
        )
        written.append(_Written(gift.index, GiftResult(row, replayed=False)))
    return written
