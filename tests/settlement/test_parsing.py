"""Reading a settlement report: one CSV format for every provider (docs/settlement/), amounts in
the currency's unit read exactly into micro-units, and a malformed line refused with its line
number (the header is line 1) and the column at fault."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from accounting.ledger.chart import PROVIDERS
from accounting.settlement.errors import MalformedReport
from accounting.settlement.rules import (
    COLUMNS,
    LedgerItem,
    LineStatus,
    LineType,
    SettlementLine,
    parse_report,
    reconcile,
)

SAMPLES = Path(__file__).parents[2] / "docs" / "settlement"
HEADER = ",".join(COLUMNS)
AT = "2026-11-30T02:00:00Z"


def text(*rows: str) -> str:
    return "\n".join((HEADER, *rows)) + "\n"


def test_every_provider_has_a_sample_report_that_reads() -> None:
    for provider in (*PROVIDERS, "bank"):
        parsed = parse_report((SAMPLES / f"{provider}.csv").read_text())
        assert parsed.provider == provider
        assert parsed.lines and all(line.net_micros for line in parsed.lines)


def test_the_card_sample_reads_to_the_micro_unit() -> None:
    parsed = parse_report((SAMPLES / "card.csv").read_text())
    assert parsed.report_id == "card-2026-11-30-usd"
    assert [line.type for line in parsed.lines] == [
        LineType.CHARGE,
        LineType.CHARGE,
        LineType.REFUND,
        LineType.DISPUTE,
        LineType.DISPUTE_FEE,
        LineType.ADJUSTMENT,
        LineType.PAYOUT,
    ]
    first = parsed.lines[0]
    # 4.99 - 0.44 = 4.55, each in micro-units (1 USD = 1,000,000)
    assert (first.gross_micros, first.fee_micros, first.net_micros) == (
        4_990_000,
        440_000,
        4_550_000,
    )
    assert first.line_number == 2 and parsed.lines[-1].line_number == 8
    assert first.settled_at == datetime(2026, 11, 30, 2, tzinfo=UTC)
    # the lines span 30 November (UTC): the period is that day
    assert parsed.period_start == datetime(2026, 11, 30, tzinfo=UTC)
    assert parsed.period_end == datetime(2026, 12, 1, tzinfo=UTC)
    assert parsed.currencies == ("USD",)


def test_the_same_lines_in_another_layout_have_the_same_digest() -> None:
    plain = text(f"r1,card,ch_1,charge,4.99,0.44,4.55,USD,{AT}")
    other = (
        HEADER.upper() + "\r\n"
        '"r1",CARD,ch_1,Charge,4.990,0.440,4.5500,usd,2026-11-30T03:00:00+01:00\r\n\r\n'
    )
    assert parse_report(plain).digest == parse_report(other).digest
    changed = text(f"r1,card,ch_1,charge,4.99,0.45,4.54,USD,{AT}")
    assert parse_report(changed).digest != parse_report(plain).digest


@pytest.mark.parametrize(
    ("rows", "line", "field", "says"),
    [
        (
            (f"r1,card,ch_1,charge,4.99,0.44,4.55,USD,{AT}", "r1,card,ch_2,charge"),
            3,
            None,
            "4 columns",
        ),
        ((f"r1,card,ch_1,charge,4.99,0.44,4.54,USD,{AT}",), 2, "net", "net is not gross less fee"),
        ((f"r1,card,ch_1,charge,4.999,0.44,4.559,USD,{AT}",), 2, "gross", "minor units"),
        ((f"r1,card,ch_1,charge,four,0.44,4.55,USD,{AT}",), 2, "gross", "not a decimal"),
        ((f"r1,card,ch_1,sale,4.99,0.44,4.55,USD,{AT}",), 2, "type", "is not one of"),
        ((f"r1,card,ch_1,charge,4.99,0.44,4.55,XXX,{AT}",), 2, "currency", "not a currency"),
        ((f"r1,stripe,ch_1,charge,4.99,0.44,4.55,USD,{AT}",), 2, "provider", "is not one of"),
        ((f"r1,bank,ch_1,charge,4.99,0.44,4.55,USD,{AT}",), 2, "type", "a bank report has no"),
        ((f"r1,card,41,creator_payout,-10,0,-10,USD,{AT}",), 2, "type", "a card report has no"),
        (
            ("r1,card,ch_1,charge,4.99,0.44,4.55,USD,2026-11-30 02:00",),
            2,
            "settled_at",
            "time zone",
        ),
        (("r1,card,ch_1,charge,4.99,0.44,4.55,USD,yesterday",), 2, "settled_at", "ISO 8601"),
        ((f"r1,card,,charge,4.99,0.44,4.55,USD,{AT}",), 2, "provider_reference", "1-200"),
        ((f"r1,card,ch_1,refund,4.99,0.00,4.99,USD,{AT}",), 2, "net", "negative gross"),
        ((f"r1,card,po_1,payout,-9.00,0.10,-9.10,USD,{AT}",), 2, "net", "no fee"),
        ((f"r1,card,dp_1,dispute_fee,-15.00,0.00,-15.00,USD,{AT}",), 2, "net", "zero gross"),
        (
            (f"r1,card,ch_1,charge,4.99,0.44,4.55,USD,{AT}", f"r2,card,ch_2,charge,1,0,1,USD,{AT}"),
            3,
            "report_id",
            "every line is of report r1 of card",
        ),
        ((), 2, None, "no lines"),
    ],
)
def test_a_malformed_line_is_named_by_its_number_and_column(
    rows: tuple[str, ...], line: int, field: str | None, says: str
) -> None:
    with pytest.raises(MalformedReport) as refused:
        parse_report(text(*rows))
    assert refused.value.facts["line"] == line
    assert refused.value.field == field
    assert refused.value.message.startswith(f"Line {line}: ")
    assert says in refused.value.message


def test_a_report_without_its_header_is_refused_at_line_one() -> None:
    with pytest.raises(MalformedReport) as refused:
        parse_report(f"r1,card,ch_1,charge,4.99,0.44,4.55,USD,{AT}\n")
    assert refused.value.facts["line"] == 1
    with pytest.raises(MalformedReport):
        parse_report("")


def _line(kind: LineType, gross: int, fee: int) -> SettlementLine:
    return SettlementLine(2, "ch_1", kind, gross, fee, gross - fee, "USD", datetime.now(UTC))


def test_a_line_reconciles_by_its_gross_and_its_difference_is_the_ledger_less_its_net() -> None:
    # The ledger booked a $4.99 card charge with the 44-cent fee it expected: clearing 4.55.
    charge = LedgerItem(entry_id=7, kind="purchase", clearing_micros=4_550_000, fee_micros=440_000)
    # The provider took 45 cents: matched, and 4.55 - 4.54 = 1 cent more fee.
    took_more = reconcile(_line(LineType.CHARGE, 4_990_000, 450_000), charge)
    assert (took_more.status, took_more.difference_micros) == (LineStatus.MATCHED, 10_000)
    # It charged $5.49: an amount mismatch; clearing would keep 4.55 - 5.05 = -0.50.
    other = reconcile(_line(LineType.CHARGE, 5_490_000, 440_000), charge)
    assert (other.status, other.difference_micros) == (LineStatus.AMOUNT_MISMATCH, -500_000)
    # Nothing in the ledger: the provider paid 4.55 the ledger never booked.
    missing = reconcile(_line(LineType.CHARGE, 4_990_000, 440_000), None)
    assert (missing.status, missing.difference_micros) == (LineStatus.MISSING_IN_LEDGER, -4_550_000)
    # A payout is cash to the bank: nothing to reconcile.
    payout = reconcile(_line(LineType.PAYOUT, -4_550_000, 0), None)
    assert (payout.status, payout.difference_micros) == (LineStatus.BANK_TRANSFER, 0)
