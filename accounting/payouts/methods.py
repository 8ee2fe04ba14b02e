"""Where creators' payouts go: a bank account or a PayPal address. Only a masked form and a
keyed fingerprint (HMAC, :mod:`accounting.payouts.sealing`) are kept; the full details are
handed to the payout provider, never stored here and never shown back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.chart import check_user_id
from accounting.ledger.posting import in_transaction
from accounting.payouts.errors import InvalidPayoutMethod, PayoutMethodNotFound
from accounting.payouts.sealing import PayoutKeys
from accounting.payouts.tables import PayoutMethodRow

MAX_METHODS = 20
_ACCOUNT_NUMBER = re.compile(r"^[A-Z0-9]{6,34}$")
"""A domestic account number or an IBAN, spaces and dashes removed."""
_ROUTING_NUMBER = re.compile(r"^[0-9]{6,11}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$")


class PayoutMethodKind(StrEnum):
    BANK_ACCOUNT = "bank_account"
    PAYPAL = "paypal"


@dataclass(frozen=True, slots=True)
class PayoutMethodDetails:
    """What a creator registers. ``account_number`` and ``routing_number`` for a bank
    account, ``paypal_email`` for PayPal."""

    kind: PayoutMethodKind
    holder_name: str
    account_number: str | None = None
    routing_number: str | None = None
    paypal_email: str | None = None


def check_holder(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= 100:
        raise InvalidPayoutMethod("The holder's name is 1-100 characters", field="holderName")
    return name


def masked_and_fingerprint(details: PayoutMethodDetails, keys: PayoutKeys) -> tuple[str, str]:
    """The method as it may be shown (``****6789``, ``b***@example.com``), and a keyed
    fingerprint of its normalised full details that recognises the same account registered
    again (and, without the key, tells nothing about it)."""
    if details.kind is PayoutMethodKind.BANK_ACCOUNT:
        number = re.sub(r"[\s-]", "", details.account_number or "").upper()
        routing = re.sub(r"[\s-]", "", details.routing_number or "")
        if not _ACCOUNT_NUMBER.fullmatch(number):
            raise InvalidPayoutMethod(
                "An account number is 6-34 letters and digits", field="accountNumber"
            )
        if routing and not _ROUTING_NUMBER.fullmatch(routing):
            raise InvalidPayoutMethod("A routing number is 6-11 digits", field="routingNumber")
        if details.paypal_email:
            raise InvalidPayoutMethod("A bank account has no PayPal address", field="paypalEmail")
        masked = f"****{number[-4:]}"
        canonical = f"bank_account:{routing}:{number}"
    else:
        email = (details.paypal_email or "").strip().lower()
        if not _EMAIL.fullmatch(email):
            raise InvalidPayoutMethod("That is not an e-mail address", field="paypalEmail")
        if details.account_number or details.routing_number:
            raise InvalidPayoutMethod("PayPal needs only an e-mail address", field="accountNumber")
        name, _, domain = email.partition("@")
        masked = f"{name[0]}***@{domain}"
        canonical = f"paypal:{email}"
    return masked, keys.fingerprint(canonical)


@dataclass(frozen=True, slots=True)
class CheckedMethod:
    """A payout method's details as they will be kept."""

    kind: PayoutMethodKind
    holder_name: str
    masked: str
    fingerprint: str


def check_method(details: PayoutMethodDetails, keys: PayoutKeys) -> CheckedMethod:
    holder = check_holder(details.holder_name)
    masked, fingerprint = masked_and_fingerprint(details, keys)
    return CheckedMethod(details.kind, holder, masked, fingerprint)


async def add_payout_method(
    sessions: async_sessionmaker[AsyncSession], creator_id: str, method: CheckedMethod
) -> PayoutMethodRow:
    """Register a payout method, in a transaction of its own."""
    return await in_transaction(sessions, lambda session: register(session, creator_id, method))


async def register(
    session: AsyncSession, creator_id: str, method: CheckedMethod
) -> PayoutMethodRow:
    """Register a payout method; registering the same account again returns the first (and
    its cooling-off does not start again)."""
    check_user_id(creator_id, field="creatorId")
    fingerprint = method.fingerprint
    await session.execute(
        pg_insert(PayoutMethodRow)
        .values(
            creator_id=creator_id,
            kind=str(method.kind),
            masked=method.masked,
            holder_name=method.holder_name,
            fingerprint=fingerprint,
        )
        .on_conflict_do_nothing(index_elements=["creator_id", "fingerprint"])
    )
    row = await session.scalar(
        select(PayoutMethodRow).where(
            PayoutMethodRow.creator_id == creator_id, PayoutMethodRow.fingerprint == fingerprint
        )
    )
    assert row is not None
    return row


async def methods_of(session: AsyncSession, creator_id: str) -> list[PayoutMethodRow]:
    rows = await session.scalars(
        select(PayoutMethodRow)
        .where(PayoutMethodRow.creator_id == creator_id)
        .order_by(PayoutMethodRow.id)
        .limit(MAX_METHODS)
    )
    return list(rows.all())


async def method_of(session: AsyncSession, creator_id: str, method_id: int) -> PayoutMethodRow:
    """The creator's own method ``method_id``: another creator's is as good as missing."""
    row = await session.get(PayoutMethodRow, method_id)
    if row is None or row.creator_id != creator_id:
        raise PayoutMethodNotFound(f"No payout method {method_id}", field="payoutMethodId")
    return row


async def methods_by_id(session: AsyncSession, ids: set[int]) -> list[PayoutMethodRow]:
    if not ids:
        return []
    rows = await session.scalars(select(PayoutMethodRow).where(PayoutMethodRow.id.in_(ids)))
    return list(rows.all())
