"""Coin packages and their price lists per currency and channel; custom amounts on the web."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.money import fiat, minor_to_micros, round_fraction
from accounting.purchases.errors import CustomAmountOutOfRange, PackageNotFound, PriceNotAvailable
from accounting.purchases.tables import CoinPackageRow, CustomCoinPriceRow, PackagePriceRow

CHANNELS = ("web", "ios", "android")


@dataclass(frozen=True, slots=True)
class Offer:
    """What a user pays, and gets, for one package (or a custom amount) in one currency."""

    package_code: str | None
    coins: int
    bonus_coins: int
    currency: str
    channel: str
    price_minor: int

    @property
    def total_coins(self) -> int:
        return self.coins + self.bonus_coins

    @property
    def price_micros(self) -> int:
        return minor_to_micros(self.price_minor, self.currency)

    @property
    def cost_per_coin(self) -> Fraction:
        """Exact price of one coin in micro-units (bonus coins included)."""
        return Fraction(self.price_micros, self.total_coins)

    @property
    def cost_per_coin_micros(self) -> int:
        return round_fraction(self.cost_per_coin)


async def list_offers(session: AsyncSession, currency: str, channel: str) -> list[Offer]:
    """Active packages with a price in this currency and channel, best value for money first."""
    fiat(currency)
    rows = (
        await session.execute(
            select(CoinPackageRow, PackagePriceRow.price_minor)
            .join(PackagePriceRow, PackagePriceRow.package_id == CoinPackageRow.id)
            .where(
                CoinPackageRow.active,
                PackagePriceRow.currency == currency,
                PackagePriceRow.channel == channel,
            )
        )
    ).all()
    offers = [
        Offer(package.code, package.coins, package.bonus_coins, currency, channel, price)
        for package, price in rows
    ]
    return sorted(offers, key=lambda o: (o.cost_per_coin, -o.total_coins))


_PACKAGE_PRICE = select(
    CoinPackageRow,
    select(PackagePriceRow.price_minor)
    .where(
        PackagePriceRow.package_id == CoinPackageRow.id,
        PackagePriceRow.currency == bindparam("currency"),
        PackagePriceRow.channel == bindparam("channel"),
    )
    .scalar_subquery(),
).where(CoinPackageRow.code == bindparam("code"))
"""A package and its price in one currency and channel (NULL: none), in one statement built
once."""


async def package_offer(
    session: AsyncSession, package_code: str, currency: str, channel: str
) -> Offer:
    found = (
        await session.execute(
            _PACKAGE_PRICE, {"code": package_code, "currency": currency, "channel": channel}
        )
    ).first()
    package, price = found if found is not None else (None, None)
    if package is None or not package.active:
        raise PackageNotFound(
            f"No coin package {package_code!r}", field="packageCode", package=package_code
        )
    if price is None:
        raise PriceNotAvailable(
            f"Package {package_code} has no {channel} price in {currency}",
            field="currency",
            package=package_code,
        )
    return Offer(package.code, package.coins, package.bonus_coins, currency, channel, price)


async def custom_offer(session: AsyncSession, coins: int, currency: str, channel: str) -> Offer:
    """A custom number of coins, on the web only, priced per coin and rounded up to a minor unit."""
    if channel != "web":
        raise PriceNotAvailable(
            "Custom amounts are sold on the web only", field="channel", channel=channel
        )
    row = await session.get(CustomCoinPriceRow, currency)
    if row is None:
        raise PriceNotAvailable(
            f"No custom-amount price in {currency}", field="currency", currency=currency
        )
    if not row.min_coins <= coins <= row.max_coins:
        raise CustomAmountOutOfRange(
            f"A custom amount is {row.min_coins} to {row.max_coins} coins",
            field="customCoins",
            coins=coins,
        )
    step = fiat(currency).micros_per_minor_unit
    price_minor = -(-(coins * row.coin_price_micros) // step)
    return Offer(None, coins, 0, currency, channel, price_minor)
