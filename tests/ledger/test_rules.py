"""Unit tests of the pure rules: money, fees, entry checks and what a purchase posts.
No database here: these are plain functions over plain values."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting, merge_postings, reversal_postings
from accounting.ledger.errors import InvalidAmount, InvalidEntry, UnbalancedEntry, UnknownCommodity
from accounting.ledger.money import (
    format_micros,
    micros_to_minor_exact,
    minor_to_micros,
    mul_rate,
    parse_decimal_amount,
    round_micros_to_minor,
)
from accounting.ledger.valuation import release_value
from accounting.purchases.fees import fee_schedules
from accounting.purchases.rules import PurchaseFacts, purchase_entry, purchase_value_micros


def test_money_formats_minor_unit_digits_and_sub_cent_values() -> None:
    assert format_micros(4_990_000, "USD") == "4.99"
    assert format_micros(5_000_000, "USD") == "5.00"
    assert format_micros(14_257, "USD") == "0.014257"
    assert format_micros(-1_500_000, "EUR") == "-1.50"
    assert format_micros(160_000_000, "JPY") == "160"
    assert format_micros(2_300_000, "JPY") == "2.3"


def test_decimal_amounts_parse_exactly_or_not_at_all() -> None:
    assert parse_decimal_amount("4.99", "USD") == 4_990_000
    assert parse_decimal_amount("0.000001", "USD") == 1
    with pytest.raises(InvalidAmount):
        parse_decimal_amount("0.0000001", "USD")
    with pytest.raises(InvalidAmount):
        parse_decimal_amount("1e400000", "USD")
    with pytest.raises(InvalidAmount):
        parse_decimal_amount("NaN", "USD")
    with pytest.raises(UnknownCommodity):
        parse_decimal_amount("1", "XXX")


def test_cash_is_whole_minor_units() -> None:
    assert minor_to_micros(499, "USD") == 4_990_000
    assert minor_to_micros(160, "JPY") == 160_000_000
    assert micros_to_minor_exact(4_990_000, "USD") == 499
    with pytest.raises(InvalidAmount):
        micros_to_minor_exact(4_990_001, "USD")
    with pytest.raises(InvalidAmount):
        micros_to_minor_exact(500_000, "JPY")
    assert round_micros_to_minor(4_995_000, "USD") == 5_000_000
    assert round_micros_to_minor(4_994_999, "USD") == 4_990_000


def test_rates_round_half_even_to_a_micro_unit() -> None:
    assert mul_rate(4_990_000, Decimal("1.08")) == 5_389_200
    assert mul_rate(5, Decimal("0.5")) == 2
    assert mul_rate(7, Decimal("0.5")) == 4


def test_card_fee_is_percentage_plus_fixed_rounded_to_the_cent() -> None:
    fees = fee_schedules()
    assert fees["card"].fee_minor(499, "USD") == 14 + 30  # 2.9% of 4.99 = 14.471 cents
    assert fees["paypal"].fee_minor(499, "USD") == 17 + 49  # 3.49% of 4.99 = 17.415 cents
    assert fees["card"].fee_minor(160, "JPY") == 5 + 40


def test_app_store_commission_is_configurable() -> None:
    assert fee_schedules(30)["apple"].fee_minor(549, "USD") == 165  # 164.7 cents
    assert fee_schedules(15)["google"].fee_minor(549, "USD") == 82  # 82.35 cents


def test_a_fee_never_exceeds_the_price() -> None:
    assert fee_schedules()["card"].fee_minor(10, "USD") == 10


def _facts(**changes: object) -> PurchaseFacts:
    base: dict[str, object] = {
        "purchase_id": 7,
        "user_id": "ana",
        "coins": 350,
        "bonus_coins": 0,
        "provider": "paypal",
        "currency": "USD",
        "price_minor": 499,
        "fee_minor": 66,
        "functional_currency": "USD",
        "fx_rate": None,
        "provider_reference": "sbx_1",
        "package_code": "coins_350",
    }
    base.update(changes)
    return PurchaseFacts(**base)  # type: ignore[arg-type]


def _by_code(entry: Entry) -> dict[str, int]:
    return {p.account.code: p.amount for p in merge_postings(entry.postings)}


def test_a_purchase_issues_coins_defers_the_value_and_books_the_fee() -> None:
    entry = purchase_entry(_facts(), actor="user:ana")
    assert entry.kind is EntryKind.PURCHASE
    assert entry.event_key == "purchase:7"
    assert _by_code(entry) == {
        "platform:coins:issued": 350,
        "user:ana:coins": -350,
        "platform:clearing:paypal:USD": 4_990_000 - 660_000,
        "user:ana:coins_value": -4_990_000,
        "platform:expense:processor_fees:USD": 660_000,
    }


def test_bonus_coins_share_the_value_paid() -> None:
    entry = purchase_entry(_facts(coins=17_500, bonus_coins=875, price_minor=23_499), "user:ana")
    assert _by_code(entry)["user:ana:coins"] == -18_375
    assert _by_code(entry)["user:ana:coins_value"] == -234_990_000


def test_a_purchase_in_another_currency_converts_through_the_trading_accounts() -> None:
    facts = _facts(
        currency="EUR", price_minor=499, fee_minor=39, fx_rate=Decimal("1.08"), provider="card"
    )
    entry = purchase_entry(facts, "user:ana")
    assert purchase_value_micros(facts) == 5_389_200
    assert _by_code(entry) == {
        "platform:coins:issued": 350,
        "user:ana:coins": -350,
        "platform:clearing:card:EUR": 4_990_000 - 390_000,
        "platform:fx:EUR": -4_990_000,
        "platform:fx:USD": 5_389_200,
        "user:ana:coins_value": -5_389_200,
        "platform:expense:processor_fees:EUR": 390_000,
    }
    assert "EUR/USD=1.08" in entry.rates["fx"]


def test_app_store_commission_goes_to_app_store_fees() -> None:
    entry = purchase_entry(_facts(provider="apple", price_minor=549, fee_minor=165), "user:ana")
    assert _by_code(entry)["platform:expense:app_store_fees:USD"] == 1_650_000


def test_an_unbalanced_entry_cannot_even_be_built() -> None:
    with pytest.raises(UnbalancedEntry) as refused:
        Entry(
            EntryKind.TRANSFER,
            "t:1",
            (Posting(chart.coins_issued(), 10), Posting(chart.user_coins("ana"), -9)),
            actor="test",
        )
    assert refused.value.facts["sums"] == {"COIN": 1}


def test_an_entry_needs_two_nonzero_postings() -> None:
    with pytest.raises(InvalidEntry):
        Entry(EntryKind.TRANSFER, "t:1", (Posting(chart.coins_issued(), 0),), actor="test")
    with pytest.raises(InvalidEntry):
        Entry(
            EntryKind.TRANSFER,
            "t:1",
            (Posting(chart.coins_issued(), 0), Posting(chart.user_coins("ana"), 0)),
            actor="test",
        )


def test_balancing_is_per_commodity() -> None:
    with pytest.raises(UnbalancedEntry):
        Entry(
            EntryKind.TRANSFER,
            "t:1",
            (Posting(chart.coins_issued(), 10), Posting(chart.bank("USD"), -10)),
            actor="test",
        )


def test_a_reversal_negates_every_posting() -> None:
    entry = purchase_entry(_facts(), "user:ana")
    reversed_ = reversal_postings(entry.postings)
    assert [p.amount for p in reversed_] == [-p.amount for p in entry.postings]


def test_normal_sides_follow_type_and_contra() -> None:
    assert chart.user_coins("ana").normal_sign == -1  # liability: credit-normal
    assert chart.coins_issued().normal_sign == 1  # contra equity: debit-normal
    assert chart.bank("USD").normal_sign == 1
    assert chart.revenue("gifts", "USD").normal_sign == -1
    assert chart.fee_expense("card", "USD").normal_sign == 1


def test_user_ids_are_checked() -> None:
    with pytest.raises(Exception, match="user id"):
        chart.user_coins("ana:evil")


@given(
    value=st.integers(min_value=0, max_value=10**15),
    held=st.integers(min_value=1, max_value=10**9),
    data=st.data(),
)
def test_release_value_is_the_weighted_average_rounded_half_even(
    value: int, held: int, data: st.DataObject
) -> None:
    spent = data.draw(st.integers(min_value=1, max_value=held))
    expected = value if spent == held else min(value, round(Fraction(value * spent, held)))
    assert release_value(value, held, spent) == expected


@pytest.mark.parametrize(
    ("value", "held", "spent", "released"),
    [(5, 2, 1, 2), (7, 2, 1, 4), (1, 4, 1, 0), (3, 4, 2, 2), (10, 3, 3, 10), (0, 5, 2, 0)],
)
def test_release_value_ties_go_to_the_even_micro(
    value: int, held: int, spent: int, released: int
) -> None:
    assert release_value(value, held, spent) == released
