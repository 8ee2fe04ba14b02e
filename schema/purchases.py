"""Buying coins: the purchaseCoins mutation, and purchases to look back on."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from accounting.ledger import balances
from accounting.ledger.errors import (
    AccountFrozen,
    FxRateMissing,
    IdempotencyKeyReused,
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidReason,
    LedgerError,
)
from accounting.ledger.money import minor_to_micros
from accounting.policy.access import may_buy_coins, may_refund
from accounting.policy.separation import SelfApprovalForbidden
from accounting.purchases.errors import (
    CustomAmountOutOfRange,
    PackageNotFound,
    PriceNotAvailable,
    ProviderNotAvailable,
    PurchaseLimitExceeded,
    PurchaseNotFound,
)
from accounting.purchases.service import PurchaseRequest
from accounting.purchases.tables import PurchaseRow
from accounting.reads.history import purchases
from accounting.refunds import service as refunds
from accounting.refunds.errors import RefundNotAllowed
from accounting.refunds.tables import RefundRow
from schema.authorization import PURCHASES, REFUNDS, look_up
from schema.context import Info
from schema.enums import Channel, Currency, PaymentProvider, PurchaseStatus
from schema.errors import (
    MutationError,
    error_type,
    errors_in_payload,
    payload_error,
    require_role,
    seen,
)
from schema.nodes import Node, global_id, pk_of
from schema.pagination import Connection, connection, page_start
from schema.payloads import null_on_error, replayed_field
from schema.scalars import BigInt, Money
from schema.wallet import Wallet, readable_user, wallet_of


@strawberry.type(description="A purchase of coins, whatever became of it.")
class Purchase(Node):
    user_id: str
    status: PurchaseStatus
    package_code: str | None = strawberry.field(description="Null for a custom amount.")
    coins: BigInt
    bonus_coins: BigInt
    channel: Channel
    provider: PaymentProvider
    price: Money
    failure_code: str | None = strawberry.field(
        description="Why a failed purchase failed, as the provider said (card_declined, ...)."
    )
    failure_message: str | None
    provider_reference: str | None
    entry_id: strawberry.ID | None = strawberry.field(
        description="The journal entry that granted the coins, once completed."
    )
    created_at: datetime
    settled_at: datetime | None
    coins_granted: BigInt = strawberry.field(
        description="Coins (bonus included) the purchase put in the wallet: coins + bonusCoins, "
        "less those withheld for what it repaid of a receivable; 0 when the debt took it whole "
        "(and until it completes)."
    )
    repaid_micros: strawberry.Private[int]

    @strawberry.field(
        description="What of the price repaid, first, what the buyer owed after a chargeback, in "
        "the functional currency (COINBOOKS_RECEIVABLE_POLICY=repay_first); zero when nothing "
        "was owed."
    )
    def receivable_repaid(self, info: Info) -> Money:
        return Money.of(self.repaid_micros, info.context.services.functional_currency)


def purchase_of(row: PurchaseRow) -> Purchase:
    return Purchase(
        id=global_id("Purchase", row.id),
        user_id=row.user_id,
        status=PurchaseStatus(row.status),
        package_code=row.package_code,
        coins=BigInt(row.coins),
        bonus_coins=BigInt(row.bonus_coins),
        channel=Channel(row.channel),
        provider=PaymentProvider(row.provider),
        price=Money.of(minor_to_micros(row.price_minor, row.currency), row.currency),
        failure_code=row.failure_code,
        failure_message=row.failure_message,
        provider_reference=row.provider_reference,
        entry_id=strawberry.ID(str(row.entry_id)) if row.entry_id is not None else None,
        created_at=row.created_at,
        settled_at=row.settled_at,
        coins_granted=BigInt(
            row.coins + row.bonus_coins - row.coins_withheld if row.status == "completed" else 0
        ),
        repaid_micros=row.receivable_repaid_micros,
    )


@error_type(
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    PackageNotFound,
    PriceNotAvailable,
    CustomAmountOutOfRange,
    InvalidAmount,
    FxRateMissing,
    ProviderNotAvailable,
    "PAYMENT_DECLINED",  # a purchase the provider declined: no domain error, see purchaseCoins
    AccountFrozen,
    PurchaseLimitExceeded,
)
class PurchaseCoinsError(MutationError): ...


@strawberry.type
class PurchaseCoinsPayload:
    purchase: Purchase | None = null_on_error(
        "COMPLETED: coins granted. FAILED: nothing charged or granted (see errors). "
        "PENDING: the provider has not answered yet; the purchase settles exactly once, and "
        "retrying with the same idempotency key shows its latest state."
    )
    wallet: Wallet | None = None
    replayed: bool = replayed_field()
    errors: list[PurchaseCoinsError]


@strawberry.input
class PurchaseCoinsInput:
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per purchase (a UUID). Retrying with "
        "the same key never charges twice."
    )
    currency: Currency
    channel: Channel
    provider: PaymentProvider
    payment_token: str = strawberry.field(
        description="From the provider's client SDK. Sandbox: tok_success, tok_declined, "
        "tok_timeout, ..."
    )
    package_code: str | None = None
    custom_coins: BigInt | None = strawberry.field(
        default=None, description="A custom number of coins instead of a package (web only)."
    )


@error_type(
    PurchaseNotFound,
    SelfApprovalForbidden,
    RefundNotAllowed,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    InvalidReason,
    field_description=None,
)
class RefundPurchaseError(MutationError):
    reasons: list[RefundBlockCode] = strawberry.field(
        description="With REFUND_NOT_ALLOWED: every reason the refund check gave."
    )

    @classmethod
    def details_of(cls, error: LedgerError) -> dict[str, Any]:
        reasons = error.facts.get("reasons", []) if isinstance(error, RefundNotAllowed) else []
        return {"reasons": [RefundBlockCode(code) for code in reasons]}


@strawberry.type(description="A refunded purchase: who refunded it, why, and what moved.")
class Refund(Node):
    purchase_id: strawberry.ID
    entry_id: strawberry.ID = strawberry.field(description="The journal entry of the refund.")
    coins: BigInt
    cash: Money = strawberry.field(description="Returned to the payment provider.")
    value_released: Money
    contra_revenue: Money
    refunded_by: str
    reason: str
    created_at: datetime


@strawberry.type
class RefundPurchasePayload:
    refund: Refund | None = None
    purchase: Purchase | None = None
    replayed: bool = replayed_field()
    errors: list[RefundPurchaseError]


@strawberry.input
class RefundPurchaseInput:
    purchase_id: strawberry.ID
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per refund (a UUID)."
    )
    reason: str = strawberry.field(description="Why, for the record: 1-500 characters.")


@strawberry.type
class PurchaseMutations:
    @strawberry.mutation(
        description="Refund a purchase (support role), when the refund check says it may be: "
        "its coins back, the cash back to the provider. At most once per purchase."
    )
    @errors_in_payload(RefundPurchasePayload, RefundPurchaseError)
    async def refund_purchase(
        self, info: Info, input: RefundPurchaseInput
    ) -> RefundPurchasePayload:
        principal = require_role(info, may_refund, "refund purchases without the support role")
        services = info.context.services
        result = await refunds.refund_purchase(
            services.sessions,
            refunds.RefundRequest(
                purchase_id=purchase_id_of(input.purchase_id),
                idempotency_key=input.idempotency_key,
                actor=principal.actor,
                reason=input.reason,
            ),
            policy=services.refund_policy,
            functional_currency=services.functional_currency,
        )
        return RefundPurchasePayload(
            refund=refund_of(result.refund, result.purchase, services.functional_currency),
            purchase=purchase_of(result.purchase),
            replayed=result.replayed,
            errors=[],
        )

    @strawberry.mutation(description="Buy coins with a package or a custom amount.")
    @errors_in_payload(PurchaseCoinsPayload, PurchaseCoinsError)
    async def purchase_coins(self, info: Info, input: PurchaseCoinsInput) -> PurchaseCoinsPayload:
        what = "buy coins without the viewer or creator role"
        principal = require_role(info, may_buy_coins, what)
        services = info.context.services
        request = PurchaseRequest(
            user_id=principal.user_id,
            idempotency_key=input.idempotency_key,
            currency=input.currency.value,
            channel=input.channel.value,
            provider=input.provider.value,
            payment_token=input.payment_token,
            package_code=input.package_code,
            custom_coins=input.custom_coins,
        )
        result = await services.purchases.purchase_coins(request)
        async with services.sessions() as session:
            wallet = await balances.wallet(session, principal.user_id, services.functional_currency)
        row = result.purchase
        failures = []
        if row.status == "failed":
            message = row.failure_message or "The payment was declined"
            failures.append(
                payload_error(PurchaseCoinsError, "PAYMENT_DECLINED", message, "paymentToken")
            )
        return PurchaseCoinsPayload(
            purchase=purchase_of(row),
            wallet=wallet_of(wallet),
            replayed=result.replayed,
            errors=failures,
        )


@strawberry.enum(description="Why a purchase may not be refunded now.")
class RefundBlockCode(Enum):
    NOT_COMPLETED = "NOT_COMPLETED"
    ALREADY_REFUNDED = "ALREADY_REFUNDED"
    CHARGED_BACK = "CHARGED_BACK"
    COINS_SPENT = "COINS_SPENT"
    WINDOW_PASSED = "WINDOW_PASSED"
    PROVIDER_DOES_NOT_REFUND = "PROVIDER_DOES_NOT_REFUND"
    ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
    NOTHING_GRANTED = "NOTHING_GRANTED"


@strawberry.type(description="One reason a purchase may not be refunded now.")
class RefundReason:
    code: RefundBlockCode
    message: str


@strawberry.type(description="What refunding a purchase would move.")
class RefundAmounts:
    coins: BigInt = strawberry.field(description="Coins taken back, bonus coins included.")
    cash: Money = strawberry.field(description="Returned to the payment provider.")
    value_released: Money = strawberry.field(
        description="The wallet's weighted-average value for those coins (deferred revenue)."
    )
    contra_revenue: Money = strawberry.field(
        description="Cash paid (in the reporting currency) less the value released."
    )


@strawberry.type(description="Whether a purchase may be refunded now, and if not, why.")
class RefundCheck:
    purchase: Purchase
    refundable: bool
    reasons: list[RefundReason] = strawberry.field(
        description="Every reason it may not be refunded now; empty when it may."
    )
    refundable_until: datetime = strawberry.field(
        description="The end of the refund window, whatever else blocks it."
    )
    amounts: RefundAmounts | None = strawberry.field(
        description="Null when the wallet no longer holds the purchase's coins."
    )


def refund_check_of(check: refunds.RefundCheck) -> RefundCheck:
    amounts = check.amounts
    return RefundCheck(
        purchase=purchase_of(check.purchase),
        refundable=check.refundable,
        reasons=[
            RefundReason(code=RefundBlockCode(r.code.value), message=r.message)
            for r in check.reasons
        ],
        refundable_until=check.refundable_until,
        amounts=None
        if amounts is None
        else RefundAmounts(
            coins=BigInt(amounts.coins),
            cash=Money.of(amounts.cash_micros, amounts.currency),
            value_released=Money.of(amounts.value_released_micros, amounts.functional_currency),
            contra_revenue=Money.of(amounts.contra_revenue_micros, amounts.functional_currency),
        ),
    )


@strawberry.type
class PurchaseQueries:
    @strawberry.field(description="Purchases, newest first (yours when userId is omitted).")
    async def purchases(
        self, info: Info, user_id: str | None = None, first: int = 20, after: str | None = None
    ) -> Connection[Purchase]:
        _, wanted = readable_user(info, user_id)
        before = page_start("purchase", first, after)
        async with info.context.services.sessions() as session:
            page = await purchases(session, wanted, first=first, before_id=before)
        return connection("purchase", [(r.id, purchase_of(r)) for r in page.items], page.has_next)

    @strawberry.field(
        description="One purchase: your own, or anyone's for support and finance; null when "
        "there is no such purchase (or it is not yours to see)."
    )
    async def purchase(self, info: Info, id: strawberry.ID) -> Purchase | None:
        return await look_up(info, id, "Purchase", load_purchase)

    @strawberry.field(
        description="Whether a purchase may be refunded now, every reason if not, and what a "
        "refund would move: your own purchase, or anyone's for support and finance; null when "
        "there is no such purchase. Read-only."
    )
    async def refund_check(self, info: Info, purchase_id: strawberry.ID) -> RefundCheck | None:
        principal = PURCHASES.caller(info)
        services = info.context.services
        wanted = pk_of(purchase_id, "Purchase")
        if wanted is None:
            return None
        async with services.sessions() as session, session.begin():
            found = await session.get(PurchaseRow, wanted)
            row = seen(found, lambda row: PURCHASES.sees(principal, row.user_id))
            if row is None:
                return None
            check = await refunds.check_refund(
                session,
                row.id,
                policy=services.refund_policy,
                functional_currency=services.functional_currency,
            )
        return refund_check_of(check)


def refund_of(row: RefundRow, purchase: PurchaseRow, functional_currency: str) -> Refund:
    return Refund(
        id=global_id("Refund", row.id),
        purchase_id=strawberry.ID(str(row.purchase_id)),
        entry_id=strawberry.ID(str(row.entry_id)),
        coins=BigInt(row.coins),
        cash=Money.of(minor_to_micros(row.cash_minor, purchase.currency), purchase.currency),
        value_released=Money.of(row.value_released_micros, functional_currency),
        contra_revenue=Money.of(row.contra_revenue_micros, functional_currency),
        refunded_by=row.actor,
        reason=row.reason,
        created_at=row.created_at,
    )


def purchase_id_of(id: strawberry.ID) -> int:
    """The purchase an input's ID names: ``PURCHASE_NOT_FOUND`` when it cannot name one."""
    parsed = pk_of(id, "Purchase")
    if parsed is None:
        raise PurchaseNotFound(f"No purchase {id}", field="purchaseId")
    return parsed


async def load_refund(info: Info, pk: int) -> Refund | None:
    """Refund ``pk`` if the caller may see its purchase (the buyer's, or support's and
    finance's); else None, the same for one that does not exist. ``node(id:)`` answers with it."""
    principal = REFUNDS.caller(info)
    services = info.context.services
    async with services.sessions() as session:
        refund = await session.get(RefundRow, pk)
        found = None if refund is None else await session.get(PurchaseRow, refund.purchase_id)
    purchase = seen(found, lambda row: REFUNDS.sees(principal, row.user_id))
    if refund is None or purchase is None:
        return None
    return refund_of(refund, purchase, services.functional_currency)


async def load_purchase(info: Info, pk: int) -> Purchase | None:
    """Purchase ``pk`` if the caller may see it (theirs, or support's and finance's); else None,
    the same for one that does not exist. ``purchase(id:)`` and ``node(id:)`` answer with it."""
    principal = PURCHASES.caller(info)
    async with info.context.services.sessions() as session:
        found = await session.get(PurchaseRow, pk)
    row = seen(found, lambda row: PURCHASES.sees(principal, row.user_id))
    return purchase_of(row) if row is not None else None
