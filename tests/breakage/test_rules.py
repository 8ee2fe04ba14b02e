"""Breakage's rules as plain values, no database: the cut-off, dormancy at its edge, the entry."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from accounting.breakage.rules import BreakagePolicy, WalletFacts, breakage_entry, is_dormant


def test_the_cut_off_is_midnight_after_the_run_date_less_the_policys_days() -> None:
    """2100-01-01 less 730 days: 2099 and 2098 have 365 days each, so 2098-01-01. Across a leap
    day: 2028-12-05 less 730 days is 2026-12-06 (2028 has 366 days)."""
    assert BreakagePolicy().cutoff(date(2099, 12, 31)) == datetime(2098, 1, 1, tzinfo=UTC)
    assert BreakagePolicy().cutoff(date(2028, 12, 4)) == datetime(2026, 12, 6, tzinfo=UTC)
    assert BreakagePolicy(after_days=1).cutoff(date(2026, 11, 30)) == datetime(
        2026, 11, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("after_days", [0, -1, 3651])
def test_a_policy_outside_its_bounds_is_refused(after_days: int) -> None:
    with pytest.raises(ValueError):
        BreakagePolicy(after_days=after_days)


def test_a_wallet_is_dormant_only_before_the_cut_off_and_with_value() -> None:
    cutoff = datetime(2026, 12, 6, tzinfo=UTC)
    before = WalletFacts("ana", 350, 4_990_000, cutoff - timedelta(microseconds=1))
    assert is_dormant(before, cutoff)
    assert not is_dormant(WalletFacts("ana", 350, 4_990_000, cutoff), cutoff)
    assert not is_dormant(WalletFacts("ana", 350, 0, before.last_moved_at), cutoff)  # bonus only


def test_the_entry_moves_the_whole_value_to_breakage_and_no_coin() -> None:
    moved = datetime(2026, 12, 5, 7, 30, tzinfo=UTC)
    entry = breakage_entry(
        WalletFacts("ana", 345, 4_918_714, moved),
        as_of=date(2028, 12, 4),
        policy=BreakagePolicy(),
        functional_currency="USD",
        actor="user:fin",
    )
    assert entry.kind == "breakage" and entry.event_key == "breakage:2028-12-04:ana"
    assert {p.account.code: p.amount for p in entry.postings} == {
        "user:ana:coins_value": 4_918_714,
        "platform:revenue:breakage": -4_918_714,
    }
    assert entry.refs == {
        "user_id": "ana",
        "run_date": "2028-12-04",
        "coins_unused": 345,
        "value_micros": 4_918_714,
        "last_moved_at": "2026-12-05T07:30:00+00:00",
        "cutoff": "2026-12-06T00:00:00+00:00",
        "after_days": 730,
    }
