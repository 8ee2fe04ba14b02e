"""Commodities and amounts. Every amount is an integer count of a commodity's smallest unit.

COIN and DIAMOND have scale 0. Fiat money is kept in micro-units (scale 6). Cash that enters or
leaves the platform is a whole number of the currency's ISO 4217 minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction

from accounting.ledger.errors import InvalidAmount, UnknownCommodity

MICROS_SCALE = 6
MICROS_PER_UNIT = 10**MICROS_SCALE


class CommodityKind(StrEnum):
    VIRTUAL = "virtual"
    FIAT = "fiat"


@dataclass(frozen=True, slots=True)
class Commodity:
    code: str
    kind: CommodityKind
    scale: int
    """Digits after the point of the stored integer unit (0 for COIN, 6 for fiat micro-units)."""
    minor_unit_digits: int | None
    """ISO 4217 minor unit for fiat (2 for USD, 0 for JPY); ``None`` for virtual commodities."""

    @property
    def micros_per_minor_unit(self) -> int:
        if self.minor_unit_digits is None:
            raise UnknownCommodity(f"{self.code} has no minor unit", commodity=self.code)
        return int(10 ** (self.scale - self.minor_unit_digits))


COIN = Commodity("COIN", CommodityKind.VIRTUAL, 0, None)
DIAMOND = Commodity("DIAMOND", CommodityKind.VIRTUAL, 0, None)

_FIAT_MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "BRL": 2,
    "MXN": 2,
    "CAD": 2,
    "AUD": 2,
    "JPY": 0,
    "KRW": 0,
}

COMMODITIES: dict[str, Commodity] = {
    COIN.code: COIN,
    DIAMOND.code: DIAMOND,
    **{
        code: Commodity(code, CommodityKind.FIAT, MICROS_SCALE, digits)
        for code, digits in _FIAT_MINOR_UNITS.items()
    },
}

FIAT_CODES: tuple[str, ...] = tuple(_FIAT_MINOR_UNITS)


def commodity(code: str) -> Commodity:
    try:
        return COMMODITIES[code]
    except KeyError:
        raise UnknownCommodity(
            f"Unknown commodity or currency {code!r}", field="currency", commodity=code
        ) from None


def fiat(code: str) -> Commodity:
    found = commodity(code)
    if found.kind is not CommodityKind.FIAT:
        raise UnknownCommodity(f"{code} is not a currency", field="currency", commodity=code)
    return found


def minor_to_micros(minor: int, currency: str) -> int:
    return minor * fiat(currency).micros_per_minor_unit


def micros_to_minor_exact(micros: int, currency: str) -> int:
    """Minor units for a cash amount that must already be whole minor units."""
    step = fiat(currency).micros_per_minor_unit
    if micros % step:
        raise InvalidAmount(
            f"{micros} micro-units of {currency} is not a whole number of minor units",
            micros=micros,
            currency=currency,
        )
    return micros // step


def parse_decimal_amount(text: str, currency: str, *, field: str = "amount") -> int:
    """Parse a decimal string in whole currency units to micro-units, exactly (no rounding)."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise InvalidAmount(f"{text!r} is not a decimal amount", field=field) from None
    if not value.is_finite():
        raise InvalidAmount(f"{text!r} is not a finite amount", field=field)
    if value.adjusted() > 12:
        raise InvalidAmount(f"{text!r} is too large", field=field)
    scaled = value.scaleb(MICROS_SCALE)
    if scaled != scaled.to_integral_value():
        raise InvalidAmount(f"{text!r} has more than 6 decimal places", field=field)
    fiat(currency)
    return int(scaled)


def format_micros(micros: int, currency: str) -> str:
    """A decimal string in whole units: at least the minor-unit digits, more only when needed.

    ``format_micros(4_990_000, "USD") == "4.99"``; ``format_micros(14_257, "USD") == "0.014257"``.
    """
    digits = fiat(currency).minor_unit_digits or 0
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_UNIT)
    frac_text = f"{frac:06d}".rstrip("0")
    if len(frac_text) < digits:
        frac_text = frac_text.ljust(digits, "0")
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"


def round_micros_to_minor(micros: int, currency: str) -> int:
    """Round micro-units to the nearest whole minor unit (half up), returned in micro-units."""
    step = fiat(currency).micros_per_minor_unit
    rounded = (Decimal(micros) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(rounded) * step


def mul_rate(micros: int, rate: Decimal) -> int:
    """``micros × rate`` rounded half-even to a whole micro-unit."""
    return int((Decimal(micros) * rate).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def round_fraction(value: Fraction) -> int:
    """An exact fraction of micro-units rounded half-even to a whole micro-unit."""
    return round(value)
