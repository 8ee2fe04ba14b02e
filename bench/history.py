"""A long history in the books, written fast: wallets, their opening balances and millions of
transfers between them, inserted set-based (``INSERT ... SELECT generate_series``) in chunks,
one transaction per chunk, every rule the database enforces kept.

What is written:

- ``users`` wallets (``user:hist-<run>-<i>:coins`` and ``...:coins_value``), opened at zero;
- their opening balances: ``transfer`` entries of up to OPENING_GROUP wallets each, COIN from
  ``platform:coins:issued`` and their value (USD) from ``platform:bank:USD``;
- ``transfer`` entries of four postings each: a few coins and their value (at the web price
  of a coin) from one wallet to another. One entry in eight has one of the first ``readers``
  wallets as its sender or receiver, so those wallets (the ones the benchmark reads) carry a
  long history of their own.

The rules (migrations/sql/invariants/postings.sql): every entry balances per commodity and has at
least two postings, all inserted by one statement in the transaction that created the entry; a
posting's commodity is its account's; for each account the postings carry ``account_seq``
1, 2, 3, ... and ``balance_after`` (the running debit-positive balance) in the order they are
written, continuing from the account's ``posting_count`` and ``balance``: computed here with
window functions, so they are right whether the database computes them itself or verifies
them. Opening balances are far larger than anything the transfers move, so no wallet ever goes
below zero. Entries are dated in the past, evenly over the year (HISTORY_SPAN) that ends an
hour ago, in id order, so every account's history is in time order and the finance reads'
periods named a day or a month are one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from accounting.ledger import chart

OPENING_COINS = 1_000_000_000
"""Each wallet's opening balance: no run of transfers comes close to spending it."""
COIN_VALUE_MICROS = 14_300
"""What a coin's value is taken to be ($0.0143, the web price of a custom amount)."""
OPENING_GROUP = 20
"""Wallets per opening-balance entry (2 + 2 x 20 = 42 postings)."""
POSTINGS_PER_TRANSFER = 4
DEFAULT_CHUNK_POSTINGS = 250_000
HISTORY_SPAN = timedelta(days=365)
"""How far back the history's first entry is dated, whatever the number of entries: a
10,000,000-posting history is an entry every 12.6 s, as a year of a service's books would be
spread (the finance reads' stored totals then hold 8,760 hours of it)."""
MIN_ENTRY_STEP = timedelta(milliseconds=10)
"""The closest two entries are dated, when the history must start after postings already
there and so end nearer now."""
READER_SHARE = 16
"""One transfer in READER_SHARE is sent by a reader wallet, one more is received by one."""

_HASH = 2654435761
"""Knuth's multiplicative hash: spreads consecutive entry ids over the wallets."""


@dataclass(frozen=True, slots=True)
class SeedProgress:
    postings: int
    """Postings in the books now (the whole ``posting`` table)."""
    entries: int
    postings_written: int
    """Postings this seeder wrote (opening balances included)."""
    seconds: float
    """Time spent writing them (every chunk's transaction, commit included)."""

    @property
    def postings_per_second(self) -> float:
        return self.postings_written / self.seconds if self.seconds > 0 else 0.0


