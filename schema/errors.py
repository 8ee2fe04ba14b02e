"""Top-level GraphQL errors with a stable ``extensions.code``: for who may ask and how to ask.
Business failures of a mutation are not raised: they come back as data in its payload."""

from __future__ import annotations

from graphql import GraphQLError

from accounting.access import Principal
from schema.context import Info

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
BAD_USER_INPUT = "BAD_USER_INPUT"


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
