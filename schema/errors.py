"""Top-level GraphQL errors with a stable ``extensions.code``: for who may ask and how to ask.
Business failures of a mutation are not raised: they come back as data in its payload."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

from graphql import GraphQLError

from accounting.ledger.errors import LedgerError
from accounting.policy.access import Principal
from schema.context import Info

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
BAD_USER_INPUT = "BAD_USER_INPUT"

Code = TypeVar("Code", bound=Enum)


class ClientError(GraphQLError):
    """An error the caller caused and can act on: shown as is, never masked."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, extensions={"code": code})


def require_principal(info: Info) -> Principal:
    context = info.context
    if context.auth_error is not None:
        raise ClientError(UNAUTHENTICATED, context.auth_error)
    if context.principal is None:
        raise ClientError(
            UNAUTHENTICATED, "Sign in: send 'Authorization: Bearer <token>' with this request"
        )
    return context.principal


def forbidden(what: str) -> ClientError:
    return ClientError(FORBIDDEN, f"You may not {what}")


def payload_code(error: LedgerError, codes: Mapping[type[LedgerError], Code]) -> Code:
    """The mutation's code for a domain error: its class's, or its nearest mapped base's. An
    error the mutation has no code for is re-raised: a top-level error, not payload data."""
    for kind in type(error).__mro__:
        if kind in codes:
            return codes[kind]
    raise error
