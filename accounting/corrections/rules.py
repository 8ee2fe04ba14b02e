"""What a correction may do, as pure functions over plain values: which entries finance may
reverse (and, for the others, the flow's own correction), how an adjustment's amounts are read,
which accounts it may move, and the adjusting entry a proposal posts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from accounting.corrections.errors import (
    AccountOwnedByFlow,
    EntryNotReversible,
    EntryOwnedByFlow,
)
from accounting.ledger.chart import AccountSpec
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.errors import InvalidAmount
from accounting.ledger.money import (
    CommodityKind,
    commodity,
    format_micros,
    parse_decimal_amount,
)

REVERSIBLE = frozenset({EntryKind.TRANSFER, EntryKind.ADJUSTMENT})
"""What finance may reverse: plain transfers and manual adjustments. Every other entry belongs
to a flow whose own records would no longer agree with the books."""

OWNED_BY_FLOW: Mapping[EntryKind, tuple[str, str]] = {
    EntryKind.PURCHASE: ("purchases", "refund the purchase (refundPurchase)"),
    EntryKind.GIFT: ("gifts", "a gift is final; propose an adjusting entry if it was wrong"),
    EntryKind.FEATURE: ("gifts", "an unlock is final; propose an adjusting entry if it was wrong"),
    EntryKind.HOLD_RELEASE: ("gifts", "a hold release follows its gift; it is not undone alone"),
    EntryKind.PAYOUT: ("payouts", "reject the payout, or mark it failed if it was sent"),
    EntryKind.REFUND: ("refunds", "a refund is final; propose an adjusting entry if it was wrong"),
    EntryKind.CHARGEBACK: ("chargebacks", "the provider's dispute outcome settles a chargeback"),
    EntryKind.CHARGEBACK_WON: ("chargebacks", "the provider's dispute outcome settles it"),
    EntryKind.DISPUTE_FEE: ("chargebacks", "the provider's dispute outcome settles it"),
    EntryKind.SETTLEMENT: ("settlement", "a settlement report is final; resolve its exceptions"),
    EntryKind.SETTLEMENT_WRITE_OFF: ("settlement", "a write-off is final; propose an adjustment"),
    EntryKind.BREAKAGE: ("breakage", "breakage is final; propose an adjusting entry if wrong"),
    EntryKind.RECEIVABLE_WRITE_OFF: (
        "chargebacks",
        "a write-off is final; propose an adjusting entry if the user paid after all",
    ),
}
"""Each flow-owned kind: the flow, and the correction that is the flow's own."""

FLOW_RECONCILED_ACCOUNTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^creator:.*:diamonds:reserved$"), "payouts"),
    (re.compile(r"^platform:payouts_in_transit:.*$"), "payouts"),
)
"""Accounts a flow keeps equal to its records (its integrity checks say so): an adjustment
moving them would make the books disagree with the flow, so only the flow moves them."""


def check_reversible(entry_id: int, kind: str) -> None:
    """Refuse a reversal finance may not make, naming the flow's own correction."""
    entry_kind = EntryKind(kind)
    if entry_kind in REVERSIBLE:
        return
    if entry_kind is EntryKind.REVERSAL:
        raise EntryNotReversible(
            f"Entry {entry_id} is a reversal: propose an adjusting entry instead",
            field="entryId",
            entry_id=entry_id,
        )
    flow, correction = OWNED_BY_FLOW[entry_kind]
    raise EntryOwnedByFlow(
        f"Entry {entry_id} is a {kind} entry of the {flow} flow: {correction}",
        field="entryId",
        entry_id=entry_id,
        flow=flow,
    )


def parse_amount(text: str, commodity_code: str, *, field: str) -> int:
    """A decimal string in the commodity's unit, as its smallest unit: whole coins or diamonds,
    or micro-units of a currency (``"-4.99"`` USD is -4,990,000). Never zero."""
    kind = commodity(commodity_code).kind
    if kind is CommodityKind.VIRTUAL:
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            raise InvalidAmount(f"{text!r} is not a decimal amount", field=field) from None
        if not value.is_finite() or value != value.to_integral_value():
            raise InvalidAmount(f"{commodity_code} moves in whole units, not {text!r}", field=field)
        if value.adjusted() > 15:
            raise InvalidAmount(f"{text!r} is too large", field=field)
        amount = int(value)
    else:
        amount = parse_decimal_amount(text, commodity_code, field=field)
    if amount == 0:
        raise InvalidAmount("A posting moves a non-zero amount", field=field)
    return amount


def format_amount(amount: int, commodity_code: str) -> str:
    """An amount in the smallest unit as a decimal string in the commodity's unit: what
    :func:`parse_amount` reads back."""
    if commodity(commodity_code).kind is CommodityKind.VIRTUAL:
        return str(amount)
    return format_micros(amount, commodity_code)


def check_adjustable(code: str, *, field: str) -> None:
    for pattern, flow in FLOW_RECONCILED_ACCOUNTS:
        if pattern.match(code):
            raise AccountOwnedByFlow(
                f"Account {code} is kept by the {flow} flow: only its own actions move it",
                field=field,
                account=code,
            )


@dataclass(frozen=True, slots=True)
class ProposedPosting:
    account: AccountSpec
    amount: int

    def stored(self) -> dict[str, Any]:
        return {
            "account": self.account.code,
            "commodity": self.account.commodity,
            "amount": self.amount,
        }


def adjustment_entry(
    proposal_id: int,
    postings: Iterable[ProposedPosting],
    *,
    approver: str,
    proposer: str,
    reason: str,
    memo: str,
) -> Entry:
    """The adjusting entry of proposal ``proposal_id``: exactly its postings, posted by who
    approved it, referring to the proposal and who proposed it."""
    return Entry(
        kind=EntryKind.ADJUSTMENT,
        event_key=f"adjustment:{proposal_id}",
        postings=tuple(Posting(p.account, p.amount) for p in postings),
        actor=approver,
        refs={"proposal_id": proposal_id, "proposed_by": proposer},
        memo=memo or reason,
    )
