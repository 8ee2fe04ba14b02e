"""A sandbox payment provider that behaves like a real one, for development and tests.

It keeps its own records (table ``sandbox_payment``) in its own transactions, as a remote
provider would. Test payment tokens decide what happens:

| token | the provider | the caller hears |
|---|---|---|
| ``tok_success`` (or any ``tok_success_*``) | charges | succeeded |
| ``tok_declined`` | declines: card_declined | declined |
| ``tok_insufficient_funds`` | declines: insufficient_funds | declined |
| ``tok_expired_card`` | declines: expired_card | declined |
| ``tok_timeout`` | charges | nothing (timeout); a lookup says succeeded |
| ``tok_timeout_declined`` | declines | nothing (timeout); a lookup says declined |
| ``tok_timeout_lost`` | never hears of it | nothing (timeout); a lookup finds nothing |
| anything else | declines: invalid_token | declined |
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.purchases.payments import ChargeOutcome, ChargeResult
from accounting.purchases.tables import SandboxPaymentRow

_DECLINES = {
    "tok_declined": "card_declined",
    "tok_insufficient_funds": "insufficient_funds",
    "tok_expired_card": "expired_card",
}


class SandboxGateway:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def charge(
        self,
        *,
        provider: str,
        merchant_reference: str,
        payment_token: str,
        amount_minor: int,
        currency: str,
    ) -> ChargeResult:
        if payment_token == "tok_timeout_lost":
            return ChargeResult(ChargeOutcome.UNKNOWN, message="The provider did not answer")
        charged = payment_token.startswith("tok_success_")
        if charged or payment_token in ("tok_success", "tok_timeout"):
            status, decline = "succeeded", None
        elif payment_token == "tok_timeout_declined":
            status, decline = "declined", "card_declined"
        else:
            status, decline = "declined", _DECLINES.get(payment_token, "invalid_token")
        # One transaction, as one call to a provider: the charge recorded (once per merchant
        # reference) and its answer read back; a repeated charge answers the first one's.
        async with self._sessions() as session, session.begin():
            row = await session.scalar(
                pg_insert(SandboxPaymentRow)
                .values(
                    reference=f"sbx_{provider}_{secrets.token_hex(8)}",
                    provider=provider,
                    merchant_reference=merchant_reference,
                    payment_token=payment_token,
                    currency=currency,
                    amount_minor=amount_minor,
                    status=status,
                    decline_reason=decline,
                )
                .on_conflict_do_nothing(index_elements=["provider", "merchant_reference"])
                .returning(SandboxPaymentRow)
            )
            if row is None:
                row = await self._find(session, provider, merchant_reference)
        if payment_token.startswith("tok_timeout"):
            return ChargeResult(ChargeOutcome.UNKNOWN, message="The provider did not answer")
        return _answer(row)

    async def lookup(self, *, provider: str, merchant_reference: str) -> ChargeResult:
        async with self._sessions() as session:
            return _answer(await self._find(session, provider, merchant_reference))

    @staticmethod
    async def _find(
        session: AsyncSession, provider: str, merchant_reference: str
    ) -> SandboxPaymentRow | None:
        row: SandboxPaymentRow | None = await session.scalar(
            select(SandboxPaymentRow).where(
                SandboxPaymentRow.provider == provider,
                SandboxPaymentRow.merchant_reference == merchant_reference,
            )
        )
        return row


def _answer(row: SandboxPaymentRow | None) -> ChargeResult:
    """What the provider says of a charge, as it recorded it (None: no record)."""
    if row is None:
        return ChargeResult(ChargeOutcome.NOT_FOUND, message="No such charge")
    if row.status == "succeeded":
        return ChargeResult(ChargeOutcome.SUCCEEDED, reference=row.reference)
    return ChargeResult(
        ChargeOutcome.DECLINED,
        reference=row.reference,
        decline_code=row.decline_reason,
        message=f"The payment was declined ({row.decline_reason})",
    )
