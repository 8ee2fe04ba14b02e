"""Coin packages: what a user can buy, in their currency and channel, best value first."""

from __future__ import annotations

import strawberry

from accounting.ledger.errors import LedgerError
from accounting.purchases import catalog
from schema.context import Info
from schema.enums import Channel, Currency
from schema.errors import BAD_USER_INPUT, ClientError
from schema.scalars import BigInt, Money


@strawberry.type(description="A coin package at its price in one currency and channel.")
class CoinPackage:
    code: str
    coins: BigInt
    bonus_coins: BigInt
    total_coins: BigInt
    price: Money
    cost_per_coin: Money = strawberry.field(
        description="Price divided by total coins, rounded to a micro-unit."
    )
    channel: Channel


def package_of(offer: catalog.Offer) -> CoinPackage:
    assert offer.package_code is not None
    return CoinPackage(
        code=offer.package_code,
        coins=BigInt(offer.coins),
        bonus_coins=BigInt(offer.bonus_coins),
        total_coins=BigInt(offer.total_coins),
        price=Money.of(offer.price_micros, offer.currency),
        cost_per_coin=Money.of(offer.cost_per_coin_micros, offer.currency),
        channel=Channel(offer.channel),
    )


@strawberry.type
class PackageQueries:
    @strawberry.field(description="Packages for sale in a currency and channel, best value first.")
    async def coin_packages(
        self, info: Info, currency: Currency, channel: Channel
    ) -> list[CoinPackage]:
        try:
            async with info.context.services.sessions() as session:
                offers = await catalog.list_offers(session, currency.value, channel.value)
        except LedgerError as error:
            raise ClientError(BAD_USER_INPUT, error.message) from None
        return [package_of(offer) for offer in offers]
