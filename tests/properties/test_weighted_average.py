"""Spending coins, proved on random histories: the weighted average on its own.

For any sequence of purchases and spends, every release is between nothing and what is left,
each is the exact weighted average rounded to the micro, and a wallet spent down to zero coins
has released exactly what was paid for it: no rounding residue is lost or invented.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.ledger.valuation import release_value

purchase_steps = st.tuples(
    st.just("buy"),
    st.integers(0, 10**10),  # what was paid, in micros (0: coins that cost nothing)
    st.integers(1, 10**6),  # coins
)
spend_steps = st.tuples(st.just("spend"), st.integers(1, 10**6), st.just(0))
"""A spend draws a number that is turned into 1..held coins."""


def exact_share(value_micros: int, coins_held: int, coins_spent: int) -> Fraction:
    return Fraction(value_micros * coins_spent, coins_held)


@given(
    steps=st.lists(st.one_of(purchase_steps, spend_steps), max_size=60),
    last_spends=st.lists(st.integers(1, 10**6), max_size=20),
)
@settings(max_examples=500, deadline=None)
def test_a_wallet_spent_to_zero_releases_exactly_what_was_paid(
    steps: list[tuple[str, int, int]], last_spends: list[int]
) -> None:
    coins, value = 0, 0
    paid, released = 0, 0

    def spend(draw: int) -> None:
        nonlocal coins, value, released
        spent = 1 + draw % coins
        release = release_value(value, coins, spent)
        assert 0 <= release <= value, (value, coins, spent, release)
        if spent == coins:
            assert release == value, "the last coin releases all that is left"
        else:  # the weighted average, to the nearest micro
            assert abs(release - exact_share(value, coins, spent)) <= Fraction(1, 2)
        coins -= spent
        value -= release
        released += release

    for kind, amount, bought in steps:
        if kind == "buy":
            coins, value, paid = coins + bought, value + amount, paid + amount
        elif coins:
            spend(amount)
        assert released + value == paid, "value was lost or invented"
        assert value >= 0 and (coins or not value), (coins, value)
    for draw in last_spends:  # spend what is left in random pieces...
        if coins:
            spend(draw)
    if coins:  # ...and the rest at once
        spend(coins - 1)
    assert (coins, value) == (0, 0)
    assert released == paid


@given(
    value=st.integers(0, 10**12),
    held=st.integers(1, 10**7),
    data=st.data(),
)
def test_spending_more_coins_never_releases_less(
    value: int, held: int, data: st.DataObject
) -> None:
    fewer = data.draw(st.integers(1, held))
    more = data.draw(st.integers(fewer, held))
    assert release_value(value, held, fewer) <= release_value(value, held, more)
    # rounding half to even: a share of exactly x.5 micros goes to the even neighbour
    share = exact_share(value, held, fewer)
    if fewer < held and share.denominator == 2:
        assert release_value(value, held, fewer) % 2 == 0


@pytest.mark.parametrize(
    ("value", "held", "spent"),
    [(100, 10, 0), (100, 10, 11), (100, 10, -1), (-1, 10, 5), (100, 0, 1)],
)
def test_release_value_refuses_what_cannot_be_spent(value: int, held: int, spent: int) -> None:
    with pytest.raises(ValueError):
        release_value(value, held, spent)


def test_release_value_on_worked_examples() -> None:
    """$4.99 for 350 coins: 5 coins are worth 71,285.71 micro-dollars, released as 71,286;
    1 coin of 3 for 1 micro is a third of a micro, released as 0; the last coin takes the
    rest, whatever it is."""
    assert release_value(4_990_000, 350, 5) == 71_286
    assert release_value(1, 3, 1) == 0
    assert release_value(1, 3, 3) == 1
    assert release_value(5, 2, 1) == 2  # 2.5 rounds to even
    assert release_value(7, 2, 1) == 4  # 3.5 rounds to even
    assert release_value(0, 18_375, 100) == 0
