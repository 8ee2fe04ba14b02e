"""Journal entries as frozen values, and the checks every entry passes before it is written.

Amounts are debit-positive: a debit is a positive amount, a credit a negative one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from accounting.ledger.chart import AccountSpec
from accounting.ledger.errors import InvalidEntry, UnbalancedEntry
from accounting.ledger.money import commodity

MAX_POSTINGS_PER_ENTRY = 64
MAX_AMOUNT = 2**62
"""No single posting moves more than this (well inside PostgreSQL's bigint)."""


class EntryKind(StrEnum):
    PURCHASE = "purchase"
    REVERSAL = "reversal"
    TRANSFER = "transfer"
    GIFT = "gift"
    FEATURE = "feature"
    HOLD_RELEASE = "hold_release"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    CHARGEBACK_WON = "chargeback_won"
    DISPUTE_FEE = "dispute_fee"
    PAYOUT = "payout"
    ADJUSTMENT = "adjustment"
    SETTLEMENT = "settlement"
    SETTLEMENT_WRITE_OFF = "settlement_write_off"
    BREAKAGE = "breakage"
    RECEIVABLE_WRITE_OFF = "receivable_write_off"


@dataclass(frozen=True, slots=True)
class Posting:
    account: AccountSpec
    amount: int

    @property
    def commodity(self) -> str:
        return self.account.commodity


@dataclass(frozen=True, slots=True)
class Entry:
    """A balanced, immutable set of postings with what caused it.

    ``event_key`` names the business event the entry records (``purchase:42``); the database
    keeps it unique, so one event can never be posted twice.
    """

    kind: EntryKind
    event_key: str
    postings: tuple[Posting, ...]
    actor: str
    rates: Mapping[str, str] = field(default_factory=dict)
    refs: Mapping[str, Any] = field(default_factory=dict)
    memo: str = ""
    reverses_entry_id: int | None = None

    def __post_init__(self) -> None:
        check_entry(self)


def commodity_sums(postings: Iterable[Posting]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for posting in postings:
        sums[posting.commodity] += posting.amount
    return dict(sums)


def check_entry(entry: Entry) -> None:
    """Invariants 1 and 2, said in Python before the database says them again."""
    if not entry.event_key or len(entry.event_key) > 200:
        raise InvalidEntry("An entry needs an event key of 1-200 characters")
    if len(entry.postings) < 2:
        raise InvalidEntry("An entry has at least two postings", postings=len(entry.postings))
    if len(entry.postings) > MAX_POSTINGS_PER_ENTRY:
        raise InvalidEntry("Too many postings in one entry", postings=len(entry.postings))
    for posting in entry.postings:
        if not isinstance(posting.amount, int) or isinstance(posting.amount, bool):
            raise InvalidEntry("Posting amounts are integers", account=posting.account.code)
        if posting.amount == 0:
            raise InvalidEntry("A posting moves a non-zero amount", account=posting.account.code)
        if abs(posting.amount) > MAX_AMOUNT:
            raise InvalidEntry("A posting amount is out of range", account=posting.account.code)
        commodity(posting.commodity)
    unbalanced = {code: total for code, total in commodity_sums(entry.postings).items() if total}
    if unbalanced:
        raise UnbalancedEntry(
            f"Entry {entry.event_key} does not balance: {unbalanced}", sums=unbalanced
        )


def merge_postings(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    """One posting per account (amounts summed, zero results dropped), in first-seen order."""
    totals: dict[AccountSpec, int] = {}
    for posting in postings:
        totals[posting.account] = totals.get(posting.account, 0) + posting.amount
    return tuple(Posting(account, amount) for account, amount in totals.items() if amount)


def reversal_postings(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    return tuple(Posting(p.account, -p.amount) for p in postings)
