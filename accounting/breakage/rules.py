"""What breakage recognises and posts, as plain functions over plain values.

A wallet is dormant as of the end of a run date when neither its coins nor their value moved
for ``after_days`` whole days: its last movement is before the cut-off, the start of the day
after the run date less ``after_days`` days (UTC). A dormant wallet's whole deferred value (its
``coins_value`` balance) moves to ``platform:revenue:breakage``; its coins stay where they are,
so a later gift of them releases no value (the creator's share is promotional expense)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting

DEFAULT_AFTER_DAYS = 730
MAX_AFTER_DAYS = 3650


@dataclass(frozen=True, slots=True)
class BreakagePolicy:
    """Coins unused for ``after_days`` whole days (default two years) are breakage."""

    after_days: int = DEFAULT_AFTER_DAYS

    def __post_init__(self) -> None:
        if not 1 <= self.after_days <= MAX_AFTER_DAYS:
            raise ValueError(f"breakage needs 1 to {MAX_AFTER_DAYS} days unused")

    def cutoff(self, as_of: date) -> datetime:
        """The instant before which a wallet's last movement makes it dormant as of the end of
        ``as_of``: the next day's midnight (UTC) less ``after_days`` days."""
        end_of_day = datetime.combine(as_of + timedelta(days=1), time(), tzinfo=UTC)
        return end_of_day - timedelta(days=self.after_days)


@dataclass(frozen=True, slots=True)
class WalletFacts:
    """A wallet as read under its lock: coins held, their deferred value, its last movement."""

    user_id: str
    coins: int
    value_micros: int
    last_moved_at: datetime


def is_dormant(wallet: WalletFacts, cutoff: datetime) -> bool:
    """Deferred value to recognise, and no movement of coins or value since the cut-off."""
    return wallet.value_micros > 0 and wallet.last_moved_at < cutoff


def event_key(as_of: date, user_id: str) -> str:
    """One breakage entry per wallet and run date: the ledger keeps event keys unique."""
    return f"breakage:{as_of.isoformat()}:{user_id}"


def breakage_entry(
    wallet: WalletFacts,
    *,
    as_of: date,
    policy: BreakagePolicy,
    functional_currency: str,
    actor: str,
) -> Entry:
    """The wallet's whole deferred value to breakage revenue; the coins do not move."""
    value = wallet.value_micros
    cutoff = policy.cutoff(as_of)
    return Entry(
        kind=EntryKind.BREAKAGE,
        event_key=event_key(as_of, wallet.user_id),
        postings=(
            Posting(chart.user_coins_value(wallet.user_id, functional_currency), value),
            Posting(chart.revenue("breakage", functional_currency), -value),
        ),
        actor=actor,
        rates={"after_days": str(policy.after_days)},
        refs={
            "user_id": wallet.user_id,
            "run_date": as_of.isoformat(),
            "coins_unused": wallet.coins,
            "value_micros": value,
            "last_moved_at": wallet.last_moved_at.isoformat(),
            "cutoff": cutoff.isoformat(),
            "after_days": policy.after_days,
        },
        memo=f"{wallet.coins} coins unused since {wallet.last_moved_at:%Y-%m-%d}: "
        "their deferred value recognised as breakage",
    )
