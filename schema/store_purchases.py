"""Buying coins in an app store: purchaseCoinsInAppStore, proven by the store's signed
transaction (accounting/purchases/store.py), and appAccountToken, the caller's token the app
sets on each purchase so that its transaction buys coins for that caller alone."""

from __future__ import annotations

from enum import Enum

import strawberry

from accounting.ledger import balances
from accounting.ledger.errors import (
    AccountFrozen,
    FxRateMissing,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    UnknownCommodity,
)
from accounting.policy.access import may_buy_coins
from accounting.purchases.errors import (
    PackageNotFound,
    PaymentAlreadyUsed,
    PaymentForAnotherAccount,
    PaymentForAnotherApp,
    PaymentNotVerified,
    PaymentRevoked,
    PaymentWithoutAccountToken,
    PaymentWrongEnvironment,
    PriceNotAvailable,
    ProductNotSold,
    ProviderNotAvailable,
    PurchaseLimitExceeded,
)
from accounting.purchases.store import StorePurchaseRequest
from schema.context import Info
from schema.errors import MutationError, error_type, errors_in_payload, require_role
from schema.payloads import null_on_error, replayed_field
from schema.purchases import Purchase, purchase_of
from schema.wallet import Wallet, wallet_of


@strawberry.enum(description="An app store whose signed transactions buy coins.")
class AppStore(Enum):
    APPLE = "apple"


@error_type(
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    ProviderNotAvailable,
    PaymentNotVerified,
    PaymentForAnotherApp,
    PaymentWrongEnvironment,
    ProductNotSold,
    PaymentRevoked,
    PaymentForAnotherAccount,
    PaymentWithoutAccountToken,
    PaymentAlreadyUsed,
    PackageNotFound,
    PriceNotAvailable,
    ("UNKNOWN_CURRENCY", UnknownCommodity),
    FxRateMissing,
    AccountFrozen,
    PurchaseLimitExceeded,
)
class PurchaseCoinsInAppStoreError(MutationError): ...


@strawberry.type
class PurchaseCoinsInAppStorePayload:
    purchase: Purchase | None = null_on_error(
        "COMPLETED: the store's transaction verified and its package's coins granted. The "
        "same transaction presented again, under any idempotency key, answers with this "
        "purchase (replayed) and grants nothing more."
    )
    wallet: Wallet | None = None
    replayed: bool = replayed_field()
    errors: list[PurchaseCoinsInAppStoreError]


@strawberry.input
class PurchaseCoinsInAppStoreInput:
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per purchase (a UUID)."
    )
    signed_transaction: str = strawberry.field(
        description="The store's signed transaction as the app received it (Apple: StoreKit "
        "2's Transaction.jwsRepresentation, a JWS of at most 32 KiB)."
    )
    store: AppStore = AppStore.APPLE


@strawberry.type
class StorePurchaseQueries:
    @strawberry.field(
        description="Your account token for App Store purchases: a UUID (lower case, with "
        "hyphens), the same on every call and every device. The iOS app sets it on every "
        "purchase (StoreKit 2: Product.purchase(options: [.appAccountToken(token)])); "
        "purchaseCoinsInAppStore then takes the transaction from you alone and refuses it to "
        "anyone else (PAYMENT_FOR_ANOTHER_ACCOUNT)."
    )
    def app_account_token(self, info: Info) -> str:
        principal = require_role(
            info, may_buy_coins, "buy coins without the viewer or creator role"
        )
        return str(info.context.services.account_tokens.of(principal.user_id))


@strawberry.type
class StorePurchaseMutations:
    @strawberry.mutation(
        description="Buy coins paid in an app store: the store's signed transaction is "
        "verified (its signature, its certificate chain to the store's root, the app, the "
        "environment, its account token: yours, see appAccountToken) and its product's coin "
        "package granted, once per transaction."
    )
    @errors_in_payload(PurchaseCoinsInAppStorePayload, PurchaseCoinsInAppStoreError)
    async def purchase_coins_in_app_store(
        self, info: Info, input: PurchaseCoinsInAppStoreInput
    ) -> PurchaseCoinsInAppStorePayload:
        what = "buy coins without the viewer or creator role"
        principal = require_role(info, may_buy_coins, what)
        services = info.context.services
        if services.store_purchases is None:
            raise ProviderNotAvailable("No app store is configured", field="store")
        result = await services.store_purchases.purchase(
            StorePurchaseRequest(
                user_id=principal.user_id,
                idempotency_key=input.idempotency_key,
                provider=input.store.value,
                signed_transaction=input.signed_transaction,
            )
        )
        async with services.sessions() as session:
            wallet = await balances.wallet(session, principal.user_id, services.functional_currency)
        return PurchaseCoinsInAppStorePayload(
            purchase=purchase_of(result.purchase),
            wallet=wallet_of(wallet),
            replayed=result.replayed,
            errors=[],
        )
