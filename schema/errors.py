"""Errors, both kinds. Top-level GraphQL errors carry a stable ``extensions.code``: for who may
ask and how to ask. Business failures of a mutation are not raised to the client: they come back
as data in its payload. A mutation declares its error type once (:func:`error_type`), and its
resolver lets domain errors rise into :func:`errors_in_payload`, which reports them there."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, ParamSpec, TypeVar, cast

import strawberry
from graphql import GraphQLError

from accounting.ledger.errors import LedgerError
from accounting.policy.access import Principal
from schema.context import Info

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
BAD_USER_INPUT = "BAD_USER_INPUT"

FIELD_AT_FAULT = "The input field at fault, if one is."


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


def require_role(info: Info, may: Callable[[Principal], bool], what: str) -> Principal:
    """The caller, when ``may`` lets them; else ``FORBIDDEN``: "You may not ``what``"."""
    principal = require_principal(info)
    if not may(principal):
        raise forbidden(what)
    return principal


def forbidden(what: str) -> ClientError:
    return ClientError(FORBIDDEN, f"You may not {what}")


Row = TypeVar("Row")


def seen(row: Row | None, may_see: Callable[[Row], bool]) -> Row | None:
    """``row`` if it exists and the caller may see it, else None. An object the caller may not
    see answers exactly as one that does not exist (DESIGN.md, "Who may do what"): every lookup
    by id of an object someone owns goes through here, then answers its missing object's way
    (:func:`not_found`, or null)."""
    if row is None or not may_see(row):
        return None
    return row


def not_found(what: str, id: object) -> ClientError:
    """``NOT_FOUND``: "No ``what`` ``id``", for a missing object and for one the caller may not
    see alike."""
    return ClientError(NOT_FOUND, f"No {what} {id}")


# --- a mutation's errors, as data in its payload ------------------------------------------------


@dataclass(kw_only=True)
class MutationError:
    """What every mutation's error type holds: a stable ``code`` (of the enum ``<Type>Code``), a
    ``message`` to show and the input ``field`` at fault. Declare one with :func:`error_type`."""

    code: Enum
    message: str
    field: str | None

    Code: ClassVar[type[Enum]]
    """The mutation's codes: the enum ``<Type>Code`` of the schema."""
    codes: ClassVar[Mapping[type[Any], Enum]]
    """The code of each domain error the mutation reports as data."""

    @classmethod
    def details_of(cls, error: LedgerError) -> dict[str, Any]:
        """The type's own fields beyond the three, read from the domain error: none here."""
        return {}


E = TypeVar("E", bound=MutationError)
P = ParamSpec("P")
Payload = TypeVar("Payload")

Declared = type[LedgerError] | str | tuple[str, type[LedgerError]]
"""A code of a mutation: a domain error, under its own ``code``; a domain error under another
name (``("UNKNOWN_CURRENCY", UnknownCommodity)``); or a name alone, for a failure no domain error
stands for, that the resolver reports itself (:func:`payload_error`)."""


def error_type(
    *declared: Declared,
    description: str | None = None,
    field_description: str | None = FIELD_AT_FAULT,
) -> Callable[[type[E]], type[E]]:
    """Declare a mutation's error type: the codes it may give, in the order the schema lists
    them. The decorated ``XError`` (a :class:`MutationError`) becomes the GraphQL type ``XError
    { code: XErrorCode!  message: String!  field: String  ...its own fields }`` and the enum
    ``XErrorCode`` (with ``description``). A domain error of a declared class, or of a subclass,
    is reported under the class's code; any other domain error stays a top-level error."""

    def declare(cls: type[E]) -> type[E]:
        named = [(item, None) if isinstance(item, str) else _named(item) for item in declared]
        members = [(name, name) for name, _ in named]
        enum = cast("type[Enum]", Enum(f"{cls.__name__}Code", members, module=cls.__module__))
        cls.Code = strawberry.enum(enum, description=description)
        cls.codes = {kind: cls.Code[name] for name, kind in named if kind is not None}
        own = {k: v for k, v in inspect.get_annotations(cls).items() if k != "field"}
        cls.__annotations__ = {"code": cls.Code, "message": str, "field": str | None, **own}
        cls.field = strawberry.field(description=field_description)
        return strawberry.type(cls)

    return declare


def _named(item: type[LedgerError] | tuple[str, type[LedgerError]]) -> tuple[str, type[Any]]:
    return item if isinstance(item, tuple) else (item.code, item)


def payload_errors(error: LedgerError, error_class: type[E]) -> list[E]:
    """The payload's errors for a domain error: one, under the code declared for its class or
    its nearest declared base. An error the mutation did not declare is raised again: a
    top-level error, not payload data."""
    for kind in type(error).__mro__:
        code = error_class.codes.get(kind)
        if code is not None:
            details = error_class.details_of(error)
            return [error_class(code=code, message=error.message, field=error.field, **details)]
    raise error


def payload_error(error_class: type[E], code: str, message: str, field: str | None = None) -> E:
    """An error the resolver reports itself, under one of the codes declared by name alone."""
    return error_class(code=error_class.Code[code], message=message, field=field)


def errors_in_payload(
    payload: Callable[..., Payload], error_class: type[MutationError]
) -> Callable[[Callable[P, Awaitable[Payload]]], Callable[P, Awaitable[Payload]]]:
    """A mutation resolver whose domain errors come back as data: a :class:`LedgerError` it
    raises is answered with ``payload(errors=payload_errors(error, error_class))``, every other
    field of the payload at its default (null, false). Put it under ``@strawberry.mutation``."""

    def decorate(resolve: Callable[P, Awaitable[Payload]]) -> Callable[P, Awaitable[Payload]]:
        @functools.wraps(resolve)
        async def resolve_or_report(*args: P.args, **kwargs: P.kwargs) -> Payload:
            try:
                return await resolve(*args, **kwargs)
            except LedgerError as error:
                return payload(errors=payload_errors(error, error_class))

        return resolve_or_report

    return decorate
