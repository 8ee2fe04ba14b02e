"""Enumerations shared across the schema."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(
    description="A currency the ledger keeps, by its ISO 4217 code. Any other is refused "
    "before anything runs."
)
class Currency(Enum):
    USD = "USD"
    EUR = "EUR"
    GBP = "GBP"
    BRL = "BRL"
    MXN = "MXN"
    CAD = "CAD"
    AUD = "AUD"
    JPY = "JPY"
    KRW = "KRW"


@strawberry.enum(description="Where a purchase is made: each has its own price list.")
class Channel(Enum):
    WEB = "web"
    IOS = "ios"
    ANDROID = "android"


@strawberry.enum(description="Who takes the payment. Apple on iOS, Google on Android.")
class PaymentProvider(Enum):
    CARD = "card"
    PAYPAL = "paypal"
    MOBILE_WALLET = "mobile_wallet"
    APPLE = "apple"
    GOOGLE = "google"


@strawberry.enum
class PurchaseStatus(Enum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
