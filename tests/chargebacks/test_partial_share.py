"""The share of a purchase a partial takeback claws back (``partial_share``), as properties:
however a purchase's price is taken back in pieces, the pieces' coins never add up beyond its
coins, the whole price takes back exactly every coin (what a full chargeback takes), and each
running total is the exact share rounded up, against the buyer, by less than one coin."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounting.chargebacks.rules import chargeback_amounts, partial_share


@st.composite
def takebacks(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """A purchase's coins (or its value in micro-units), its price in minor units, and pieces
    of the price taken back one after another (at most the whole price between them)."""
    total = draw(st.integers(min_value=0, max_value=10**12))
    whole = draw(st.integers(min_value=1, max_value=10**8))
    pieces: list[int] = []
    left = whole
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        if left == 0:
            break
        piece = draw(st.integers(min_value=1, max_value=left))
        pieces.append(piece)
        left -= piece
    if draw(st.booleans()) and left:  # often the pieces take back the whole price
        pieces.append(left)
    return total, whole, pieces


@given(takebacks())
def test_partial_takebacks_of_one_purchase_never_add_up_beyond_it(
    takeback: tuple[int, int, list[int]],
) -> None:
    total, whole, pieces = takeback
    taken = 0
    before = 0
    for part in pieces:
        share = partial_share(total, whole=whole, before=before, part=part)
        before += part
        taken += share
        assert share >= 0
        # the running total is the exact share rounded up, by less than one unit
        assert 0 <= taken * whole - total * before < whole
    assert taken <= total
    if before == whole:
        assert taken == total


@given(
    st.integers(min_value=1, max_value=10**7),
    st.integers(min_value=1, max_value=10**8),
    st.integers(min_value=0, max_value=10**13),
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=0, max_value=10**13),
    st.integers(min_value=0, max_value=10**13),
)
def test_the_whole_price_claws_back_exactly_what_a_full_chargeback_does(
    coins: int, price_minor: int, paid: int, wallet_coins: int, wallet_value: int, payable: int
) -> None:
    share = {"whole": price_minor, "before": 0, "part": price_minor}
    assert partial_share(coins, **share) == coins
    assert partial_share(paid, **share) == paid
    full = chargeback_amounts(
        coins=coins,
        value_paid_micros=paid,
        wallet_coins=wallet_coins,
        wallet_value_micros=wallet_value,
        payable_clawed_micros=payable,
    )
    taken = chargeback_amounts(
        coins=partial_share(coins, **share),
        value_paid_micros=partial_share(paid, **share),
        wallet_coins=wallet_coins,
        wallet_value_micros=wallet_value,
        payable_clawed_micros=payable,
    )
    assert taken == full


def test_mallorys_five_dollars_of_999_take_back_1002_of_2000_coins() -> None:
    """⌈2,000 × 500 / 999⌉ = ⌈1,001.001⌉ = 1,002 coins; the other $4.99 then takes back
    ⌈2,000 × 999 / 999⌉ − 1,002 = 998: 2,000 between them."""
    assert partial_share(2_000, whole=999, before=0, part=500) == 1_002
    assert partial_share(2_000, whole=999, before=500, part=499) == 998


@pytest.mark.parametrize(("before", "part"), [(0, 0), (0, 1_000), (500, 500), (-1, 1)])
def test_a_takeback_that_is_no_part_of_the_price_is_refused(before: int, part: int) -> None:
    with pytest.raises(ValueError, match="not a part of it"):
        partial_share(2_000, whole=999, before=before, part=part)
