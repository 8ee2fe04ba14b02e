"""Importing settlement reports against the books, on the real PostgreSQL: what an import posts
(each payout's cash from clearing to the bank, each matched line's fee difference to the fee
expense), what it reconciles (every kind of exception, stored until finance resolves it, with
an action and a reason, audited), and that it happens once: the same report again is the first
import, other content under its id is refused, a malformed line changes nothing, and the same
import racing itself imports once. Every figure is worked out in the test's text.

Card fees the ledger expects (accounting/purchases/fees.py): 2.9% of the price, rounded half up
to the cent, plus $0.30. For $4.99: 2.9% x 499 = 14.471 -> 14 cents, + 30 = 44 cents, so a
$4.99 card purchase leaves 4.99 - 0.44 = $4.55 in ``platform:clearing:card:USD``."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting import integrity
from accounting.chargebacks.rules import LossPolicy
from accounting.chargebacks.service import ChargebackClaim, ChargebackKind, charge_back
from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.errors import InvalidReason, LedgerError
from accounting.ledger.posting import in_transaction, post_entry
from accounting.ledger.tables import JournalEntryRow
from accounting.payouts.rules import PayoutPhase
from accounting.policy.tables import AuditRow
from accounting.purchases.service import PurchaseService
from accounting.refunds.service import RefundPolicy, RefundRequest, refund_purchase
from accounting.settlement import reads, service
from accounting.settlement.errors import (
    ExceptionNotFound,
    ExceptionResolved,
    InvalidResolution,
    MalformedReport,
    ReportIdReused,
)
from accounting.settlement.service import ImportRequest, ImportResult, ResolutionRequest
from accounting.settlement.tables import ReconciliationExceptionRow
from tests.conftest import race
from tests.payouts.support import advance, earn, make_ready, payout_service
from tests.settlement.support import FINANCE, balance, buy, check_books, counts, report

CLEARING = chart.provider_clearing("card", "USD").code
FEES = chart.fee_expense("card", "USD").code
BANK = chart.bank("USD").code


async def settle(sessions: async_sessionmaker[AsyncSession], text: str) -> ImportResult:
    return await service.import_report(sessions, ImportRequest(text, FINANCE))


def resolution(
    exception_id: int, action: str, key: str, reason: str = "checked"
) -> ResolutionRequest:
    return ResolutionRequest(exception_id, action, reason, FINANCE, key)


async def test_a_matched_charge_books_the_fee_difference_and_the_payout_reaches_the_bank(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Ana buys 350 coins for $4.99 by card: clearing 4.55, fees 0.44. The card provider's
    report says it kept 45 cents (net 4.54) and paid 4.54 to the bank. The import posts the
    cent the provider took beyond the 44 the ledger expected to fees (0.45 in all) and the 4.54
    to the bank; clearing is 4.55 - 0.01 - 4.54 = 0."""
    ana = await buy(purchases, "ana", "coins_350")
    assert (await balance(sessions, CLEARING), await balance(sessions, FEES)) == (
        4_550_000,
        440_000,
    )

    done = await settle(
        sessions,
        report(
            "card-day-1",
            "card",
            (ana.reference, "charge", "4.99", "0.45", "4.54", "USD"),
            ("po_1", "payout", "-4.54", "0.00", "-4.54", "USD"),
        ),
    )

    assert not done.replayed
    assert [(x.status, x.difference_micros) for x in done.lines] == [
        ("matched", 10_000),
        ("bank_transfer", 0),
    ]
    assert (done.lines[0].expected_gross_micros, done.lines[0].expected_fee_micros) == (
        4_990_000,
        440_000,
    )
    assert done.exceptions == []
    assert await balance(sessions, CLEARING) == 0
    assert await balance(sessions, FEES) == 450_000
    assert await balance(sessions, BANK) == 4_540_000
    async with sessions() as session:
        entry = await session.get(JournalEntryRow, done.report.entry_id)
    assert entry is not None
    assert (entry.kind, entry.event_key) == ("settlement", "settlement:card:card-day-1")
    await check_books(sessions)


