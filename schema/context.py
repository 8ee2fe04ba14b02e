"""What every resolver receives: the caller, the request id, and the services to delegate to."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.types import Info as StrawberryInfo

from accounting.access import Principal
from accounting.gifts import GiftService
from accounting.purchases import PurchaseService


@dataclass(frozen=True, slots=True)
class Services:
    sessions: async_sessionmaker[AsyncSession]
    purchases: PurchaseService
    gifts: GiftService
    functional_currency: str


@dataclass(slots=True)
class Context:
    services: Services
    request_id: str
    principal: Principal | None
    auth_error: str | None = None
    """Why the Authorization header was refused, when it was."""


Info = StrawberryInfo[Context, None]
