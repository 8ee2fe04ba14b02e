"""Scalars and value types shared by every area of the schema."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import NewType

import strawberry
from graphql import GraphQLError

from accounting.ledger.money import COMMODITIES, CommodityKind, format_micros
from schema.enums import Currency

MAX_BIG_INT = 2**63 - 1


def _parse_big_int(value: object) -> int:
    """Raises ``GraphQLError`` (not ``ValueError``), as strawberry's own scalars do: an input the
    caller got wrong is a validation error for them to read, not an unexpected one to mask."""
    if isinstance(value, bool):
        raise GraphQLError("BigInt is an integer, not a boolean")
    if isinstance(value, int):
        parsed = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        parsed = int(value.strip())
    else:
        raise GraphQLError(f"BigInt expects an integer or a string of digits, got {value!r}")
    if abs(parsed) > MAX_BIG_INT:
        raise GraphQLError("BigInt is out of range")
    return parsed


BigInt = NewType("BigInt", int)

BIG_INT_SCALAR = strawberry.scalar(
    name="BigInt",
    description=(
        "A whole number of coins, diamonds or smallest currency units, sent as a string of "
        "digits so that no client loses precision (GraphQL Int stops at 2^31 - 1)."
    ),
    serialize=str,
    parse_value=_parse_big_int,
)


EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
"""The first instant a ``DateTime`` argument may name."""
LATEST_INSTANT = datetime(3000, 1, 1, tzinfo=UTC)
"""The first instant past the range: a ``DateTime`` argument names an earlier one."""
MAX_INSTANT_CHARACTERS = 64


def _refuse(kind: str, value: object, why: str) -> GraphQLError:
    shown = repr(value)[:80]
    return GraphQLError(f"Value cannot represent a {kind}: {shown}. {why}")


def parse_instant(value: object) -> datetime:
    """An ISO 8601 instant with its offset (``Z`` or ``+hh:mm``), from 1970-01-01T00:00:00Z up
    to, not including, 3000-01-01T00:00:00Z, as an aware datetime in UTC. Anything else is a
    request error for the caller (``GraphQLError``), never one raised inside a resolver."""
    if not isinstance(value, str) or len(value) > MAX_INSTANT_CHARACTERS:
        raise _refuse("DateTime", value, "Expected an ISO 8601 string.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _refuse("DateTime", value, "Expected an ISO 8601 date and time.") from None
    if parsed.utcoffset() is None:
        raise _refuse("DateTime", value, "Give its offset: Z or +hh:mm.")
    out_of_range = _refuse(
        "DateTime", value, "Instants run from 1970-01-01T00:00:00Z to before 3000-01-01."
    )
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:
        raise out_of_range from None
    if not EARLIEST_INSTANT <= instant < LATEST_INSTANT:
        raise out_of_range
    return instant


def parse_day(value: object) -> date:
    """An ISO 8601 date (``YYYY-MM-DD``) within the instants' range, 1970-01-01 to 2999-12-31."""
    if not isinstance(value, str) or len(value) > MAX_INSTANT_CHARACTERS:
        raise _refuse("Date", value, "Expected an ISO 8601 date string.")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise _refuse("Date", value, "Expected an ISO 8601 date, YYYY-MM-DD.") from None
    if not EARLIEST_INSTANT.date() <= parsed < LATEST_INSTANT.date():
        raise _refuse("Date", value, "Dates run from 1970-01-01 to 2999-12-31.")
    return parsed


INSTANT_SCALAR = strawberry.scalar(
    name="DateTime",
    description=(
        "An instant in ISO 8601 with its offset, e.g. 2026-12-05T09:00:00Z or "
        "2026-12-05T10:00:00+01:00; from 1970-01-01T00:00:00Z up to, not including, "
        "3000-01-01T00:00:00Z."
    ),
    serialize=datetime.isoformat,
    parse_value=parse_instant,
)

DAY_SCALAR = strawberry.scalar(
    name="Date",
    description="A calendar day in ISO 8601, YYYY-MM-DD, from 1970-01-01 to 2999-12-31.",
    serialize=date.isoformat,
    parse_value=parse_day,
)


@strawberry.type(
    description="An amount of money, exact to a micro-unit: every cash amount of the schema is "
    "one (coins and diamonds are counts, BigInt)."
)
class Money:
    amount: str = strawberry.field(
        description='Decimal string in whole currency units, e.g. "4.99" or "0.014257".'
    )
    currency: Currency = strawberry.field(description="ISO 4217 code.")
    micros: BigInt = strawberry.field(
        description='The same amount in millionths of the currency\'s unit: "4990000" for 4.99.'
    )

    @classmethod
    def of(cls, micros: int, currency: str) -> Money:
        return cls(
            amount=format_micros(micros, currency),
            currency=Currency(currency),
            micros=BigInt(micros),
        )


CASH = "The same amount as Money when the commodity is a currency; null for coins and diamonds."
"""The description of a Money beside an amount of any commodity."""


def money_of(units: int, commodity: str) -> Money | None:
    """``units`` of ``commodity`` as Money (micro-units of a currency); None for coins and
    diamonds, which are counts."""
    if COMMODITIES[commodity].kind is not CommodityKind.FIAT:
        return None
    return Money.of(units, commodity)


def parse_id(id: str) -> int | None:
    """A row id given as a GraphQL ID, or ``None`` when it cannot name a row (not a whole
    number, or beyond what a bigint column holds)."""
    text = id.strip()
    if not text.isascii() or not text.isdigit():
        return None
    parsed = int(text)
    return parsed if 1 <= parsed <= MAX_BIG_INT else None
