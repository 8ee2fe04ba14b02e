"""Settlement's pure rules: reading a provider's settlement report (CSV), reconciling one line
against the ledger item it settles, and the entries settlement posts.

Signs follow the provider's balance, which ``platform:clearing:<provider>:<CUR>`` mirrors: a
line's ``net`` (= ``gross`` - ``fee``) is what it adds to what the provider owes us. A charge
adds (gross > 0), a refund or a dispute takes away (gross < 0), a dispute fee takes its fee, a
payout to the bank takes what it sends (gross < 0, no fee).

A ledger item put ``clearing_micros`` into clearing (a purchase: its price less the fee the
ledger expected). The line's *difference* is ``clearing_micros - net``: what clearing holds
that the provider will not pay. A matched line posts it to the fee expense (the fee the
provider took beyond the fee the ledger expected); any other line keeps it as an exception.

The bank's confirmations of creator payouts come in the same format, from the source ``bank``:
each ``creator_payout`` line (reference: the payout's id, gross: minus the cash that left the
bank) reconciles against the payout's ``paid`` entry, which moved that cash from payouts in
transit to ``platform:bank:<CUR>``; they post nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from accounting.ledger import chart
from accounting.ledger.chart import AccountSpec
from accounting.ledger.entries import Entry, EntryKind, Posting, merge_postings
from accounting.ledger.errors import LedgerError
from accounting.ledger.money import fiat, micros_to_minor_exact, parse_decimal_amount
from accounting.settlement.errors import MalformedReport

MAX_LINES = 10_000
"""Lines in one report, at most (a provider's daily or weekly report per currency)."""
MAX_REPORT_BYTES = 4_000_000
MAX_REFERENCE = 200
MAX_REPORT_ID = 150
BANK = "bank"
"""The source of the bank's confirmations of creator payouts."""
SOURCES = (*chart.PROVIDERS, BANK)

COLUMNS = (
    "report_id",
    "provider",
    "provider_reference",
    "type",
    "gross",
    "fee",
    "net",
    "currency",
    "settled_at",
)
"""The header every settlement report starts with, in this order (one format for every
provider: docs/settlement/)."""


class LineType(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"
    DISPUTE = "dispute"
    DISPUTE_FEE = "dispute_fee"
    ADJUSTMENT = "adjustment"
    PAYOUT = "payout"
    """The provider's transfer of its balance to our bank account."""
    CREATOR_PAYOUT = "creator_payout"
    """A creator's payout, as the bank confirms it paid (only in the bank's reports)."""


class LineStatus(StrEnum):
    MATCHED = "matched"
    MISSING_IN_LEDGER = "missing_in_ledger"
    AMOUNT_MISMATCH = "amount_mismatch"
    BANK_TRANSFER = "bank_transfer"
    """A payout line: cash from clearing to the bank, nothing to reconcile it against."""


class ExceptionKind(StrEnum):
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_IN_REPORT = "missing_in_report"
    AMOUNT_MISMATCH = "amount_mismatch"


class Resolution(StrEnum):
    ACCEPT = "accept"
    """The difference is explained elsewhere (another flow books it, or nothing is owed): no
    posting."""
    WRITE_OFF = "write_off"
    """The difference will never be paid: it moves from clearing to the fee expense."""
    SETTLED_LATER = "settled_later"
    """A later report settled the ledger item (set by the import, never chosen by finance)."""


ENTRY_KIND_OF_LINE = {
    LineType.CHARGE: "purchase",
    LineType.REFUND: "refund",
    LineType.DISPUTE: "chargeback",
    LineType.DISPUTE_FEE: "dispute_fee",
    LineType.CREATOR_PAYOUT: "payout",
}
"""The ledger entry a line of each type settles (adjustments and payouts settle none)."""
LINE_OF_ENTRY_KIND = {kind: line for line, kind in ENTRY_KIND_OF_LINE.items()}


@dataclass(frozen=True, slots=True)
class SettlementLine:
    line_number: int
    """The line of the file (the header is line 1)."""
    provider_reference: str
    type: LineType
    gross_micros: int
    fee_micros: int
    net_micros: int
    currency: str
    settled_at: datetime


@dataclass(frozen=True, slots=True)
class ParsedReport:
    report_id: str
    provider: str
    lines: tuple[SettlementLine, ...]
    digest: str
    """SHA-256 of the lines as read: the same report in another layout (CRLF, quotes, trailing
    zeros) has the same digest."""
    period_start: datetime
    period_end: datetime
    """The UTC days the lines' settlement times span, ``[start, end)``: the ledger items of
    this provider and these currencies posted in it are expected in a report."""

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(sorted({line.currency for line in self.lines}))


def _malformed(message: str, line: int, field: str | None = None) -> MalformedReport:
    return MalformedReport(f"Line {line}: {message}", field=field, line=line)


def _cash(text: str, currency: str, line: int, field: str) -> int:
    """A decimal amount in the currency's unit, in micro-units, whole minor units only."""
    try:
        micros = parse_decimal_amount(text, currency, field=field)
        micros_to_minor_exact(micros, currency)
    except LedgerError as error:
        raise _malformed(f"{field} {text!r}: {error.message}", line, field) from None
    return micros


def _instant(text: str, line: int) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _malformed(
            f"settled_at {text!r} is not an ISO 8601 instant", line, "settled_at"
        ) from None
    if value.tzinfo is None:
        raise _malformed(f"settled_at {text!r} has no time zone", line, "settled_at")
    return value.astimezone(UTC)


def check_signs(kind: LineType, gross: int, fee: int, net: int) -> str | None:
    """What is wrong with a line's amounts for its type, if anything."""
    if net != gross - fee:
        return "net is not gross less fee"
    if kind is LineType.CHARGE and gross <= 0:
        return "a charge has a positive gross"
    if kind in (LineType.REFUND, LineType.DISPUTE) and gross >= 0:
        return f"a {kind} has a negative gross"
    if kind is LineType.DISPUTE_FEE and (gross != 0 or fee <= 0):
        return "a dispute fee has a zero gross and a positive fee"
    if kind is LineType.PAYOUT and (gross >= 0 or fee != 0):
        return "a payout has a negative gross and no fee"
    if kind is LineType.CREATOR_PAYOUT and (gross >= 0 or fee != 0):
        return "a creator payout has a negative gross and no fee"
    if kind is LineType.ADJUSTMENT and net == 0:
        return "an adjustment moves a non-zero net"
    return None


def check_source(provider: str, kind: LineType) -> str | None:
    """What is wrong with a line of this type in this source's report, if anything: the bank
    confirms creator payouts only, and only the bank does."""
    if (provider == BANK) != (kind is LineType.CREATOR_PAYOUT):
        return f"a {provider} report has no {kind} lines"
    return None


def parse_line(row: dict[str, str], line: int) -> SettlementLine:
    reference = row["provider_reference"].strip()
    if not 1 <= len(reference) <= MAX_REFERENCE:
        raise _malformed(
            f"provider_reference is 1-{MAX_REFERENCE} characters", line, "provider_reference"
        )
    try:
        kind = LineType(row["type"].strip().lower())
    except ValueError:
        names = ", ".join(t.value for t in LineType)
        raise _malformed(f"type {row['type']!r} is not one of {names}", line, "type") from None
    currency = row["currency"].strip().upper()
    try:
        fiat(currency)
    except LedgerError:
        raise _malformed(
            f"currency {row['currency']!r} is not a currency", line, "currency"
        ) from None
    gross, fee, net = (_cash(row[f], currency, line, f) for f in ("gross", "fee", "net"))
    wrong = check_signs(kind, gross, fee, net)
    if wrong:
        raise _malformed(wrong, line, "net")
    return SettlementLine(
        line, reference, kind, gross, fee, net, currency, _instant(row["settled_at"], line)
    )


def _rows(text: str) -> Iterable[tuple[int, dict[str, str]]]:
    """Each data row with its line number; the header must be exactly ``COLUMNS``."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise _malformed("the report is empty: it starts with a header", 1) from None
    if tuple(h.strip().lower() for h in header) != COLUMNS:
        raise _malformed(f"the header is {','.join(COLUMNS)}", 1)
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(COLUMNS):
                raise _malformed(f"{len(row)} columns, not {len(COLUMNS)}", line)
            yield line, dict(zip(COLUMNS, row, strict=True))
    except csv.Error as error:
        raise _malformed(f"not CSV: {error}", reader.line_num) from None


def parse_report(text: str) -> ParsedReport:
    """Read a whole report, or refuse it at its first malformed line (naming the line): every
    line has the same report id and provider, and amounts that add up for its type."""
    if len(text.encode()) > MAX_REPORT_BYTES:
        raise MalformedReport(f"A report is at most {MAX_REPORT_BYTES} bytes", field="file")
    report_id = provider = ""
    lines: list[SettlementLine] = []
    for line, row in _rows(text):
        if len(lines) == MAX_LINES:
            raise _malformed(f"a report has at most {MAX_LINES} lines", line)
        this_id, this_provider = row["report_id"].strip(), row["provider"].strip().lower()
        if not lines:
            if not 1 <= len(this_id) <= MAX_REPORT_ID:
                raise _malformed(f"report_id is 1-{MAX_REPORT_ID} characters", line, "report_id")
            if this_provider not in SOURCES:
                names = ", ".join(SOURCES)
                raise _malformed(
                    f"provider {this_provider!r} is not one of {names}", line, "provider"
                )
            report_id, provider = this_id, this_provider
        elif (this_id, this_provider) != (report_id, provider):
            raise _malformed(
                f"every line is of report {report_id} of {provider}", line, "report_id"
            )
        parsed = parse_line(row, line)
        wrong = check_source(provider, parsed.type)
        if wrong:
            raise _malformed(wrong, line, "type")
        lines.append(parsed)
    if not lines:
        raise _malformed("the report has no lines", 2)
    return ParsedReport(
        report_id,
        provider,
        tuple(lines),
        report_digest(report_id, provider, lines),
        *report_period(lines),
    )


def report_digest(report_id: str, provider: str, lines: Sequence[SettlementLine]) -> str:
    canonical = "\n".join(
        [f"{report_id}|{provider}"]
        + [
            f"{x.provider_reference}|{x.type}|{x.gross_micros}|{x.fee_micros}|{x.net_micros}"
            f"|{x.currency}|{x.settled_at.isoformat()}"
            for x in lines
        ]
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def report_period(lines: Sequence[SettlementLine]) -> tuple[datetime, datetime]:
    first = min(line.settled_at for line in lines).date()
    last = max(line.settled_at for line in lines).date()
    start = datetime.combine(first, time(), tzinfo=UTC)
    return start, datetime.combine(last, time(), tzinfo=UTC) + timedelta(days=1)


# --- reconciling ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerItem:
    """What one ledger entry put into a provider's clearing account in one currency."""

    entry_id: int
    kind: str
    clearing_micros: int
    """Debit-positive: what the entry added to what the provider owes us."""
    fee_micros: int
    """The fee the ledger expected the provider to take (a purchase's, a dispute's)."""

    @property
    def gross_micros(self) -> int:
        return self.clearing_micros + self.fee_micros


@dataclass(frozen=True, slots=True)
class Reconciled:
    status: LineStatus
    difference_micros: int
    """What clearing holds for this line that the provider will not pay (negative: paid
    without the ledger knowing): posted to the fee expense when matched."""


def reconcile(line: SettlementLine, item: LedgerItem | None) -> Reconciled:
    """Matched when the provider's gross is the ledger's (the fee may differ: that is the fee
    difference); otherwise an amount mismatch, or missing in the ledger when nothing in it is
    what the line settles."""
    if line.type is LineType.PAYOUT:
        return Reconciled(LineStatus.BANK_TRANSFER, 0)
    if item is None:
        return Reconciled(LineStatus.MISSING_IN_LEDGER, -line.net_micros)
    difference = item.clearing_micros - line.net_micros
    if line.gross_micros == item.gross_micros:
        return Reconciled(LineStatus.MATCHED, difference)
    return Reconciled(LineStatus.AMOUNT_MISMATCH, difference)


def source_account(provider: str, currency: str) -> AccountSpec:
    """What a report's lines move: the provider's clearing account, or the bank's."""
    return chart.bank(currency) if provider == BANK else chart.provider_clearing(provider, currency)


def fee_account(provider: str, line_type: str, currency: str) -> AccountSpec:
    """Where a fee difference (or a written-off difference) is an expense: dispute fees for a
    dispute fee's, the provider's processing or app-store fees for any other."""
    if line_type == LineType.DISPUTE_FEE:
        return chart.dispute_fees(currency)
    return chart.fee_expense(provider, currency)


@dataclass(frozen=True, slots=True)
class PostedLine:
    """A line as the settlement entry posts it."""

    type: str
    status: LineStatus
    currency: str
    net_micros: int
    difference_micros: int


def settlement_postings(provider: str, lines: Iterable[PostedLine]) -> tuple[Posting, ...]:
    """A payout line's cash from clearing to the bank; a matched line's fee difference from
    clearing to the fee expense; one posting per account."""
    postings: list[Posting] = []
    for line in lines:
        clearing = source_account(provider, line.currency)
        if line.status is LineStatus.BANK_TRANSFER:
            postings += [
                Posting(chart.bank(line.currency), -line.net_micros),
                Posting(clearing, line.net_micros),
            ]
        elif line.status is LineStatus.MATCHED and line.difference_micros:
            postings += [
                Posting(fee_account(provider, line.type, line.currency), line.difference_micros),
                Posting(clearing, -line.difference_micros),
            ]
    return merge_postings(postings)


def settlement_entry(report: ParsedReport, postings: tuple[Posting, ...], *, actor: str) -> Entry:
    """The one entry of a report, keyed by the provider's report id: a report posts once."""
    return Entry(
        kind=EntryKind.SETTLEMENT,
        event_key=f"settlement:{report.provider}:{report.report_id}",
        postings=postings,
        actor=actor,
        refs={"provider": report.provider, "report_id": report.report_id},
        memo=f"settlement report {report.report_id} of {report.provider}",
    )


def write_off_entry(
    exception_id: int,
    *,
    provider: str,
    line_type: str,
    currency: str,
    difference_micros: int,
    actor: str,
    reason: str,
) -> Entry:
    """A reconciliation exception's difference written off: out of clearing, into the fee
    expense."""
    return Entry(
        kind=EntryKind.SETTLEMENT_WRITE_OFF,
        event_key=f"settlement_exception:{exception_id}:write_off",
        postings=(
            Posting(fee_account(provider, line_type, currency), difference_micros),
            Posting(chart.provider_clearing(provider, currency), -difference_micros),
        ),
        actor=actor,
        refs={"settlement_exception_id": exception_id, "provider": provider},
        memo=reason,
    )
