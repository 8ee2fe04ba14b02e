"""Reference data: commodities, platform accounts, coin packages and price lists, FX rates."""

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

from accounting.ledger.chart import fixed_platform_accounts
from accounting.ledger.money import COMMODITIES, FIAT_CODES

revision: str = "0002"
down_revision: str | None = "0001"

FUNCTIONAL_CURRENCY = "USD"

# code: (coins, bonus coins)
PACKAGES: dict[str, tuple[int, int]] = {
    "coins_70": (70, 0),
    "coins_100": (100, 0),
    "coins_350": (350, 0),
    "coins_500": (500, 0),
    "coins_700": (700, 0),
    "coins_1000": (1_000, 0),
    "coins_1400": (1_400, 0),
    "coins_3500": (3_500, 0),
    "coins_7000": (7_000, 0),
    "coins_17500": (17_500, 875),
}

# (currency, package): (web, app-store) price in minor units; app stores charge more.
PRICES: dict[tuple[str, str], tuple[int, int]] = {
    ("USD", "coins_70"): (109, 119),
    ("USD", "coins_350"): (499, 549),
    ("USD", "coins_700"): (989, 1_099),
    ("USD", "coins_1400"): (1_949, 2_199),
    ("USD", "coins_3500"): (4_799, 5_399),
    ("USD", "coins_7000"): (9_499, 10_699),
    ("USD", "coins_17500"): (23_499, 26_499),
    ("EUR", "coins_100"): (99, 109),
    ("EUR", "coins_500"): (499, 549),
    ("EUR", "coins_1000"): (999, 1_099),
    ("EUR", "coins_3500"): (3_399, 3_799),
    ("EUR", "coins_7000"): (6_799, 7_499),
    ("GBP", "coins_100"): (89, 99),
    ("GBP", "coins_500"): (449, 499),
    ("GBP", "coins_1000"): (899, 999),
    ("JPY", "coins_70"): (160, 180),
    ("JPY", "coins_350"): (800, 880),
    ("JPY", "coins_700"): (1_600, 1_760),
    ("JPY", "coins_1400"): (3_200, 3_520),
    ("BRL", "coins_70"): (490, 549),
    ("BRL", "coins_350"): (2_490, 2_749),
    ("BRL", "coins_700"): (4_990, 5_499),
}

# currency: (price per coin in micro-units, fewest coins, most coins) for custom web amounts
CUSTOM_PRICES: dict[str, tuple[int, int, int]] = {
    "USD": (14_300, 30, 2_500_000),
    "EUR": (13_200, 30, 2_500_000),
    "GBP": (11_400, 30, 2_500_000),
    "JPY": (2_300_000, 30, 2_500_000),
    "BRL": (71_000, 30, 2_500_000),
}

# Units of USD per unit of each currency, in force from the start of 2026.
FX_RATES: dict[str, str] = {
    "EUR": "1.08",
    "GBP": "1.27",
    "JPY": "0.0067",
    "BRL": "0.20",
    "MXN": "0.058",
    "CAD": "0.73",
    "AUD": "0.66",
    "KRW": "0.00075",
}
FX_VALID_FROM = datetime(2026, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO commodity (code, kind, scale, minor_unit_digits)"
            " VALUES (:code, :kind, :scale, :digits)"
        ),
        [
            {"code": c.code, "kind": str(c.kind), "scale": c.scale, "digits": c.minor_unit_digits}
            for c in COMMODITIES.values()
        ],
    )
    bind.execute(
        sa.text(
            "INSERT INTO account (code, commodity, type, contra, no_overdraft, normal_sign)"
            " VALUES (:code, :commodity, :type, :contra, :no_overdraft, :normal_sign)"
        ),
        [
            {
                "code": s.code,
                "commodity": s.commodity,
                "type": str(s.type),
                "contra": s.contra,
                "no_overdraft": s.no_overdraft,
                "normal_sign": s.normal_sign,
            }
            for s in fixed_platform_accounts(FUNCTIONAL_CURRENCY, FIAT_CODES)
        ],
    )
    bind.execute(
        sa.text("INSERT INTO coin_package (code, coins, bonus_coins) VALUES (:code, :c, :b)"),
        [{"code": code, "c": c, "b": b} for code, (c, b) in PACKAGES.items()],
    )
    price_rows = []
    for (currency, package), (web, app) in PRICES.items():
        for channel, price in (("web", web), ("ios", app), ("android", app)):
            price_rows.append({"p": package, "ch": channel, "cur": currency, "price": price})
    bind.execute(
        sa.text(
            "INSERT INTO package_price (package_id, channel, currency, price_minor)"
            " SELECT id, :ch, :cur, :price FROM coin_package WHERE code = :p"
        ),
        price_rows,
    )
    bind.execute(
        sa.text(
            "INSERT INTO custom_coin_price (currency, coin_price_micros, min_coins, max_coins)"
            " VALUES (:cur, :price, :lo, :hi)"
        ),
        [
            {"cur": cur, "price": p, "lo": lo, "hi": hi}
            for cur, (p, lo, hi) in CUSTOM_PRICES.items()
        ],
    )
    bind.execute(
        sa.text(
            "INSERT INTO fx_rate (base, quote, rate, valid_from) VALUES (:base, :quote, :rate, :at)"
        ),
        [
            {"base": cur, "quote": FUNCTIONAL_CURRENCY, "rate": Decimal(rate), "at": FX_VALID_FROM}
            for cur, rate in FX_RATES.items()
        ],
    )


def downgrade() -> None:
    op.execute("DELETE FROM fx_rate")
    op.execute("DELETE FROM custom_coin_price")
    op.execute("DELETE FROM package_price")
    op.execute("DELETE FROM coin_package")
    op.execute("DELETE FROM account WHERE posting_count = 0")
    op.execute(
        "DELETE FROM commodity c WHERE NOT EXISTS (SELECT 1 FROM account a"
        " WHERE a.commodity = c.code)"
    )
