"""A creator's TOTP second factor (RFC 6238): enrolled with a secret the creator's
authenticator app reads from a provisioning URI, confirmed with a first code, then asked for
on every payout request."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.chart import check_user_id
from accounting.ledger.posting import in_transaction
from accounting.payouts.errors import InvalidTotpCode, TotpAlreadyConfirmed, TotpNotEnrolled
from accounting.payouts.tables import CreatorTotpRow

ISSUER = "Coinbooks"
VALID_WINDOW = 1
"""Codes of the previous and the next 30-second step are accepted too (clock drift)."""
_CODE = re.compile(r"^[0-9]{6}$")


def code_is_valid(secret: str, code: str) -> bool:
    return bool(_CODE.fullmatch(code)) and pyotp.TOTP(secret).verify(
        code, valid_window=VALID_WINDOW
    )


async def start_enrolment(sessions: async_sessionmaker[AsyncSession], creator_id: str) -> str:
    """Enrol a new secret (:func:`enrol`), in a transaction of its own."""
    return await in_transaction(sessions, lambda session: enrol(session, creator_id))


async def confirm_enrolment(
    sessions: async_sessionmaker[AsyncSession], creator_id: str, code: str
) -> CreatorTotpRow:
    """Confirm the enrolled secret (:func:`confirm`), in a transaction of its own."""
    return await in_transaction(sessions, lambda session: confirm(session, creator_id, code))


async def enrol(session: AsyncSession, creator_id: str) -> str:
    """A new secret for the creator; the provisioning URI to show as a QR code. Enrolling
    again before confirming replaces the secret; a confirmed factor cannot be replaced."""
    check_user_id(creator_id, field="creatorId")
    existing = await session.get(CreatorTotpRow, creator_id, with_for_update=True)
    if existing is not None and existing.confirmed_at is not None:
        raise TotpAlreadyConfirmed(
            "A confirmed second factor is already enrolled", creator_id=creator_id
        )
    secret = pyotp.random_base32()
    statement = pg_insert(CreatorTotpRow).values(creator_id=creator_id, secret=secret)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["creator_id"],
            set_={"secret": statement.excluded.secret, "enrolled_at": func.now()},
        )
    )
    return pyotp.TOTP(secret).provisioning_uri(name=creator_id, issuer_name=ISSUER)


async def confirm(session: AsyncSession, creator_id: str, code: str) -> CreatorTotpRow:
    """Confirm the enrolled secret with a code from the app: from now on payouts need one."""
    row = await session.get(CreatorTotpRow, creator_id, with_for_update=True)
    if row is None:
        raise TotpNotEnrolled("Enrol a second factor first", field="totpCode")
    if row.confirmed_at is not None:
        raise TotpAlreadyConfirmed("The second factor is already confirmed", field="totpCode")
    if not code_is_valid(row.secret, code):
        raise InvalidTotpCode("That code is not the current one", field="totpCode")
    row.confirmed_at = await session.scalar(select(func.now()))
    await session.flush()
    return row


async def check_code(session: AsyncSession, creator_id: str, code: str) -> None:
    """Refuse unless the creator has a confirmed second factor and ``code`` is current."""
    row = await session.get(CreatorTotpRow, creator_id)
    if row is None or row.confirmed_at is None:
        raise TotpNotEnrolled(
            "Enrol and confirm a second factor before requesting a payout", field="totpCode"
        )
    if not code_is_valid(row.secret, code):
        raise InvalidTotpCode("That code is not the current one", field="totpCode")


async def is_confirmed(session: AsyncSession, creator_id: str) -> bool:
    row = await session.get(CreatorTotpRow, creator_id)
    return row is not None and row.confirmed_at is not None
