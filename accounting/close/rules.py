"""The close's pure rules: months as ``YYYY-MM`` in UTC, which month may close next, and the
journal's chain: each entry's canonical encoding and its seal.

**The canonical encoding** of an entry is the UTF-8 of the JSON object

    {"id": <id>, "kind": <kind>, "postedAt": <posted_at>,
     "postings": [[<account code>, <commodity>, <amount>], ...],
     "rates": <rates>, "refs": <refs>, "reverses": <reversed entry id or null>}

with keys sorted at every level, no whitespace (separators ``,`` and ``:``), non-ASCII escaped
(``\\uXXXX``); ``postedAt`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six digits);
amounts as JSON integers; the postings sorted (by account code, then commodity, then amount);
``rates`` and ``refs`` the entry's JSON as stored.

**The seal** of an entry is ``sha256(<predecessor's seal> + "\\n" + <canonical encoding>)`` in
lower-case hex, the predecessor being the entry of the next lower id (the first entry's is
:data:`GENESIS`, 64 zeros); the seals are the entries in id order, each one committing to every
entry before it. The chain's head is the seal of the highest entry sealed."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accounting.close.errors import InvalidMonth

GENESIS = "0" * 64
"""The seal before the first entry."""

_MONTH = re.compile(r"(\d{4})-(\d{2})")


def parse_month(text: str) -> datetime:
    """The first instant (UTC) of the month ``YYYY-MM``."""
    match = _MONTH.fullmatch(text.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 2000:
        raise InvalidMonth(f"A month is YYYY-MM (e.g. 2026-11), not {text!r}", field="month")
    return datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)


def month_start(instant: datetime) -> datetime:
    """The first instant (UTC) of the month ``instant`` falls in."""
    utc = instant.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    """The first instant of the month after ``month`` (itself a month's first instant)."""
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def month_name(month: datetime) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def out_of_order(
    month: datetime, last_closed: datetime | None, first_entry_at: datetime | None
) -> datetime | None:
    """The month that must close first when ``month`` may not close now, else None. After a
    close, only the month after it may close; before any, any month up to the first entry's
    (one before the books began is empty), so that no month with entries is ever skipped."""
    if last_closed is not None:
        expected = next_month(last_closed)
        return None if month == expected else expected
    first = None if first_entry_at is None else month_start(first_entry_at)
    return first if first is not None and month > first else None


@dataclass(frozen=True, slots=True)
class SealedFacts:
    """What an entry's seal covers, as the journal holds it."""

    id: int
    kind: str
    posted_at: datetime
    postings: tuple[tuple[str, str, int], ...]
    """(account code, commodity, amount) of each posting, in any order."""
    rates: Mapping[str, Any]
    refs: Mapping[str, Any]
    reverses_entry_id: int | None


def canonical_encoding(entry: SealedFacts) -> bytes:
    """The entry as the seal hashes it (the module's docstring says exactly how)."""
    posted = entry.posted_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    document = {
        "id": entry.id,
        "kind": entry.kind,
        "postedAt": posted,
        "postings": sorted([code, commodity, amount] for code, commodity, amount in entry.postings),
        "rates": entry.rates,
        "refs": entry.refs,
        "reverses": entry.reverses_entry_id,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def seal(previous: str, entry: SealedFacts) -> str:
    """The entry's seal, chained over its predecessor's."""
    return hashlib.sha256(previous.encode() + b"\n" + canonical_encoding(entry)).hexdigest()


def chain(previous: str, entries: Iterable[SealedFacts]) -> list[tuple[int, str]]:
    """The seals of ``entries`` (in id order), the first chained over ``previous``."""
    seals = []
    for entry in entries:
        previous = seal(previous, entry)
        seals.append((entry.id, previous))
    return seals
