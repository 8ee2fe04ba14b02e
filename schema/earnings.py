"""What creators earned: diamonds by state and their cash value, and earnings over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated

import strawberry

from accounting.gifts import holds
from accounting.ledger.balances import creator_balances
from accounting.ledger.chart import check_user_id
from accounting.ledger.errors import LedgerError
from accounting.policy.access import may_earn, may_read_earnings
from accounting.reads.earnings import earnings_over_time
from schema.context import Info
from schema.errors import BAD_USER_INPUT, ClientError, forbidden, require_principal
from schema.scalars import BigInt, Money

DEFAULT_BUCKETS = 24
"""Without 'from', earningsOverTime covers this many buckets, up to the current one."""


@strawberry.type(
    description="A creator's diamonds by state, and their cash value at the creator's weighted "
    "average per diamond."
)
class CreatorEarnings:
    creator_id: str
    diamonds_pending: BigInt = strawberry.field(description="Earned, still inside the hold.")
    diamonds_available: BigInt = strawberry.field(description="Withdrawable.")
    diamonds_reserved: BigInt = strawberry.field(description="Locked in a payout in flight.")
    diamonds: BigInt = strawberry.field(description="All three together.")
    pending_value: Money
    available_value: Money
    reserved_value: Money
    payable: Money = strawberry.field(
        description="What the platform owes the creator for all their diamonds: exact, where "
        "the three values above are each rounded to a micro-unit."
    )


@strawberry.enum
class EarningsBucketSize(Enum):
    HOUR = "hour"
    DAY = "day"


_BUCKET_LENGTH = {EarningsBucketSize.HOUR: timedelta(hours=1), EarningsBucketSize.DAY: timedelta(1)}


@strawberry.type(description="Gifts received in one hour or day (UTC).")
class EarningsBucket:
    start: datetime = strawberry.field(description="The hour's or day's first instant, in UTC.")
    diamonds: BigInt
    cash_value: Money
    gift_count: int


def readable_creator(info: Info, creator_id: str | None) -> str:
    """The creator whose earnings are asked for (the caller when omitted), if the caller may
    read them."""
    principal = require_principal(info)
    if creator_id is None:
        if not may_earn(principal):
            raise forbidden("have earnings without the creator role")
        return principal.user_id
    try:
        check_user_id(creator_id, field="creatorId")
    except LedgerError as error:
        raise ClientError(BAD_USER_INPUT, error.message) from None
    if not may_read_earnings(principal, creator_id):
        raise forbidden("read another creator's earnings")
    return creator_id


def default_window(bucket: EarningsBucketSize, now: datetime) -> tuple[datetime, datetime]:
    """The last ``DEFAULT_BUCKETS`` whole buckets, the current one included."""
    length = _BUCKET_LENGTH[bucket]
    current = now.replace(minute=0, second=0, microsecond=0)
    if bucket is EarningsBucketSize.DAY:
        current = current.replace(hour=0)
    end = current + length
    return end - DEFAULT_BUCKETS * length, end


@strawberry.type
class EarningsQueries:
    @strawberry.field(
        description="A creator's diamonds and their cash value: yours when creatorId is omitted "
        "(creator role); any creator's for support and finance. Diamonds whose hold has passed "
        "are released first, so 'available' is up to date."
    )
    async def creator_earnings(self, info: Info, creator_id: str | None = None) -> CreatorEarnings:
        wanted = readable_creator(info, creator_id)
        services = info.context.services
        await holds.release_due(services.sessions, creator_id=wanted)
        async with services.sessions() as session:
            found = await creator_balances(session, wanted, services.functional_currency)

        def money(micros: int) -> Money:
            return Money.of(micros, found.currency)

        return CreatorEarnings(
            creator_id=found.creator_id,
            diamonds_pending=BigInt(found.diamonds_pending),
            diamonds_available=BigInt(found.diamonds_available),
            diamonds_reserved=BigInt(found.diamonds_reserved),
            diamonds=BigInt(found.diamonds),
            pending_value=money(found.cash_value_micros(found.diamonds_pending)),
            available_value=money(found.cash_value_micros(found.diamonds_available)),
            reserved_value=money(found.cash_value_micros(found.diamonds_reserved)),
            payable=money(found.payable_micros),
        )

    @strawberry.field(
        description="Gifts received per hour or day (UTC) in [from, to), oldest first; hours or "
        "days without gifts are left out. Without 'from' and 'to': the last 24 hours or days, "
        "the current one included. At most 744 buckets per request."
    )
    async def earnings_over_time(
        self,
        info: Info,
        creator_id: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        bucket: EarningsBucketSize = EarningsBucketSize.HOUR,
    ) -> list[EarningsBucket]:
        wanted = readable_creator(info, creator_id)
        if any(t is not None and t.utcoffset() is None for t in (from_, to)):
            raise ClientError(BAD_USER_INPUT, "Send 'from' and 'to' with a UTC offset")
        default_start, default_end = default_window(bucket, datetime.now(UTC))
        if to is not None:
            default_start = to - DEFAULT_BUCKETS * _BUCKET_LENGTH[bucket]
        start, end = from_ or default_start, to or default_end
        services = info.context.services
        try:
            async with services.sessions() as session:
                found = await earnings_over_time(
                    session, wanted, start=start, end=end, bucket=bucket.value
                )
        except LedgerError as error:
            raise ClientError(BAD_USER_INPUT, error.message) from None
        return [
            EarningsBucket(
                start=b.start,
                diamonds=BigInt(b.diamonds),
                cash_value=Money.of(b.cash_value_micros, services.functional_currency),
                gift_count=b.gift_count,
            )
            for b in found
        ]
