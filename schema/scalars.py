"""Scalars and value types shared by every area of the schema."""

from __future__ import annotations

from typing import NewType

import strawberry
from graphql import GraphQLError

from accounting.ledger.money import format_micros

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


@strawberry.type(description="An amount of money: a decimal string in whole currency units.")
class Money:
    amount: str = strawberry.field(description='Decimal string, e.g. "4.99" or "0.014257".')
    currency: str = strawberry.field(description="ISO 4217 code.")

    @classmethod
    def of(cls, micros: int, currency: str) -> Money:
        return cls(amount=format_micros(micros, currency), currency=currency)


def parse_id(id: str) -> int | None:
    """A row id given as a GraphQL ID, or ``None`` when it cannot name a row (not a whole
    number, or beyond what a bigint column holds)."""
    text = id.strip()
    if not text.isascii() or not text.isdigit():
        return None
    parsed = int(text)
    return parsed if 1 <= parsed <= MAX_BIG_INT else None