class HistorySeeder:
    """Writes the history through one asyncpg connection (its temporary table maps wallet
    numbers to account ids). ``readers`` must be smaller than ``users``."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        *,
        users: int,
        readers: int,
        chunk_postings: int = DEFAULT_CHUNK_POSTINGS,
        functional_currency: str = "USD",
    ) -> None:
        if not 0 < readers < users - 2:
            raise ValueError("need more wallets than readers, and at least three")
        if chunk_postings < POSTINGS_PER_TRANSFER:
            raise ValueError("a chunk holds at least one transfer")
        self.conn = conn
        self.users = users
        self.readers = readers
        self.chunk_postings = chunk_postings
        self.currency = functional_currency
        self.run = uuid.uuid4().hex[:8]
        self.epoch = datetime.now(UTC)
        self.entry_step = MIN_ENTRY_STEP
        self.seconds = 0.0
        self.postings_written = 0
        self.entries_written = 0
        self._postings_before = 0
        self._entries_before = 0
        self.last_entry_id = 0

    def user_id(self, index: int) -> str:
        return f"hist-{self.run}-{index}"

    @property
    def reader_ids(self) -> list[str]:
        return [self.user_id(i) for i in range(self.readers)]

    @property
    def middle_instant(self) -> datetime:
        """Halfway through the history written so far: the date of the entry whose id is half
        the newest's."""
        return self.epoch + self.entry_step * (self.last_entry_id // 2)

    @property
    def postings(self) -> int:
        """Postings in the books: those counted when the wallets opened, and this seeder's
        since (nothing else writes to the database meanwhile)."""
        return self._postings_before + self.postings_written

    async def progress(self) -> SeedProgress:
        return SeedProgress(
            postings=self.postings,
            entries=self._entries_before + self.entries_written,
            postings_written=self.postings_written,
            seconds=self.seconds,
        )

    async def open_wallets(self, planned_postings: int) -> None:
        """Open the wallets and post their opening balances (one transaction). Entries will be
        dated from far enough back for ``planned_postings`` to end before now."""
        started = time.monotonic()
        await self._date_from(planned_postings)
        async with self.conn.transaction():
            await self._open_accounts()
            written = await self._post_opening_balances()
        self.postings_written += _rows(written)
        self.seconds += time.monotonic() - started

    async def _date_from(self, planned_postings: int) -> None:
        """Count what the books hold, and date the history's first entry far enough back for
        ``planned_postings`` (but never before a posting already there)."""
        self._postings_before = int(await self.conn.fetchval("SELECT count(*) FROM posting"))
        self._entries_before = int(await self.conn.fetchval("SELECT count(*) FROM journal_entry"))
        planned_entries = planned_postings // POSTINGS_PER_TRANSFER + self.users
        latest = await self.conn.fetchval("SELECT max(posted_at) FROM journal_entry")
        next_id = int(await self.conn.fetchval("SELECT last_value FROM journal_entry_id_seq"))
        end = datetime.now(UTC) - timedelta(hours=1)
        first = end - HISTORY_SPAN
        if latest is not None and latest > first:
            # Never date a posting before one already on a shared platform account.
            first = latest
        end = max(end, first + MIN_ENTRY_STEP * planned_entries)
        self.entry_step = (end - first) / planned_entries
        self.epoch = first - self.entry_step * next_id

    async def _open_accounts(self) -> None:
        """Every wallet's two accounts, at zero, and the temporary table of their ids."""
        coins = chart.user_coins("x")
        value = chart.user_coins_value("x", self.currency)
        for spec, suffix in ((coins, "coins"), (value, "coins_value")):
            await self.conn.execute(
                """
                INSERT INTO account (code, commodity, type, contra, no_overdraft, normal_sign)
                SELECT format('user:hist-%s-%s:%s', $1::text, i, $2::text),
                       $3, $4, $5, $6, $7
                  FROM generate_series(0, $8 - 1) i""",
                self.run,
                suffix,
                spec.commodity,
                str(spec.type),
                spec.contra,
                spec.no_overdraft,
                spec.normal_sign,
                self.users,
            )
        await self.conn.execute(
            """
            CREATE TEMPORARY TABLE hist_wallet (
                i integer PRIMARY KEY, coins_id bigint NOT NULL, value_id bigint NOT NULL)
            ON COMMIT PRESERVE ROWS"""
        )
        await self.conn.execute(
            """
            INSERT INTO hist_wallet (i, coins_id, value_id)
            SELECT i, c.id, v.id
              FROM generate_series(0, $2 - 1) i
              JOIN account c ON c.code = format('user:hist-%s-%s:coins', $1::text, i)
              JOIN account v ON v.code = format('user:hist-%s-%s:coins_value', $1::text, i)
            """,
            self.run,
            self.users,
        )

    async def _post_opening_balances(self) -> str:
        """One entry per OPENING_GROUP wallets: their coins from ``coins:issued``, their value
        from the bank. The ``INSERT``'s status line."""
        groups = -(-self.users // OPENING_GROUP)
        first, last = await self._entries(groups, "opening balances")
        status: str = await self.conn.execute(
            """
            WITH e AS (
                SELECT id, posted_at, row_number() OVER (ORDER BY id) - 1 AS g
                  FROM journal_entry WHERE id BETWEEN $1 AND $2),
            issued AS (SELECT id FROM account WHERE code = $3),
            bank AS (SELECT id FROM account WHERE code = $4),
            p AS (
                SELECT e.id AS entry_id, e.posted_at, w.coins_id AS account_id,
                       -$5::bigint AS amount
                  FROM e JOIN hist_wallet w ON w.i / $7 = e.g
                UNION ALL
                SELECT e.id, e.posted_at, w.value_id, -$6::bigint
                  FROM e JOIN hist_wallet w ON w.i / $7 = e.g
                UNION ALL
                SELECT e.id, e.posted_at, (SELECT id FROM issued),
                       $5::bigint * count(*)
                  FROM e JOIN hist_wallet w ON w.i / $7 = e.g GROUP BY e.id, e.posted_at
                UNION ALL
                SELECT e.id, e.posted_at, (SELECT id FROM bank),
                       $6::bigint * count(*)
                  FROM e JOIN hist_wallet w ON w.i / $7 = e.g GROUP BY e.id, e.posted_at)
            """
            + _INSERT_POSTINGS,
            first,
            last,
            chart.coins_issued().code,
            chart.bank(self.currency).code,
            OPENING_COINS,
            OPENING_COINS * COIN_VALUE_MICROS,
            OPENING_GROUP,
        )
        return status

    async def grow_to(self, target_postings: int) -> SeedProgress:
        """Add transfers, a chunk per transaction, until the books hold ``target_postings``
        postings (or the next multiple of four above)."""
        current = self.postings
        while current < target_postings:
            entries = min(
                -(-(target_postings - current) // POSTINGS_PER_TRANSFER),
                self.chunk_postings // POSTINGS_PER_TRANSFER,
            )
            started = time.monotonic()
            async with self.conn.transaction():
                first, last = await self._entries(entries, "transfer")
                written = await self.conn.execute(
                    """
                    WITH e AS (
                        SELECT id, posted_at,
                               (id * $3::bigint) % 4294967296 AS h1,
                               (id * $3::bigint * 7 + 11) % 4294967296 AS h2
                          FROM journal_entry WHERE id BETWEEN $1 AND $2),
                    t AS (
                        SELECT id, posted_at, 1 + id % 97 AS coins,
                               CASE WHEN id % $6 = 0 THEN (id / $6) % $5
                                    ELSE $5 + h1 % ($4 - $5) END AS sender,
                               CASE WHEN id % $6 = 1 THEN (id / $6) % $5
                                    WHEN id % $6 = 0 THEN $5 + h2 % ($4 - $5)
                                    ELSE $5 + (h1 % ($4 - $5) + 1 + h2 % ($4 - $5 - 1))
                                              % ($4 - $5) END AS receiver
                          FROM e),
                    p AS (
                        SELECT t.id AS entry_id, t.posted_at, x.account_id, x.amount
                          FROM t
                          JOIN hist_wallet s ON s.i = t.sender
                          JOIN hist_wallet r ON r.i = t.receiver
                         CROSS JOIN LATERAL (VALUES
                               (s.coins_id, t.coins),
                               (r.coins_id, -t.coins),
                               (s.value_id, t.coins * $7::bigint),
                               (r.value_id, -t.coins * $7::bigint))
                               AS x(account_id, amount))
                    """
                    + _INSERT_POSTINGS,
                    first,
                    last,
                    _HASH,
                    self.users,
                    self.readers,
                    READER_SHARE,
                    COIN_VALUE_MICROS,
                )
            self.seconds += time.monotonic() - started
            self.postings_written += _rows(written)
            current = self.postings
        return await self.progress()

    async def _entries(self, count: int, memo: str) -> tuple[int, int]:
        """``count`` new ``transfer`` entries, ids and dates in step: their first and last id."""
        row = await self.conn.fetchrow(
            """
            WITH ids AS (
                SELECT nextval('journal_entry_id_seq') AS id FROM generate_series(1, $1)),
            e AS (
                INSERT INTO journal_entry
                       (id, kind, event_key, fingerprint, created_txid, posted_at, actor, memo)
                SELECT id, 'transfer', format('bench-history:%s:%s', $2::text, id),
                       'bench-history', pg_current_xact_id()::text::bigint,
                       $3::timestamptz + id * $4::interval, 'bench', $5
                  FROM ids ORDER BY id
                RETURNING id)
            SELECT min(id), max(id), count(*) FROM e""",
            count,
            self.run,
            self.epoch,
            self.entry_step,
            memo,
        )
        assert row is not None and row[2] == count == row[1] - row[0] + 1
        self.entries_written += count
        self.last_entry_id = int(row[1])
        return int(row[0]), int(row[1])


_INSERT_POSTINGS = """
INSERT INTO posting (entry_id, posted_at, account_id, commodity, amount, account_seq,
                     balance_after)
SELECT p.entry_id, p.posted_at, p.account_id, a.commodity, p.amount,
       a.posting_count + row_number() OVER w,
       a.balance + sum(p.amount) OVER w
  FROM p JOIN account a ON a.id = p.account_id
WINDOW w AS (PARTITION BY p.account_id ORDER BY p.entry_id
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
 ORDER BY p.entry_id, p.account_id"""
"""The postings of ``p`` (entry_id, posted_at, account_id, amount; an account at most once per
entry), with each account's sequence and running balance continuing from what the account
holds, written in entry order (and, within an entry, in account order)."""


def _rows(status: str) -> int:
    """Rows an ``INSERT`` wrote, from its status line (``INSERT 0 250000``)."""
    return int(status.rsplit(" ", 1)[-1])
