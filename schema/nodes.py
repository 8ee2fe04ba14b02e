"""Global object identification (Relay, GitHub): the ``Node`` interface and its global ids.

A global id is the base64 of ``<Type>:<row id>`` (``UHVyY2hhc2U6Mw==`` is ``Purchase:3``):
opaque to clients, and naming its type, so ``node(id:)`` knows where to look. Lookups and inputs
that take the id of a node also take the row id alone (``"3"``) for this release."""

from __future__ import annotations

import base64
import binascii

import strawberry

from schema.scalars import parse_id


@strawberry.interface(
    description="An object with a global id: node(id:) fetches it again, as its own lookup does."
)
class Node:
    id: strawberry.ID = strawberry.field(
        description="Opaque and global: unique across every type. Do not parse it."
    )


def global_id(type_name: str, pk: int) -> strawberry.ID:
    """The global id of row ``pk`` of the node type ``type_name``."""
    return strawberry.ID(base64.b64encode(f"{type_name}:{pk}".encode()).decode())


def optional_global_id(type_name: str, pk: int | None) -> strawberry.ID | None:
    return None if pk is None else global_id(type_name, pk)


def decode_global_id(id: str) -> tuple[str, int] | None:
    """``(type name, row id)`` of a global id; None when ``id`` is not one."""
    try:
        text = base64.b64decode(id.encode("ascii"), validate=True).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    type_name, colon, pk = text.partition(":")
    if not colon or not type_name.isidentifier():
        return None
    parsed = parse_id(pk)
    return None if parsed is None else (type_name, parsed)


def pk_of(id: str, type_name: str) -> int | None:
    """The row an id names as a ``type_name``: its global id, or the row id alone (accepted for
    this release); None when it names no row of that type (another type's global id, garbage)."""
    raw = parse_id(id)
    if raw is not None:
        return raw
    decoded = decode_global_id(id)
    if decoded is None or decoded[0] != type_name:
        return None
    return decoded[1]
