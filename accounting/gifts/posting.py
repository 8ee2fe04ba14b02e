"""Posting a batch of gifts in one transaction, with one statement per table.

The gifts of a batch are taken in the order they arrived, as if one after another: each is
checked (stream live, gift on sale, sender not frozen, enough coins) against the books as the
gifts before it in the batch left them, and one that fails is answered with its error and
leaves no trace, while the others go on. Then the whole batch is written: its journal
entries, all their postings, and the gift records, each in one INSERT ... SELECT FROM unnest;
the database checks the postings statement as a whole (migrations/sql/0004), and moves each
account's balance once per batch however many gifts touched it.

The gift rate limit (at most so many gifts per sender within a sliding window) is checked in
the same order, counting the sender's gifts already in the window and those accepted earlier in
the batch; what it needs is read by the batch's one reading statement (see ``_SenderRate``).

Locks: the streams are held FOR KEY SHARE (a stream ending waits for the gifts in flight, and
a gift after it sees the stream ended); every account the batch touches is locked FOR UPDATE
in one statement, in ascending id order, before any balance is read, so two batches over the
same accounts queue rather than deadlock.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.gifts.errors import (
    GiftNotFound,
    GiftRateLimited,
    GiftRetired,
    SelfGift,
    StreamNotFound,
    StreamNotLive,
)
from accounting.gifts.rules import CoinRates, GiftAmounts, Spending, gift_entry
from accounting.gifts.tables import StreamRow
from accounting.ledger import chart, idempotency
from accounting.ledger.balances import Wallet
from accounting.ledger.chart import AccountSpec
from accounting.ledger.entries import Entry
from accounting.ledger.errors import (
    AccountFrozen,
    IdempotencyKeyReused,
    InsufficientCoins,
    LedgerError,
)
from accounting.ledger.posting import LockedBooks, fingerprint, lock_accounts, locked_accounts


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
class GiftRateLimit:
    """At most ``gifts`` gifts from one sender within any ``window`` (a sliding window ending
    at the batch's transaction time). A gift of any quantity is one gift; a refused gift does
    not count."""

    gifts: int
    window: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        if self.gifts < 1:
            raise ValueError("a gift rate limit allows at least one gift")
        if self.window <= timedelta(0):
            raise ValueError("a gift rate window is longer than zero")

    @property
    def window_seconds(self) -> int:
        return int(self.window.total_seconds())


@dataclass(frozen=True, slots=True)
class GiftTerms:
    """What every gift of a service is posted at: the rates, the hold, the currency, and the
    rate limit (None: none)."""

    rates: CoinRates
    hold: timedelta
    functional_currency: str
    rate_limit: GiftRateLimit | None = None


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
_SENT_IN_WINDOW = (
    # A sender's gifts within the rate window, counted among their newest ``limit`` gifts only
    # (index ix_gift_sender; a sender's gifts are written under their wallet's lock, so their
    # ids follow their times): the count is exact up to the limit, and never costs more.
    "(SELECT count(*) FROM (SELECT g.created_at FROM gift g WHERE g.sender_id = {sender}"
    "                        ORDER BY g.id DESC LIMIT CAST(:rate_limit AS bigint)) newest"
    "  WHERE newest.created_at > now() - CAST(:rate_window AS interval))"
)
_BATCH_CONTEXT = text(
    # Everything a batch reads, in one round trip: its streams (FOR KEY SHARE: a stream ending
    # waits for the batch, and a batch after it sees the stream ended), then every account it
    # touches (FOR UPDATE, in ascending id order, so batches queue instead of deadlocking), the
    # gift types, what was sent before under the batch's idempotency keys, who is frozen, and
    # for the rate limit, per sender: the wallet's postings as this statement's snapshot saw
    # them, the sequence number of its last posting before the window (one index probe), and,
    # only for a sender whose postings in the window could reach the limit, the gifts sent in it.
    "WITH streams AS ("
    "   SELECT * FROM stream WHERE id = ANY(CAST(:stream_ids AS bigint[]))"
    "    ORDER BY id FOR KEY SHARE),"
    " accounts AS ("
    "   SELECT id, code, commodity, type, contra, no_overdraft, balance, posting_count"
    "     FROM account WHERE code = ANY(CAST(:account_codes AS text[]))"
    "    ORDER BY id FOR UPDATE),"
    " rates AS MATERIALIZED ("
    "   SELECT asked.sender_id, asked.gifts,"
    "          coalesce(seen.posting_count, 0) AS seen_postings,"
    "          coalesce(locked.posting_count, 0) AS locked_postings,"
    "          coalesce((SELECT p.account_seq FROM posting p"
    "                     WHERE p.account_id = seen.id"
    "                       AND p.posted_at <= now() - CAST(:rate_window AS interval)"
    "                     ORDER BY p.posted_at DESC, p.account_seq DESC LIMIT 1), 0)"
    "            AS edge_seq"
    "     FROM unnest(CAST(:rate_senders AS text[]), CAST(:rate_wallets AS text[]),"
    "                 CAST(:rate_gifts AS bigint[])) AS asked(sender_id, wallet, gifts)"
    "     LEFT JOIN account seen ON seen.code = asked.wallet"
    "     LEFT JOIN accounts locked ON locked.code = asked.wallet)"
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
    "          WHERE frozen AND user_id = ANY(CAST(:senders AS text[]))) AS frozen,"
    "        (SELECT coalesce(json_agg(r), '[]')"
    "           FROM (SELECT sender_id, seen_postings, edge_seq,"
    "                        CASE WHEN locked_postings - edge_seq + gifts"
    "                                  > CAST(:rate_limit AS bigint)"
    "                             THEN " + _SENT_IN_WINDOW.format(sender="rates.sender_id") + ""
    "                        END AS sent_in_window"
    "                   FROM rates) r) AS rates"
)
_RECOUNT_SENT_IN_WINDOW = text(
    # The same count, for senders whose gifts the batch's reading statement may not have seen
    # all of; run once the batch holds their wallets' locks, so no more can be added meanwhile.
    "SELECT asked.sender_id, "
    + _SENT_IN_WINDOW.format(sender="asked.sender_id")
    + " AS sent_in_window FROM unnest(CAST(:senders AS text[])) AS asked(sender_id)"
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
    """Every account a gift from ``sender_id`` to ``creator_id`` may post to, the platform's
    sub-accounts of the sender (coins spent) and of the creator (the rest) among them."""
    currency = terms.functional_currency
    accounts = [
        chart.user_coins(sender_id),
        chart.user_coins_value(sender_id, currency),
        chart.coins_spent(sender_id),
    ]
    if creator_id is not None:
        accounts += [
            chart.creator_payable(creator_id, currency),
            chart.creator_diamonds(creator_id, "pending"),
            chart.gift_revenue(currency, creator_id),
            chart.promotions(currency, creator_id),
            chart.diamonds_issued(creator_id),
        ]
    return accounts


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
    creators = await _learn_stream_creators(session, requests, stream_creators)
    wanted: dict[str, AccountSpec] = {}
    for request in requests:
        creator = creators.get(request.stream_id)
        wanted.update((a.code, a) for a in gift_accounts(terms, request.sender_id, creator))
    batch = await _read_batch(session, requests, wanted, terms)
    outcomes, accepted = _check_in_order(requests, batch, terms)
    if accepted:
        for gift in await _write(session, accepted, terms):
            outcomes[gift.index] = gift.result
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


async def _learn_stream_creators(
    session: AsyncSession,
    requests: Sequence[GiftRequest],
    stream_creators: dict[int, str] | None,
) -> dict[int, str]:
    """Whose stream each of the batch's streams is: as remembered, the others read (and
    remembered from now on)."""
    creators = {} if stream_creators is None else stream_creators
    unknown = sorted({r.stream_id for r in requests} - creators.keys())
    if unknown:
        creators.update(
            (row.id, row.creator_id)
            for row in await session.execute(_STREAM_CREATORS, {"ids": unknown})
        )
    return creators


@dataclass(frozen=True, slots=True)
class _Batch:
    """What a batch read (in its one reading statement, but for accounts to open first and
    rate recounts) and checks its gifts against, in order."""

    streams: dict[int, StreamRow]
    gift_types: dict[str, _GiftType]
    sent_before: dict[tuple[str, str], SentGift]
    """Gifts sent before under the batch's (sender, idempotency key) pairs."""
    frozen: set[str]
    """The batch's senders whose accounts are frozen."""
    books: LockedBooks
    rates: dict[str, _SenderRate]
    """Per sender, when a rate limit is set."""


