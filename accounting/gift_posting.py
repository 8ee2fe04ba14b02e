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
in one statement, in ascending id order, before any balance is read, so two batches over the
same accounts queue rather than deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting import chart, idempotency
from accounting.balances import Wallet
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
from accounting.ledger import LockedBooks, fingerprint, lock_accounts, locked_accounts
from accounting.posting_rules import CoinRates, GiftAmounts, Spending, gift_entry
from accounting.tables import StreamRow


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
class SentGift:
    """A gift as recorded (the ``gift`` table's row), as a plain value."""

    id: int
    sender_id: str
    idempotency_key: str
    request_hash: str
    stream_id: int
    creator_id: str
    gift_code: str
    quantity: int
    coin_price: int
    coins: int
    value_micros: int
    diamonds: int
    payable_micros: int
    entry_id: int
    created_at: datetime
    release_at: datetime
    release_entry_id: int | None = None


@dataclass(frozen=True, slots=True)
class GiftResult:
    gift: SentGift
    replayed: bool
    stream: StreamRow | None = None
    """The stream it was sent in, as the batch read it (a new gift only)."""
    gift_name: str | None = None
    """The gift's name in the catalog (a new gift only)."""
    wallet_after: Wallet | None = None
    """The sender's wallet just after this gift, as of its batch (a new gift only)."""


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
    stream: StreamRow
    gift_name: str
    coin_price: int
    wallet_after: Wallet
    entry: Entry
    amounts: GiftAmounts
    postings: list[dict[str, Any]]
    """Its postings as laid on the books; their ``entry_id`` is the entry's place among the
    batch's accepted gifts until the entries are written."""


_STREAM_CREATORS = text("SELECT id, creator_id FROM stream WHERE id = ANY(CAST(:ids AS bigint[]))")
_BATCH_CONTEXT = text(
    # Everything a batch reads, in one round trip: its streams (FOR KEY SHARE: a stream ending
    # waits for the batch, and a batch after it sees the stream ended), then every account it
    # touches (FOR UPDATE, in ascending id order, so batches queue instead of deadlocking), the
    # gift types, what was sent before under the batch's idempotency keys, and who is frozen.
    "WITH streams AS ("
    "   SELECT * FROM stream WHERE id = ANY(CAST(:stream_ids AS bigint[]))"
    "    ORDER BY id FOR KEY SHARE),"
    " accounts AS ("
    "   SELECT id, code, commodity, type, contra, no_overdraft, balance, posting_count"
    "     FROM account WHERE code = ANY(CAST(:account_codes AS text[]))"
    "    ORDER BY id FOR UPDATE)"
    " SELECT (SELECT coalesce(json_agg(streams), '[]') FROM streams) AS streams,"
    "        (SELECT coalesce(json_agg(accounts), '[]') FROM accounts) AS accounts,"
    "        (SELECT coalesce(json_agg(t), '[]')"
    "           FROM (SELECT code, name, coin_price, active FROM gift_type"
    "                  WHERE code = ANY(CAST(:gift_codes AS text[]))) t) AS gift_types,"
    "        (SELECT coalesce(json_agg(sent), '[]')"
    "           FROM unnest(CAST(:senders AS text[]), CAST(:keys AS text[])) AS asked(s, k)"
    "           JOIN LATERAL (SELECT * FROM gift"
    "                          WHERE sender_id = asked.s AND idempotency_key = asked.k"
    "                          LIMIT 1) sent ON true) AS sent,"
    "        (SELECT coalesce(json_agg(user_id), '[]') FROM user_status"
    "          WHERE frozen AND user_id = ANY(CAST(:senders AS text[]))) AS frozen"
)


_GIFT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sender_id", "text"),
    ("idempotency_key", "text"),
    ("request_hash", "text"),
    ("stream_id", "bigint"),
    ("creator_id", "text"),
    ("gift_code", "text"),
    ("quantity", "bigint"),
    ("coin_price", "bigint"),
    ("coins", "bigint"),
    ("value_micros", "bigint"),
    ("diamonds", "bigint"),
    ("payable_micros", "bigint"),
)
_POSTING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("account_id", "bigint"),
    ("commodity", "text"),
    ("amount", "bigint"),
    ("account_seq", "bigint"),
    ("balance_after", "bigint"),
)


