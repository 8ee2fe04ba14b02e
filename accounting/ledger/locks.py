"""The one global order of account locks: a transaction locks every account it will post to in
one statement (``posting.lock_accounts``, or the gift batch's reading statement), in ascending
id order, before it posts anything. Two transactions over the same accounts then queue: neither
can hold one account while waiting for another the other holds.

The order holds only if a transaction never comes back for more: one that locked a wallet and
then asked for ``platform:coins:spent`` would hold the wallet while waiting for an account of
lower id, which a gift batch may hold while it waits for that wallet (a deadlock PostgreSQL
breaks after ``deadlock_timeout``, by aborting one of them). So each transaction's accounts are
recorded when it first locks them; later it may lock those again (to read them as it left
them) or open new ones (rows no other transaction can hold yet), but asking for any other
existing account is refused before a lock is taken (``AccountLockOrder``), and
``posting.in_transaction`` runs the work again with every account it asked for locked at once.
Flows name their accounts up front, so that never happens in their normal course; the rows a
flow locks of its own (a purchase, a payout, gifts) are locked before its accounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.chart import AccountSpec

_HELD = "coinbooks.locked_accounts"
_FIRST = "coinbooks.accounts_to_lock_first"


class AccountLockOrder(Exception):
    """A transaction asked to lock accounts after its first lock of accounts: refused, since
    taking them now could deadlock. ``accounts`` are all it asked for, which its next attempt
    locks in its first lock."""

    def __init__(self, held: Iterable[AccountSpec], asked: Iterable[AccountSpec]) -> None:
        merged = {spec.code: spec for spec in (*held, *asked)}
        self.accounts = tuple(merged[code] for code in sorted(merged))
        late = sorted(set(merged) - {spec.code for spec in held})
        super().__init__(
            f"accounts {', '.join(late)} asked for after the transaction locked its accounts"
        )


@dataclass(slots=True)
class _Held:
    transaction: object
    accounts: dict[str, AccountSpec]


def _held(session: AsyncSession) -> dict[str, AccountSpec] | None:
    """The accounts the session's current transaction locked, None before its first lock."""
    held: _Held | None = session.info.get(_HELD)
    if held is None or held.transaction is not session.sync_session.get_transaction():
        return None
    return held.accounts


def to_lock(
    session: AsyncSession, asked: Mapping[str, AccountSpec]
) -> tuple[dict[str, AccountSpec], list[str]]:
    """The accounts to lock for a request of ``asked``, and those of them the transaction asks
    for late. On its first lock: ``asked`` and any its previous attempt learnt it needs
    (``lock_first``), none late. After it: ``asked``, late those it does not hold, which it may
    only open (new rows no other transaction can hold; ``refuse_late`` checks they are new)."""
    held = _held(session)
    if held is None:
        first: dict[str, AccountSpec] = session.info.pop(_FIRST, {})
        return {**first, **asked}, []
    return dict(asked), sorted(asked.keys() - held.keys())


def refuse_late(session: AsyncSession, asked: Mapping[str, AccountSpec], existing: bool) -> None:
    """``AccountLockOrder`` if accounts asked for late already exist (``existing``)."""
    if existing:
        raise AccountLockOrder((_held(session) or {}).values(), asked.values())


def hold(session: AsyncSession, locked: Mapping[str, AccountSpec]) -> None:
    """Record that the session's transaction holds the locks of ``locked``: its first lock, or
    accounts it opened since."""
    held = _held(session)
    if held is not None:
        held.update(locked)
    elif locked:
        session.info[_HELD] = _Held(session.sync_session.get_transaction(), dict(locked))


def lock_first(session: AsyncSession, accounts: Iterable[AccountSpec]) -> None:
    """Have the transaction about to run on ``session`` lock ``accounts`` in its first lock."""
    session.info[_FIRST] = {spec.code: spec for spec in accounts}
