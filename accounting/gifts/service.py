"""Spending coins: gifts to creators in live streams, and premium feature unlocks.

Every spend locks the spender's wallet, with every other account it posts to in one statement
(accounting/ledger/locks.py), before reading it, so spends from one wallet serialise: the
weighted-average value each releases is computed from the wallet as it really is, and a
retry with the same idempotency key finds the first spend once it holds the lock.

Gifts are the hot path of a live stream: they are group-committed (accounting/group_commit),
many to a transaction, and posted set-wise (accounting/gift_posting)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.errors import FeatureNotFound, FeatureRetired, QuantityOutOfBounds
from accounting.gifts.posting import GiftRateLimit as GiftRateLimit
from accounting.gifts.posting import GiftRequest as GiftRequest
from accounting.gifts.posting import GiftResult as GiftResult
from accounting.gifts.posting import GiftTerms, post_gifts
from accounting.gifts.posting import SentGift as SentGift
from accounting.gifts.rules import CoinRates, Spending, feature_accounts, feature_entry
from accounting.gifts.tables import FeatureRow, FeatureUnlockRow, GiftRow
from accounting.ledger import chart, idempotency
from accounting.ledger.errors import IdempotencyKeyReused, InsufficientCoins, LedgerError
from accounting.ledger.group_commit import DEFAULT_MAX_BATCH, GroupCommit
from accounting.ledger.posting import in_transaction, lock_accounts, post_entry
from accounting.policy import standing

log = logging.getLogger(__name__)

MAX_GIFT_QUANTITY = 9_999
MAX_REMEMBERED_STREAMS = 100_000
DEFAULT_HOLD = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class FeatureRequest:
    user_id: str
    idempotency_key: str
    feature_code: str

    def fingerprint(self) -> str:
        return idempotency.request_hash("unlock_feature", {"feature_code": self.feature_code})


@dataclass(frozen=True, slots=True)
class UnlockResult:
    unlock: FeatureUnlockRow
    replayed: bool


class GiftService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        functional_currency: str = "USD",
        rates: CoinRates | None = None,
        hold: timedelta = DEFAULT_HOLD,
        max_batch: int = DEFAULT_MAX_BATCH,
        rate_limit: GiftRateLimit | None = None,
    ) -> None:
        """``rate_limit``: most gifts per sender within a sliding window; None for no limit
        (the service process always sets one, see api/database.py)."""
        self._sessions = sessions
        self.functional_currency = functional_currency
        self.rates = rates or CoinRates()
        self.hold = hold
        self.terms = GiftTerms(self.rates, hold, functional_currency, rate_limit)
        self._stream_creators: dict[int, str] = {}
        """Whose stream each stream is, as far as this process has seen (that never changes)."""
        self.batches: GroupCommit[GiftRequest, GiftResult] = GroupCommit(
            self._write_gifts,
            key=lambda request: (request.sender_id, request.idempotency_key),
            max_batch=max_batch,
        )

    async def _unlock_wallet(self, session: AsyncSession, user_id: str) -> tuple[int, int]:
        """Lock every account an unlock posts to, in one statement (the wallet with the
        platform's: a gift batch locks the same accounts), and read the wallet: (coins, value
        in micros)."""
        coins, value, *platform = feature_accounts(user_id, self.functional_currency)
        locked = await lock_accounts(session, (coins, value, *platform))
        return locked[coins.code].normal_balance, locked[value.code].normal_balance

    async def send_gift(self, request: GiftRequest) -> GiftResult:
        chart.check_user_id(request.sender_id)
        idempotency.check_key(request.idempotency_key)
        if not 1 <= request.quantity <= MAX_GIFT_QUANTITY:
            raise QuantityOutOfBounds(
                f"A gift is sent 1 to {MAX_GIFT_QUANTITY:,} at a time", field="quantity"
            )
        return await self.batches.submit(request)

    async def _write_gifts(
        self, requests: Sequence[GiftRequest]
    ) -> Sequence[GiftResult | Exception]:
        """One transaction for the batch. Should the database refuse it as a whole (it never
        should: every gift was checked first), each gift is written alone, so that whatever
        is wrong with one is its own error and not its neighbours'."""
        try:
            return await in_transaction(
                self._sessions, lambda session: post_gifts(session, requests, *self._posting())
            )
        except (DBAPIError, LedgerError) as failed:
            if len(requests) == 1:
                if isinstance(failed, LedgerError):
                    return [failed]
                raise
            log.exception("a batch of %d gifts failed; writing them one by one", len(requests))
        return [await self._write_alone(request) for request in requests]

    def _posting(self) -> tuple[GiftTerms, dict[int, str]]:
        if len(self._stream_creators) > MAX_REMEMBERED_STREAMS:
            self._stream_creators.clear()
        return self.terms, self._stream_creators

    async def _write_alone(self, request: GiftRequest) -> GiftResult | Exception:
        try:
            (outcome,) = await in_transaction(
                self._sessions, lambda session: post_gifts(session, [request], *self._posting())
            )
        except LedgerError as refused:
            return refused
        except DBAPIError as failed:  # this gift's own failure, not its neighbours'
            log.exception("gift %s by %s failed", request.idempotency_key, request.sender_id)
            return failed
        return outcome

    async def unlock_feature(self, request: FeatureRequest) -> UnlockResult:
        chart.check_user_id(request.user_id)
        idempotency.check_key(request.idempotency_key)
        fingerprint = request.fingerprint()

        async def unlock(session: AsyncSession) -> UnlockResult:
            wallet_coins, wallet_value = await self._unlock_wallet(session, request.user_id)
            existing: FeatureUnlockRow | None = await session.scalar(
                select(FeatureUnlockRow).where(
                    FeatureUnlockRow.user_id == request.user_id,
                    FeatureUnlockRow.idempotency_key == request.idempotency_key,
                )
            )
            if existing is not None:
                if existing.request_hash != fingerprint:
                    raise IdempotencyKeyReused(
                        "This idempotency key was used for a different unlock",
                        field="idempotencyKey",
                    )
                return UnlockResult(existing, replayed=True)
            feature = await session.get(FeatureRow, request.feature_code)
            if feature is None:
                raise FeatureNotFound(f"No feature {request.feature_code!r}", field="featureCode")
            if not feature.active:
                raise FeatureRetired(f"{feature.name} is no longer available", field="featureCode")
            await standing.check_not_frozen(session, request.user_id, doing="spend coins")
            if wallet_coins < feature.coin_price:
                raise InsufficientCoins(
                    f"{feature.coin_price:,} coins needed, {wallet_coins:,} held",
                    field="featureCode",
                    held=wallet_coins,
                    needed=feature.coin_price,
                )
            spending = Spending(request.user_id, feature.coin_price, wallet_coins, wallet_value)
            posted = await post_entry(
                session,
                feature_entry(
                    spending,
                    feature_code=feature.code,
                    event_key=f"feature:{request.user_id}:{request.idempotency_key}",
                    functional_currency=self.functional_currency,
                    actor=f"user:{request.user_id}",
                ),
            )
            unlock_row = FeatureUnlockRow(
                user_id=request.user_id,
                idempotency_key=request.idempotency_key,
                request_hash=fingerprint,
                feature_code=feature.code,
                coins=feature.coin_price,
                value_micros=spending.value_micros,
                entry_id=posted.id,
                created_at=posted.posted_at,
            )
            session.add(unlock_row)
            await session.flush()
            return UnlockResult(unlock_row, replayed=False)

        return await in_transaction(self._sessions, unlock)


async def gift_by_key(session: AsyncSession, sender_id: str, key: str) -> GiftRow | None:
    """The gift a sender sent under an idempotency key: whether a retried gift was delivered."""
    found: GiftRow | None = await session.scalar(
        select(GiftRow).where(GiftRow.sender_id == sender_id, GiftRow.idempotency_key == key)
    )
    return found


async def gift_by_id(session: AsyncSession, gift_id: int) -> GiftRow | None:
    """Gift ``gift_id`` as it is stored, or None when there is none."""
    return await session.get(GiftRow, gift_id)
