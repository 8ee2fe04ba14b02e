"""What each payment provider keeps of a charge: card networks a percentage plus a fixed fee,
app stores a commission."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from accounting.ledger.money import fiat


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    percent: Decimal
    fixed_minor: Mapping[str, int] = field(default_factory=dict)
    """Fixed fee per charge, in each currency's minor units."""

    def fee_minor(self, price_minor: int, currency: str) -> int:
        """The fee in whole minor units (providers settle fees in cents), rounded half up."""
        fiat(currency)
        variable = (Decimal(price_minor) * self.percent / 100).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
        return min(price_minor, int(variable) + self.fixed_minor.get(currency, 0))


_CARD_FIXED = {
    "USD": 30,
    "EUR": 25,
    "GBP": 20,
    "JPY": 40,
    "BRL": 39,
    "MXN": 300,
    "CAD": 30,
    "AUD": 30,
    "KRW": 400,
}
_PAYPAL_FIXED = {
    "USD": 49,
    "EUR": 39,
    "GBP": 39,
    "JPY": 40,
    "BRL": 60,
    "MXN": 400,
    "CAD": 59,
    "AUD": 59,
    "KRW": 500,
}


def fee_schedules(app_store_commission_percent: int = 30) -> dict[str, FeeSchedule]:
    commission = FeeSchedule(Decimal(app_store_commission_percent))
    return {
        "card": FeeSchedule(Decimal("2.9"), _CARD_FIXED),
        "paypal": FeeSchedule(Decimal("3.49"), _PAYPAL_FIXED),
        "mobile_wallet": FeeSchedule(Decimal("2.9"), _CARD_FIXED),
        "apple": commission,
        "google": commission,
    }


CHANNEL_PROVIDERS: dict[str, tuple[str, ...]] = {
    "web": ("card", "paypal", "mobile_wallet"),
    "ios": ("apple",),
    "android": ("google",),
}
"""In-app purchases go through the store of the platform; the web takes cards and wallets."""