async def test_the_same_report_again_is_the_first_import_and_other_content_is_refused(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """The report of Ana's $4.99 charge (net 4.55, all paid out) imports once: sent again, even
    with Windows line ends, it is the first import and posts nothing more (the bank holds 4.55,
    not 9.10); the same id with a payout of 4.50 is refused and changes nothing."""
    ana = await buy(purchases, "ana", "coins_350")
    text = report(
        "card-day-2",
        "card",
        (ana.reference, "charge", "4.99", "0.44", "4.55", "USD"),
        ("po_2", "payout", "-4.55", "0.00", "-4.55", "USD"),
    )
    first = await settle(sessions, text)
    again = await settle(sessions, text.replace("\n", "\r\n"))

    assert again.replayed and not first.replayed
    assert (again.report.id, again.report.entry_id) == (first.report.id, first.report.entry_id)
    assert [x.id for x in again.lines] == [x.id for x in first.lines]
    assert await counts(sessions) == (1, 2, 0)
    assert await balance(sessions, BANK) == 4_550_000

    with pytest.raises(ReportIdReused) as refused:
        await settle(sessions, text.replace("-4.55,0.00,-4.55", "-4.50,0.00,-4.50"))
    assert refused.value.code == "SETTLEMENT_REPORT_ID_REUSED"
    assert await counts(sessions) == (1, 2, 0)
    assert await balance(sessions, BANK) == 4_550_000
    await check_books(sessions)


async def test_a_malformed_line_refuses_the_whole_report_and_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Line 2 (Ana's charge) is fine, line 3 (a payout with a fee) is not: nothing is imported,
    posted or raised, and clearing still holds Ana's 4.55. Corrected, the report imports."""
    ana = await buy(purchases, "ana", "coins_350")
    charge = (ana.reference, "charge", "4.99", "0.44", "4.55", "USD")
    with pytest.raises(MalformedReport) as refused:
        await settle(
            sessions,
            report(
                "card-day-3", "card", charge, ("po_3", "payout", "-4.55", "0.10", "-4.65", "USD")
            ),
        )
    assert refused.value.facts["line"] == 3
    assert refused.value.message.startswith("Line 3: ")
    assert await counts(sessions) == (0, 0, 0)
    assert (await balance(sessions, CLEARING), await balance(sessions, BANK)) == (4_550_000, 0)

    done = await settle(
        sessions,
        report("card-day-3", "card", charge, ("po_3", "payout", "-4.55", "0.00", "-4.55", "USD")),
    )
    assert [x.status for x in done.lines] == ["matched", "bank_transfer"]
    assert (await balance(sessions, CLEARING), await balance(sessions, BANK)) == (0, 4_550_000)


async def four_exceptions(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> dict[str, ReconciliationExceptionRow]:
    """Ana and Bo each buy 350 coins for $4.99 by card (clearing 4.55 + 4.55 = 9.10). The
    report says Ana was charged $5.49 (fee 0.44, net 5.05); charges ch_nowhere $1.00 (fee 0.33,
    net 0.67), which the ledger never booked; credits an adjustment of 0.10; leaves Bo out; and
    pays 5.05 + 0.67 + 0.10 = 5.82 to the bank. The exceptions, by reference."""
    ana = await buy(purchases, "ana", "coins_350")
    bo = await buy(purchases, "bo", "coins_350")
    done = await settle(
        sessions,
        report(
            "card-day-4",
            "card",
            (ana.reference, "charge", "5.49", "0.44", "5.05", "USD"),
            ("ch_nowhere", "charge", "1.00", "0.33", "0.67", "USD"),
            ("adj_1", "adjustment", "0.00", "-0.10", "0.10", "USD"),
            ("po_4", "payout", "-5.82", "0.00", "-5.82", "USD"),
        ),
    )
    found = {x.provider_reference or "": x for x in done.exceptions}
    assert set(found) == {ana.reference, bo.reference, "ch_nowhere", "adj_1"}
    found["ana"], found["bo"] = found.pop(ana.reference), found.pop(bo.reference)
    return found


async def test_every_kind_of_exception_is_stored_with_what_clearing_keeps_for_it(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Ana's charge is an amount mismatch (gross 5.49, not 4.99): nothing is posted for it and
    clearing keeps 4.55 - 5.05 = -0.50. ch_nowhere is missing in the ledger: the provider paid
    0.67 the ledger never booked (-0.67); so is the adjustment (-0.10). Bo's charge is missing in
    the report: clearing keeps its 4.55. Clearing is 9.10 - 5.82 = 3.28, exactly the sum of the
    exceptions: -0.50 - 0.67 - 0.10 + 4.55 = 3.28."""
    found = await four_exceptions(sessions, purchases)
    assert {ref: (x.kind, x.line_type, x.difference_micros) for ref, x in found.items()} == {
        "ana": ("amount_mismatch", "charge", -500_000),
        "ch_nowhere": ("missing_in_ledger", "charge", -670_000),
        "adj_1": ("missing_in_ledger", "adjustment", -100_000),
        "bo": ("missing_in_report", "charge", 4_550_000),
    }
    assert all(x.status == "open" for x in found.values())
    assert found["bo"].line_id is None and found["ana"].ledger_entry_id is not None
    assert await balance(sessions, CLEARING) == 3_280_000
    assert await balance(sessions, BANK) == 5_820_000
    assert await balance(sessions, FEES) == 880_000  # no fee difference for a line not matched

    async with sessions() as session:
        page = await service.reconciliation_exceptions(session)
        assert await reads.open_exception_count(session) == 4
    assert {x.id for x in page.items} == {x.id for x in found.values()}
    await check_books(sessions)


async def test_finance_resolves_each_exception_with_an_action_and_a_reason_audited(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Finance writes Ana's mismatch off: the 0.50 the provider paid beyond the ledger leaves
    fees (0.88 - 0.50 = 0.38) and clearing goes 3.28 + 0.50 = 3.78. It accepts the adjustment
    (nothing posted). Both are audited with their reasons; the two others stay open."""
    found = await four_exceptions(sessions, purchases)
    written = await service.resolve_exception(
        sessions, resolution(found["ana"].id, "write_off", "settle-res-0001", "old price charged")
    )
    assert (written.exception.status, written.exception.action) == ("resolved", "write_off")
    assert written.exception.resolution_entry_id is not None
    assert await balance(sessions, CLEARING) == 3_780_000
    assert await balance(sessions, FEES) == 380_000

    accepted = await service.resolve_exception(
        sessions, resolution(found["adj_1"].id, "accept", "settle-res-0002", "November credit")
    )
    assert (accepted.exception.action, accepted.exception.resolution_entry_id) == ("accept", None)
    assert await balance(sessions, CLEARING) == 3_780_000

    replayed = await service.resolve_exception(
        sessions, resolution(found["ana"].id, "write_off", "settle-res-0001", "old price charged")
    )
    assert replayed.replayed
    assert replayed.exception.resolution_entry_id == written.exception.resolution_entry_id
    assert await balance(sessions, FEES) == 380_000

    refusals: list[tuple[ResolutionRequest, type[LedgerError], str | None]] = [
        (
            resolution(found["ana"].id, "accept", "settle-res-0003"),
            ExceptionResolved,
            "exceptionId",
        ),
        (
            resolution(found["bo"].id, "settled_later", "settle-res-0004"),
            InvalidResolution,
            "action",
        ),
        (resolution(found["bo"].id, "accept", "settle-res-0005", " "), InvalidReason, "reason"),
        (resolution(999_999, "accept", "settle-res-0006"), ExceptionNotFound, "exceptionId"),
    ]
    for request, error, field in refusals:
        with pytest.raises(error) as refused:
            await service.resolve_exception(sessions, request)
        assert refused.value.field == field

    async with sessions() as session:
        audited = list(
            await session.scalars(
                select(AuditRow)
                .where(AuditRow.action == "reconciliation_exception.resolved")
                .order_by(AuditRow.id)
            )
        )
        assert await reads.open_exception_count(session) == 2
    assert [(a.actor, a.subject, a.reason, a.details["action"]) for a in audited] == [
        (FINANCE, f"reconciliation_exception:{found['ana'].id}", "old price charged", "write_off"),
        (FINANCE, f"reconciliation_exception:{found['adj_1'].id}", "November credit", "accept"),
    ]
    await check_books(sessions)


async def test_a_later_report_settles_what_an_earlier_one_left_out(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Report 5 settles Ana's charge and leaves Bo's out (missing in report, 4.55). Report 6
    settles Bo's: the exception is resolved as settled later, and clearing is 0."""
    ana = await buy(purchases, "ana", "coins_350")
    bo = await buy(purchases, "bo", "coins_350")
    first = await settle(
        sessions,
        report("card-day-5", "card", (ana.reference, "charge", "4.99", "0.44", "4.55", "USD")),
    )
    [missing] = first.exceptions
    assert (missing.kind, missing.provider_reference) == ("missing_in_report", bo.reference)

    second = await settle(
        sessions,
        report("card-day-6", "card", (bo.reference, "charge", "4.99", "0.44", "4.55", "USD")),
    )
    assert second.exceptions == []
    async with sessions() as session:
        again = await session.get(ReconciliationExceptionRow, missing.id)
    assert again is not None
    assert (again.status, again.action) == ("resolved", "settled_later")
    assert again.reason == "settled by report card-day-6, line 2"
    assert await balance(sessions, CLEARING) == 2 * 4_550_000  # settled, not yet paid out
    await check_books(sessions)


async def test_refunds_disputes_and_dispute_fees_match_their_entries(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Cy buys 350 coins for $4.99 and is refunded: the ledger takes 4.99 back from clearing
    (the 44-cent fee stays with the provider). Dee buys the same and disputes it; the network
    takes the 4.99 back and a $15.00 fee. Clearing: 4.55 - 4.99 + 4.55 - 4.99 - 15.00 = -15.88,
    what the card provider's report takes, line for line: every line matches, nothing differs."""
    cy = await buy(purchases, "cy", "coins_350")
    await refund_purchase(
        sessions,
        RefundRequest(cy.purchase_id, "refund-cy-000001", "user:sam", "changed her mind"),
        policy=RefundPolicy(),
        functional_currency="USD",
    )
    dee = await buy(purchases, "dee", "coins_350")
    claim = ChargebackClaim(
        purchase_id=dee.purchase_id,
        kind=ChargebackKind.DISPUTE,
        case_id="dp_77",
        reason="fraudulent",
        actor="provider:card",
        fee_minor=1_500,
    )
    await in_transaction(
        sessions,
        lambda s: charge_back(
            s, claim, functional_currency="USD", loss_policy=LossPolicy.RECEIVABLE
        ),
    )
    assert await balance(sessions, CLEARING) == -15_880_000

    done = await settle(
        sessions,
        report(
            "card-day-7",
            "card",
            (cy.reference, "charge", "4.99", "0.44", "4.55", "USD"),
            (cy.reference, "refund", "-4.99", "0.00", "-4.99", "USD"),
            (dee.reference, "charge", "4.99", "0.44", "4.55", "USD"),
            (dee.reference, "dispute", "-4.99", "0.00", "-4.99", "USD"),
            ("dp_77", "dispute_fee", "0.00", "15.00", "-15.00", "USD"),
        ),
    )
    assert [(x.type, x.status, x.difference_micros) for x in done.lines] == [
        ("charge", "matched", 0),
        ("refund", "matched", 0),
        ("charge", "matched", 0),
        ("dispute", "matched", 0),
        ("dispute_fee", "matched", 0),
    ]
    assert done.exceptions == [] and done.report.entry_id is None  # nothing to post
    async with sessions() as session:
        kinds = [
            await session.scalar(
                select(JournalEntryRow.kind).where(JournalEntryRow.id == x.ledger_entry_id)
            )
            for x in done.lines
        ]
    assert kinds == ["purchase", "refund", "purchase", "chargeback", "dispute_fee"]
    await check_books(sessions)


async def test_the_same_import_racing_itself_imports_once(
    racing: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Eight finance sessions import the same report at once: one import, one entry, one
    payout of 4.55 in the bank; every caller gets that import back."""
    ana = await buy(purchases, "ana", "coins_350")
    text = report(
        "card-day-8",
        "card",
        (ana.reference, "charge", "4.99", "0.44", "4.55", "USD"),
        ("po_8", "payout", "-4.55", "0.00", "-4.55", "USD"),
    )
    results = await race([lambda: settle(racing, text)] * 8)
    imported = [r for r in results if isinstance(r, ImportResult)]
    assert len(imported) == 8
    assert len({r.report.id for r in imported}) == 1
    assert sum(not r.replayed for r in imported) == 1
    assert await counts(racing) == (1, 2, 0)
    assert await balance(racing, BANK) == 4_550_000
    await check_books(racing)


async def test_the_integrity_check_finds_a_settlement_entry_no_report_explains(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """A `settlement` entry posted behind the flow's back (4.55 from clearing to the bank, with
    no report) is found twice: it has no report, and no lines settle what it posts."""
    await buy(purchases, "ana", "coins_350")
    stray = Entry(
        EntryKind.SETTLEMENT,
        "settlement:card:forged",
        (
            Posting(chart.bank("USD"), 4_550_000),
            Posting(chart.provider_clearing("card", "USD"), -4_550_000),
        ),
        actor="user:mallory",
    )
    posted = await in_transaction(sessions, lambda s: post_entry(s, stray))
    async with sessions() as session, session.begin():
        found = await integrity.check_integrity(session)
    assert sorted(v.check for v in found.violations) == [
        "settlement_entry_has_its_report",
        "settlement_posts_what_its_lines_settle",
        "settlement_posts_what_its_lines_settle",
    ]
    assert any(
        f"settlement entry {posted.id} (settlement:card:forged)" in v.detail
        for v in found.violations
    )


async def test_the_banks_confirmations_reconcile_against_the_payouts_it_paid(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Bo earns 6,000 diamonds (six Galaxies) and is paid out three times 2,000 diamonds, $10.00
    each: payout A only sent, B and C paid (each $10.00 from in transit to the bank). The bank
    confirms A (not paid in the ledger: missing in ledger, -10.00 kept), B at $10.50 (amount
    mismatch: the ledger's -10.00 less the bank's -10.50 = 0.50) and leaves C out (missing in the
    report: the -10.00 its paid entry took from the bank). Nothing is posted; a bank exception is
    accepted, never written off."""
    await earn(sessions, purchases, "bo", 6, viewer="ana")
    bo = await make_ready(sessions, "bo")
    payouts = payout_service(sessions)
    ids = []
    for name, phases in (
        ("a", [PayoutPhase.SENT]),
        ("b", [PayoutPhase.SENT, PayoutPhase.PAID]),
        ("c", [PayoutPhase.SENT, PayoutPhase.PAID]),
    ):
        payout = (await payouts.request_payout(bo.request(f"bo-payout-{name}-0001", 2_000))).payout
        for phase in phases:
            await advance(payouts, payout.id, phase)
        ids.append(payout.id)
    a, b, c = ids
    bank_before = await balance(sessions, BANK)

    done = await settle(
        sessions,
        report(
            "bank-day-1",
            "bank",
            (str(a), "creator_payout", "-10.00", "0.00", "-10.00", "USD"),
            (str(b), "creator_payout", "-10.50", "0.00", "-10.50", "USD"),
        ),
    )
    assert done.report.entry_id is None
    assert await balance(sessions, BANK) == bank_before
    assert sorted((x.kind, x.provider_reference, x.difference_micros) for x in done.exceptions) == [
        ("amount_mismatch", str(b), 500_000),
        ("missing_in_ledger", str(a), 10_000_000),
        ("missing_in_report", str(c), -10_000_000),
    ]
    with pytest.raises(InvalidResolution) as refused:
        await service.resolve_exception(
            sessions, resolution(done.exceptions[0].id, "write_off", "settle-bank-0001")
        )
    assert "payout's own action" in refused.value.message
    accepted = await service.resolve_exception(
        sessions, resolution(done.exceptions[0].id, "accept", "settle-bank-0002", "sent late")
    )
    assert accepted.exception.action == "accept"
    await check_books(sessions)
