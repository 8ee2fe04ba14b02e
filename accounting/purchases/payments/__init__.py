"""Payment providers behind one interface. The domain asks a gateway to charge and to look a
charge up; what it answers decides whether a purchase completes, fails or stays pending."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ChargeOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    UNKNOWN = "unknown"
    """No answer (a timeout): the provider may or may not have taken the money."""
    NOT_FOUND = "not_found"
    """A lookup found no charge under this reference: the request never reached the provider."""


@dataclass(frozen=True, slots=True)
class ChargeResult:
    outcome: ChargeOutcome
    reference: str | None = None
    decline_code: str | None = None
    message: str = ""


class PaymentGateway(Protocol):
    async def charge(
        self,
        *,
        provider: str,
        merchant_reference: str,
        payment_token: str,
        amount_minor: int,
        currency: str,
    ) -> ChargeResult:
        """Charge once per ``merchant_reference``: a repeated call returns the first charge."""
        ...

    async def lookup(self, *, provider: str, merchant_reference: str) -> ChargeResult:
        """What the provider knows of the charge made under ``merchant_reference``."""
        ...
