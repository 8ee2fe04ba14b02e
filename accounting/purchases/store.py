"""Coins bought in an app store: the buyer paid the store, and the store's signed transaction is
the proof. It is verified (offline, by the store's :class:`TransactionVerifier`), then recorded
as a purchase under the store's transaction id and completed, exactly once per transaction.

A transaction is its buyer's: the account token signed into it must be the presenting user's
(accounting/purchases/account_tokens.py), checked before anything is looked up or written, so
that a leaked transaction buys nothing for anyone else (``PAYMENT_FOR_ANOTHER_ACCOUNT``); one
without a token is refused where tokens are required (``PAYMENT_WITHOUT_ACCOUNT_TOKEN``).

One transaction grants once. Requests presenting the same transaction queue on a lock of its id;
the first records the purchase, every later one (under any idempotency key) finds it by its
provider reference and answers with it as a replay; presented by another user (a transaction
without a token, where none is required), it is refused (``PAYMENT_ALREADY_USED``). A purchase
recorded but not yet completed (the process stopped in between) is completed when the
transaction is presented again, as the store's client does until the app finishes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import idempotency
from accounting.ledger.chart import check_user_id
from accounting.ledger.errors import IdempotencyKeyReused
from accounting.ledger.money import fiat
from accounting.ledger.posting import in_transaction
from accounting.purchases.account_tokens import AccountTokens
from accounting.purchases.errors import (
    PaymentAlreadyUsed,
    PaymentNotVerified,
    ProviderNotAvailable,
)
from accounting.purchases.payments import TransactionVerifier, VerifiedPayment
from accounting.purchases.reads import purchase_by_reference
from accounting.purchases.service import PurchaseRequest, PurchaseResult, PurchaseService
from accounting.purchases.tables import PurchaseRow

_LOCK_TRANSACTION = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


@dataclass(frozen=True, slots=True)
class StorePurchaseRequest:
    user_id: str
    idempotency_key: str
    provider: str
    signed_transaction: str


class StorePurchases:
    """Purchases proven by a store's signed transaction, one verifier per store provider."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        purchases: PurchaseService,
        verifiers: Mapping[str, TransactionVerifier],
        account_tokens: AccountTokens | None = None,
    ) -> None:
        self._sessions = sessions
        self._purchases = purchases
        self.verifiers = dict(verifiers)
        self.account_tokens = account_tokens or AccountTokens()

    async def purchase(self, request: StorePurchaseRequest) -> PurchaseResult:
        """Verify the transaction and grant its package, once per transaction."""
        check_user_id(request.user_id)
        idempotency.check_key(request.idempotency_key)
        verifier = self.verifiers.get(request.provider)
        if verifier is None:
            raise ProviderNotAvailable(
                f"The {request.provider} store is not configured on this service", field="store"
            )
        payment = verifier.verify_transaction(request.signed_transaction)
        self.account_tokens.check(payment.account_token, request.user_id)
        purchase, replayed = await in_transaction(
            self._sessions, lambda session: self._record(session, request, verifier, payment)
        )
        if purchase.status == "pending":
            purchase = await self._purchases.complete_paid(purchase.id, payment.reference)
        return PurchaseResult(purchase, replayed=replayed)

    async def _record(
        self,
        session: AsyncSession,
        request: StorePurchaseRequest,
        verifier: TransactionVerifier,
        payment: VerifiedPayment,
    ) -> tuple[PurchaseRow, bool]:
        """The purchase of this transaction: the one already recorded (True), or a new one."""
        await session.execute(
            _LOCK_TRANSACTION, {"key": f"store:{payment.provider}:{payment.reference}"}
        )
        known = await purchase_by_reference(session, payment.provider, payment.reference)
        if known is not None:
            row = await session.get(PurchaseRow, known)
            assert row is not None
            if row.user_id != request.user_id:
                raise PaymentAlreadyUsed(
                    "This transaction already granted another user's purchase",
                    field="signedTransaction",
                )
            return row, True
        currency = payment.currency or self._purchases.functional_currency
        paid = (
            None if payment.price_micros is None else _minor_units(payment.price_micros, currency)
        )
        row, replayed = await self._purchases.record_paid(
            session,
            PurchaseRequest(
                user_id=request.user_id,
                idempotency_key=request.idempotency_key,
                currency=currency,
                channel=verifier.channel,
                provider=payment.provider,
                payment_token=f"{payment.provider}:{payment.reference}"[:200],
                package_code=payment.package_code,
                paid_minor=paid,
            ),
        )
        if replayed:  # the key's purchase is not this transaction's (that one was not found)
            raise IdempotencyKeyReused(
                "This idempotency key was used for a different purchase",
                field="idempotencyKey",
                purchase_id=row.id,
            )
        row.provider_reference = payment.reference
        await session.flush()
        return row, False


def _minor_units(micros: int, currency: str) -> int:
    """What the store says the buyer paid, in the currency's minor units (exactly)."""
    step = fiat(currency).micros_per_minor_unit
    if micros <= 0 or micros % step:
        raise PaymentNotVerified(
            f"The transaction's price is not a whole number of {currency} minor units",
            field="signedTransaction",
        )
    return micros // step