def _names(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(name for name, _ in columns)


def _record_type(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{name} {sql_type}" for name, sql_type in columns)


_WRITE_BATCH = text(
    # One statement: the entries, then their postings and gift records, matched by event key.
    # Each table's rows come as one JSON array: cheaper to send than a column array apiece.
    "WITH now AS MATERIALIZED (SELECT clock_timestamp() AS at),"
    " entries AS ("
    "   INSERT INTO journal_entry (kind, event_key, fingerprint, posted_at, actor, rates, refs,"
    "                              memo)"
    "   SELECT 'gift', e.event_key, e.fingerprint, now.at, e.actor, e.rates, e.refs, e.memo"
    "     FROM now, jsonb_to_recordset(CAST(:entries AS jsonb))"
    "          AS e(event_key text, fingerprint text, actor text, rates jsonb, refs jsonb,"
    "               memo text)"
    "   RETURNING id, event_key, posted_at),"
    " postings AS ("
    "   INSERT INTO posting (entry_id, posted_at, " + _names(_POSTING_COLUMNS) + ")"
    "   SELECT entries.id, entries.posted_at, " + _names(_POSTING_COLUMNS) + ""
    "     FROM jsonb_to_recordset(CAST(:postings AS jsonb))"
    "          AS p(entry_id bigint, " + _record_type(_POSTING_COLUMNS) + ")"
    "     JOIN entries ON entries.event_key = (CAST(:event_keys AS text[]))[p.entry_id + 1]),"
    " gifts AS ("
    "   INSERT INTO gift (" + _names(_GIFT_COLUMNS) + ", entry_id, created_at, release_at)"
    "   SELECT " + _names(_GIFT_COLUMNS) + ", entries.id, entries.posted_at,"
    "          entries.posted_at + CAST(:hold AS interval)"
    "     FROM jsonb_to_recordset(CAST(:gifts AS jsonb))"
    "          AS g(event_key text, " + _record_type(_GIFT_COLUMNS) + ")"
    "     JOIN entries USING (event_key)"
    "   RETURNING id, entry_id, release_at)"
    " SELECT entries.event_key, entries.id AS entry_id, entries.posted_at,"
    "        gifts.id AS gift_id, gifts.release_at"
    "   FROM entries JOIN gifts ON gifts.entry_id = entries.id"
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
    session: AsyncSession,
    requests: Sequence[GiftRequest],
    terms: GiftTerms,
    stream_creators: dict[int, str] | None = None,
) -> list[GiftResult | LedgerError]:
    """Post ``requests`` (distinct (sender, idempotency key) pairs) inside the caller's
    transaction; one outcome per request, in order: the gift, or why it was refused.

    ``stream_creators`` remembers whose stream each stream is (that never changes), so that a
    batch knows every account it touches before it reads anything: it then reads and locks all
    it needs in one statement. A stream it does not know yet costs one more read.
    """
    creators = {} if stream_creators is None else stream_creators
    unknown = sorted({r.stream_id for r in requests} - creators.keys())
    if unknown:
        creators.update(
            (row.id, row.creator_id)
            for row in await session.execute(_STREAM_CREATORS, {"ids": unknown})
        )
    wanted: dict[str, AccountSpec] = {a.code: a for a in platform_gift_accounts(terms)}
    for request in requests:
        creator = creators.get(request.stream_id)
        wanted.update((a.code, a) for a in gift_accounts(terms, request.sender_id, creator))

    # A retry racing its first attempt from another server process is still posted once: the
    # entry's event key is unique, the batch that loses fails as a whole, and its gifts are
    # then written one by one, each finding the first.
    senders = [r.sender_id for r in requests]
    context = (
        await session.execute(
            _BATCH_CONTEXT,
            {
                "stream_ids": sorted({r.stream_id for r in requests}),
                "account_codes": list(wanted),
                "gift_codes": sorted({r.gift_code for r in requests}),
                "senders": senders,
                "keys": [r.idempotency_key for r in requests],
            },
        )
    ).one()
    streams = {row["id"]: _stream_row(row) for row in _json(context.streams)}
    gift_types = {row["code"]: _GiftType(**row) for row in _json(context.gift_types)}
    sent_before = {
        (row["sender_id"], row["idempotency_key"]): _sent_gift(row) for row in _json(context.sent)
    }
    frozen = set(_json(context.frozen))
    rows = [_AccountRow(**row) for row in _json(context.accounts)]
    if len(rows) == len(wanted):
        books = LockedBooks(locked_accounts(rows, wanted))
    else:  # accounts to open first: a creator's first gift, a sender who never bought coins
        books = LockedBooks(await lock_accounts(session, wanted.values()))

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
                    len(accepted),
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


@dataclass(frozen=True, slots=True)
class _GiftType:
    code: str
    name: str
    coin_price: int
    active: bool


@dataclass(frozen=True, slots=True)
class _AccountRow:
    id: int
    code: str
    commodity: str
    type: str
    contra: bool
    no_overdraft: bool
    balance: int
    posting_count: int


def _json(value: Any) -> list[Any]:
    """A json_agg column: decoded by the driver, or its text."""
    decoded = json.loads(value) if isinstance(value, str) else value
    assert isinstance(decoded, list)
    return decoded


def _timestamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _stream_row(row: dict[str, Any]) -> StreamRow:
    return StreamRow(
        **{
            **row,
            "started_at": _timestamp(row["started_at"]),
            "ended_at": _timestamp(row["ended_at"]),
        }
    )


def _sent_gift(row: dict[str, Any]) -> SentGift:
    return SentGift(
        **{
            **row,
            "created_at": datetime.fromisoformat(row["created_at"]),
            "release_at": datetime.fromisoformat(row["release_at"]),
        }
    )


def _replay(existing: SentGift, request: GiftRequest) -> GiftResult:
    if existing.request_hash != request.fingerprint():
        raise IdempotencyKeyReused(
            "This idempotency key was used for a different gift",
            field="idempotencyKey",
            gift_id=existing.id,
        )
    return GiftResult(existing, replayed=True)


def _check_and_lay(
    index: int,
    ordinal: int,
    request: GiftRequest,
    books: LockedBooks,
    stream: StreamRow | None,
    gift_type: _GiftType | None,
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
    wallet_coins = books.normal_balance(chart.user_coins(request.sender_id).code)
    wallet_value = books.normal_balance(
        chart.user_coins_value(request.sender_id, terms.functional_currency).code
    )
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
    postings = books.lay(entry, entry_id=ordinal)
    wallet_after = Wallet(
        request.sender_id,
        books.normal_balance(chart.user_coins(request.sender_id).code),
        books.normal_balance(
            chart.user_coins_value(request.sender_id, terms.functional_currency).code
        ),
        terms.functional_currency,
        as_of=None,
    )
    return _Accepted(
        index=index,
        request=request,
        request_hash=request.fingerprint(),
        stream=stream,
        gift_name=gift_type.name,
        coin_price=gift_type.coin_price,
        wallet_after=wallet_after,
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
    """The batch's entries, all their postings and the gift records, in one statement."""
    records = [_record(g) for g in accepted]
    params = {
        "entries": json.dumps(
            [
                {
                    "event_key": g.entry.event_key,
                    "fingerprint": fingerprint(g.entry),
                    "actor": g.entry.actor,
                    "rates": dict(g.entry.rates),
                    "refs": dict(g.entry.refs),
                    "memo": g.entry.memo,
                }
                for g in accepted
            ]
        ),
        # Postings name their entry by its place in the batch (``event_keys``).
        "postings": json.dumps([row for g in accepted for row in g.postings]),
        "event_keys": [g.entry.event_key for g in accepted],
        "gifts": json.dumps(
            [
                {**record, "event_key": g.entry.event_key}
                for g, record in zip(accepted, records, strict=True)
            ]
        ),
        "hold": terms.hold,
    }
    written = {row.event_key: row for row in await session.execute(_WRITE_BATCH, params)}
    results = []
    for gift, record in zip(accepted, records, strict=True):
        row = written[gift.entry.event_key]
        saved = SentGift(
            id=row.gift_id,
            entry_id=row.entry_id,
            created_at=row.posted_at,
            release_at=row.release_at,
            release_entry_id=None,
            **record,
        )
        results.append(
            _Written(
                gift.index,
                GiftResult(
                    saved,
                    replayed=False,
                    stream=gift.stream,
                    gift_name=gift.gift_name,
                    wallet_after=gift.wallet_after,
                ),
            )
        )
    return results


def _record(gift: _Accepted) -> dict[str, Any]:
    """The gift's record, but for what the database assigns (its id, entry and times)."""
    request, amounts = gift.request, gift.amounts
    return {
        "sender_id": request.sender_id,
        "idempotency_key": request.idempotency_key,
        "request_hash": gift.request_hash,
        "stream_id": request.stream_id,
        "creator_id": gift.stream.creator_id,
        "gift_code": request.gift_code,
        "quantity": request.quantity,
        "coin_price": gift.coin_price,
        "coins": request.quantity * gift.coin_price,
        "value_micros": amounts.value_micros,
        "diamonds": amounts.diamonds,
        "payable_micros": amounts.payable_micros,
    }
