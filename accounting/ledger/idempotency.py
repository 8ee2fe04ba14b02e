"""Idempotency keys: what makes two requests "the same request"."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from accounting.ledger.errors import InvalidIdempotencyKey

_KEY = re.compile(r"^[\x21-\x7e]{8,128}$")


def check_key(key: str, *, field: str = "idempotencyKey") -> str:
    """A key is 8-128 printable ASCII characters without spaces (a UUID fits)."""
    if not _KEY.fullmatch(key):
        raise InvalidIdempotencyKey(
            "An idempotency key is 8-128 printable ASCII characters without spaces", field=field
        )
    return key


def request_hash(operation: str, fields: Mapping[str, Any]) -> str:
    canonical = json.dumps({"operation": operation, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
