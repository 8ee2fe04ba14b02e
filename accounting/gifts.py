"""Spending coins: gifts to creators in live streams, and premium feature unlocks.

Every spend locks the spender's wallet first, so spends from one wallet serialise: the
weighted-average value each releases is computed from the wallet as it really is, and a
retry with the same idempotency key finds the first spend once it holds the lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting import chart, idempotency, standing
from accounting.errors import (
    FeatureNotFound,
    FeatureRetired,
    GiftNotFound,
    GiftRetired,
    IdempotencyKeyReused,
    InsufficientCoins,
    QuantityOutOfBounds,
    SelfGift,
    StreamNotFound,
    StreamNotLive,
)
from accounting.ledger import in_transaction, lock_accounts, post_entry
from accounting.posting_rules import CoinRates, Spending, feature_entry, gift_entry
from accounting.tables import FeatureRow, FeatureUnlockRow, GiftRow, GiftTypeRow, StreamRow

MAX_GIFT_QUANTITY = 9_999
DEFAULT_HOLD = timedelta(days=7)


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
class FeatureRequest:
    user_id: str
    idempotency_key: str
    feature_code: str

    def fingerprint(self) -> str:
        return idempotency.request_hash("unlock_feature", {"feature_code": self.feature_code})


@dataclass(frozen=True, slots=True)
class GiftResult:
    gift: GiftRow
    replayed: bool


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
    ) -> None:
        self._sessions = sessions
        self.functional_currency = functional_currency
        self.rates = rates or CoinRates()
        self.hold = hold

    async def _wallet(self, session: AsyncSession, user_id: str) -> tuple[int, int]:
        """Lock the wallet (coins and their value) and read it: (coins, value in micros)."""
        coins = chart.user_coins(user_id)
        value = chart.user_coins_value(user_id, self.functional_currency)
        locked = await lock_accounts(session, (coins, value))
        return locked[coins.code].normal_balance, locked[value.code].normal_balance

    async def send_gift(self, request: GiftRequest) -> GiftResult:
        chart.check_user_id(request.sender_id)
        idempotency.check_key(request.idempotency_key)
        if not 1 <= request.quantity <= MAX_GIFT_QUANTITY:
            raise QuantityOutOfBounds(
                f"A gift is sent 1 to {MAX_GIFT_QUANTITY:,} at a time", field="quantity"
            )
        fingerprint = request.fingerprint()

        async def send(session: AsyncSession) -> GiftResult:
            wallet_coins, wallet_value = await self._wallet(session, request.sender_id)
            existing = await gift_by_key(session, request.sender_id, request.idempotency_key)
            if existing is not None:
                if existing.request_hash != fingerprint:
                    raise IdempotencyKeyReused(
                        "This idempotency key was used for a different gift",
                        field="idempotencyKey",
                        gift_id=existing.id,
                    )
                return GiftResult(existing, replayed=True)

            # KEY SHARE: gifts do not wait for each other, but a stream ending (FOR UPDATE)
            # waits for the gifts in flight, and a gift after it sees the stream ended.
            stream = await session.get(
                StreamRow, request.stream_id, with_for_update={"key_share": True}
            )
            if stream is None:
                raise StreamNotFound(f"No stream {request.stream_id}", field="streamId")
            if stream.creator_id == request.sender_id:
                raise SelfGift("Creators cannot send gifts to themselves", field="streamId")
            if stream.status != "live":
                raise StreamNotLive(f"Stream {stream.id} is not live", field="streamId")
            gift_type = await session.get(GiftTypeRow, request.gift_code)
            if gift_type is None:
                raise GiftNotFound(f"No gift {request.gift_code!r}", field="giftCode")
            if not gift_type.active:
                raise GiftRetired(f"{gift_type.name} is no longer available", field="giftCode")
            await standing.check_not_frozen(session, request.sender_id, doing="send gifts")

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
                rates=self.rates,
                functional_currency=self.functional_currency,
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
            posted = await post_entry(session, entry)
            gift = GiftRow(
                sender_id=request.sender_id,
                idempotency_key=request.idempotency_key,
                request_hash=fingerprint,
                stream_id=stream.id,
                creator_id=stream.creator_id,
                gift_code=gift_type.code,
                quantity=request.quantity,
                coin_price=gift_type.coin_price,
                coins=coins,
                value_micros=amounts.value_micros,
                diamonds=amounts.diamonds,
                payable_micros=amounts.payable_micros,
                entry_id=posted.id,
                created_at=posted.posted_at,
                release_at=posted.posted_at + self.hold,
            )
            session.add(gift)
            await session.flush()
            return GiftResult(gift, replayed=False)

        return await in_transaction(self._sessions, send)

    async def unlock_feature(self, request: FeatureRequest) -> UnlockResult:
        chart.check_user_id(request.user_id)
        idempotency.check_key(request.idempotency_key)
        fingerprint = request.fingerprint()

        async def unlock(session: AsyncSession) -> UnlockResult:
            wallet_coins, wallet_value = await self._wallet(session, request.user_id)
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
