"""What mutation payloads share. A payload holds the mutation's results, null on error, and its
``errors``, empty on success. On error it is built as ``XPayload(errors=...)`` (by
:func:`schema.errors.errors_in_payload`), so every field but ``errors`` has a default."""

from __future__ import annotations

from typing import Any

import strawberry

AS_STORED = "As stored; null on error."
REPLAYED = "True when this idempotency key was seen before: nothing new happened."


def null_on_error(description: str | None = None) -> Any:
    """A payload's result: null when the mutation failed."""
    return strawberry.field(default=None, description=description)


def replayed_field() -> Any:
    """The payload's ``replayed``: false unless the idempotency key was seen before."""
    return strawberry.field(default=False, description=REPLAYED)
