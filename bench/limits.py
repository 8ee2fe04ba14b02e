"""The velocity limits the benchmark runs with: far above anything it sends, so that no request
is refused by them, while their checks still run on every purchase and gift and are measured.

A benchmark worker buys a package many times a second for one user, each gift sender starts with
1,000,000 coins, and a sender sends dozens of gifts a second: the service's defaults (100,000
coins a day, 600 gifts a minute per sender) would refuse most of that load."""

from __future__ import annotations

from datetime import timedelta

from accounting.gifts.posting import GiftRateLimit

PURCHASE_DAILY_COIN_LIMIT = 10**15
"""Coins a user may buy per day: more than any run buys."""
GIFT_RATE_LIMIT = GiftRateLimit(gifts=10**9, window=timedelta(seconds=60))
"""Gifts a sender may send per minute: more than any run sends. The check runs for every
sender of every batch (the bound from the wallet's postings, one index probe); the count of
the gifts themselves, needed only near the limit, never does."""


def service_environment() -> dict[str, str]:
    """The same limits for the service started as a subprocess (its settings); and no rounds
    of the postings' totals per hour: the history phase dates its entries in the past by hand,
    into hours the service would already have summarized (the finance phase summarizes once,
    after the history is written)."""
    return {
        "COINBOOKS_PURCHASE_DAILY_COIN_LIMIT": str(PURCHASE_DAILY_COIN_LIMIT),
        "COINBOOKS_GIFT_RATE_LIMIT": str(GIFT_RATE_LIMIT.gifts),
        "COINBOOKS_GIFT_RATE_WINDOW_SECONDS": str(GIFT_RATE_LIMIT.window_seconds),
        "COINBOOKS_POSTING_TOTALS_EVERY_SECONDS": "0",
    }
