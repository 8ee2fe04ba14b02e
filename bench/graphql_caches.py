"""What strawberry's parser and validation caches are worth: operations per second through the
schema with and without them, on a realistic wallet-screen query, in this process.

The query is sent without a token, so every resolver stops at the authentication check: the
figure is the cost of parsing, validating and starting execution, with no database work."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from schema import build_schema
from schema.context import Context

WALLET_SCREEN = """
query WalletScreen($first: Int!, $after: String) {
  wallet { userId coins coinsValue { amount currency } asOf }
  purchases(first: $first) {
    edges { cursor node { ...PurchaseParts } }
    pageInfo { hasNextPage endCursor }
  }
  transactions(first: $first, after: $after) {
    edges { cursor node { entryId kind postedAt coins coinsAfter value { amount currency } memo } }
    pageInfo { hasNextPage endCursor }
  }
  coinPackages(currency: USD, channel: WEB) { code totalCoins price { amount currency } }
}
fragment PurchaseParts on Purchase {
  id status packageCode coins bonusCoins channel provider
  price { amount currency } failureCode createdAt settledAt
}
"""


@dataclass(frozen=True, slots=True)
class CacheFigures:
    with_caches_per_second: float
    without_caches_per_second: float

    @property
    def ratio(self) -> float:
        return self.with_caches_per_second / self.without_caches_per_second

    def to_json(self) -> dict[str, Any]:
        return {
            "with_caches_per_second": round(self.with_caches_per_second, 1),
            "without_caches_per_second": round(self.without_caches_per_second, 1),
            "ratio": round(self.ratio, 2),
        }


async def _rate(caches: bool, seconds: float) -> float:
    schema = build_schema(caches=caches)
    context = Context(services=None, request_id="bench", principal=None)  # type: ignore[arg-type]
    variables = {"first": 20, "after": None}
    done = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        result = await schema.execute(
            WALLET_SCREEN, variable_values=variables, context_value=context
        )
        assert result.errors, "the unauthenticated query must stop at the auth check"
        done += 1
    return done / (time.perf_counter() - started)


def measure(seconds: float) -> CacheFigures:
    without = asyncio.run(_rate(False, seconds))
    with_caches = asyncio.run(_rate(True, seconds))
    return CacheFigures(with_caches, without)