async def _read_batch(
    session: AsyncSession,
    requests: Sequence[GiftRequest],
    wanted: dict[str, AccountSpec],
    terms: GiftTerms,
) -> _Batch:
    """Read and lock all the batch needs (``_BATCH_CONTEXT``)."""
    # A retry racing its first attempt from another server process is still posted once: the
    # entry's event key is unique, the batch that loses fails as a whole, and its gifts are
    # then written one by one, each finding the first.
    senders = [r.sender_id for r in requests]
    limit = terms.rate_limit
    batch_gifts = Counter(senders) if limit is not None else Counter[str]()
    wallets = {sender: chart.user_coins(sender).code for sender in sorted(batch_gifts)}
    context = (
        await session.execute(
            _BATCH_CONTEXT,
            {
                "stream_ids": sorted({r.stream_id for r in requests}),
                "account_codes": list(wanted),
                "gift_codes": sorted({r.gift_code for r in requests}),
                "senders": senders,
                "keys": [r.idempotency_key for r in requests],
                "rate_senders": list(wallets),
                "rate_wallets": list(wallets.values()),
                "rate_gifts": [batch_gifts[sender] for sender in wallets],
                "rate_limit": None if limit is None else limit.gifts,
                "rate_window": None if limit is None else limit.window,
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
        books = LockedBooks(locked_accounts(session, rows, wanted))
    else:  # accounts to open first: a creator's first gift, a sender who never bought coins
        books = LockedBooks(await lock_accounts(session, wanted.values()))
    rates = (
        {}
        if limit is None
        else await _sender_rates(session, _json(context.rates), books, wallets, batch_gifts, limit)
    )
    return _Batch(streams, gift_types, sent_before, frozen, books, rates)


def _check_in_order(
    requests: Sequence[GiftRequest], batch: _Batch, terms: GiftTerms
) -> tuple[list[GiftResult | LedgerError | None], list[_Accepted]]:
    """Each gift, in the order it arrived: a replay of the gift sent before under its key, or
    checked and laid on the books as the gifts before it left them, or refused. The outcomes
    of the gifts accepted are left for their writing."""
    outcomes: list[GiftResult | LedgerError | None] = [None] * len(requests)
    accepted: list[_Accepted] = []
    for index, request in enumerate(requests):
        try:
            existing = batch.sent_before.get((request.sender_id, request.idempotency_key))
            if existing is not None:
                outcomes[index] = _replay(existing, request)
                continue
            accepted.append(_check_and_lay(index, len(accepted), request, batch, terms))
            if request.sender_id in batch.rates:
                batch.rates[request.sender_id].accepted += 1
        except LedgerError as refused:
            outcomes[index] = refused
    return outcomes, accepted


@dataclass(slots=True)
class _SenderRate:
    """One sender's gifts in the rate window, as far as the batch needs to know them.

    ``postings_in_window`` bounds the gifts sent in the window from above: every gift posts to
    the sender's coin wallet (so do purchases and other spends), and a wallet's postings are
    numbered in time order, so the postings in the window are the wallet's count, read from its
    locked row, less the number of the last posting before the window. That costs one index
    probe, however fast the sender sends. Only when the bound, with the batch's own gifts,
    could reach the limit are the gifts themselves counted (``sent_in_window``).

    The reading statement locks the wallet but sees the gift table as of its start: had another
    transaction written gifts of this sender in between (it then held the lock the statement
    waited for), the wallet's posting count as the statement saw it differs from the locked
    one, and the gifts are counted again under the lock (``_sender_rates``)."""

    postings_in_window: int
    sent_in_window: int | None
    accepted: int = 0
    """Gifts of this sender accepted earlier in this batch."""

    def check(self, limit: GiftRateLimit, sender_id: str) -> None:
        if self.postings_in_window + self.accepted < limit.gifts:
            return
        assert self.sent_in_window is not None, "counted whenever the bound could reach it"
        sent = self.sent_in_window + self.accepted
        if sent >= limit.gifts:
            raise GiftRateLimited(
                f"{sender_id} sent {sent:,} gifts in the last {limit.window_seconds:,} seconds: "
                f"at most {limit.gifts:,} are allowed; try again shortly",
                limit_gifts=limit.gifts,
                window_seconds=limit.window_seconds,
                sent_in_window=sent,
            )


async def _sender_rates(
    session: AsyncSession,
    rows: list[dict[str, Any]],
    books: LockedBooks,
    wallets: dict[str, str],
    batch_gifts: Counter[str],
    limit: GiftRateLimit,
) -> dict[str, _SenderRate]:
    """Each sender's ``_SenderRate`` from the reading statement's ``rates``; senders whose
    gifts it may have counted short are counted again, in one more statement (rare: only a
    sender near the limit whose wallet another transaction wrote to while the batch waited)."""
    rates: dict[str, _SenderRate] = {}
    recount: list[str] = []
    for row in rows:
        sender = row["sender_id"]
        locked_postings = books.opening_posting_count(wallets[sender])
        rate = _SenderRate(locked_postings - row["edge_seq"], row["sent_in_window"])
        could_reach = rate.postings_in_window + batch_gifts[sender] > limit.gifts
        if could_reach and (rate.sent_in_window is None or row["seen_postings"] != locked_postings):
            recount.append(sender)
        rates[sender] = rate
    if recount:
        counted = await session.execute(
            _RECOUNT_SENT_IN_WINDOW,
            {"senders": recount, "rate_limit": limit.gifts, "rate_window": limit.window},
        )
        for sender, sent in counted.all():
            rates[sender].sent_in_window = sent
    return rates


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
    index: int, ordinal: int, request: GiftRequest, batch: _Batch, terms: GiftTerms
) -> _Accepted:
    """Every check of one gift, in the order a single gift is checked, against the books as
    the batch has left them; then its entry, laid on the books."""
    stream, gift_type = _check_gift(request, batch, terms)
    books = batch.books
    held = _wallet(books, request.sender_id, terms.functional_currency)
    coins = request.quantity * gift_type.coin_price
    if held.coins < coins:
        raise InsufficientCoins(
            f"{coins:,} coins needed, {held.coins:,} held",
            field="quantity",
            held=held.coins,
            needed=coins,
        )
    spending = Spending(request.sender_id, coins, held.coins, held.coins_value_micros)
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
    return _Accepted(
        index=index,
        request=request,
        request_hash=request.fingerprint(),
        stream=stream,
        gift_name=gift_type.name,
        coin_price=gift_type.coin_price,
        wallet_after=_wallet(books, request.sender_id, terms.functional_currency),
        entry=entry,
        amounts=amounts,
        postings=postings,
    )


def _check_gift(
    request: GiftRequest, batch: _Batch, terms: GiftTerms
) -> tuple[StreamRow, _GiftType]:
    """The gift's stream (someone else's, live) and gift type (on sale); its sender not frozen
    and within the rate limit."""
    stream = batch.streams.get(request.stream_id)
    gift_type = batch.gift_types.get(request.gift_code)
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
    if request.sender_id in batch.frozen:
        raise AccountFrozen(
            f"Account {request.sender_id} is frozen: it may not send gifts",
            user_id=request.sender_id,
        )
    rate = batch.rates.get(request.sender_id)
    if rate is not None and terms.rate_limit is not None:
        rate.check(terms.rate_limit, request.sender_id)
    return stream, gift_type


def _wallet(books: LockedBooks, sender_id: str, currency: str) -> Wallet:
    """The sender's wallet as the batch's books stand."""
    return Wallet(
        sender_id,
        books.normal_balance(chart.user_coins(sender_id).code),
        books.normal_balance(chart.user_coins_value(sender_id, currency).code),
        currency,
        as_of=None,
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
