"""A committed gift as the live feed announces it.

The database announces every gift on channel :data:`GIFT_CHANNEL` from an AFTER INSERT trigger
(migration 0003). PostgreSQL delivers the notice only when, and if, the inserting transaction
commits, so a :class:`GiftEvent` is always a gift that is in the books."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GIFT_CHANNEL = "coinbooks_gifts"
"""The LISTEN/NOTIFY channel the ``gift_notify`` trigger announces gifts on."""


class MalformedGiftNotice(ValueError):
    """A notice on the gift channel that is not a gift as the trigger writes it."""


@dataclass(frozen=True, slots=True)
class GiftEvent:
    gift_id: int
    stream_id: int
    sender_id: str
    creator_id: str
    gift_code: str
    quantity: int
    coins: int
    diamonds: int
    created_at: datetime

    def __post_init__(self) -> None:
        if self.gift_id < 1 or self.stream_id < 1:
            raise MalformedGiftNotice(f"gift {self.gift_id} in stream {self.stream_id}")
        if self.quantity < 1 or self.coins < 1 or self.diamonds < 0:
            raise MalformedGiftNotice(
                f"gift {self.gift_id}: quantity {self.quantity}, coins {self.coins}, "
                f"diamonds {self.diamonds}"
            )
        if self.created_at.tzinfo is None:
            raise MalformedGiftNotice(f"gift {self.gift_id}: created_at has no time zone")


def _whole(fields: dict[str, Any], name: str) -> int:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedGiftNotice(f"{name} is not a whole number: {value!r}")
    return value


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedGiftNotice(f"{name} is not a non-empty string: {value!r}")
    return value


def parse_gift_notice(payload: str) -> GiftEvent:
    """The gift a notice on :data:`GIFT_CHANNEL` announces; :class:`MalformedGiftNotice` when
    the payload is anything else."""
    try:
        fields = json.loads(payload)
    except json.JSONDecodeError as error:
        raise MalformedGiftNotice(f"not JSON: {error}") from None
    if not isinstance(fields, dict):
        raise MalformedGiftNotice("not a JSON object")
    try:
        created_at = datetime.fromisoformat(_text(fields, "created_at"))
    except ValueError as error:
        raise MalformedGiftNotice(f"created_at: {error}") from None
    return GiftEvent(
        gift_id=_whole(fields, "gift_id"),
        stream_id=_whole(fields, "stream_id"),
        sender_id=_text(fields, "sender_id"),
        creator_id=_text(fields, "creator_id"),
        gift_code=_text(fields, "gift_code"),
        quantity=_whole(fields, "quantity"),
        coins=_whole(fields, "coins"),
        diamonds=_whole(fields, "diamonds"),
        created_at=created_at,
    )
