"""Who may do what (DESIGN.md, "Who may do what"). The process authenticates callers; these
rules decide what an authenticated caller may read or move."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    CREATOR = "creator"
    SUPPORT = "support"
    FINANCE = "finance"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    roles: frozenset[Role]

    @property
    def actor(self) -> str:
        return f"user:{self.user_id}"

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


SPENDERS = (Role.VIEWER, Role.CREATOR)
"""Roles that hold a wallet of their own and may buy coins for it."""

READERS_OF_ANY_WALLET = (Role.SUPPORT, Role.FINANCE)


def may_read_wallet(principal: Principal, user_id: str) -> bool:
    """Your own wallet (with a spending role), or anybody's with support or finance."""
    if principal.has(*READERS_OF_ANY_WALLET):
        return True
    return principal.user_id == user_id and principal.has(*SPENDERS)


def may_buy_coins(principal: Principal) -> bool:
    return principal.has(*SPENDERS)


def may_read_books(principal: Principal) -> bool:
    """Trial balance, integrity report, any account: finance only."""
    return principal.has(Role.FINANCE)


def may_spend_coins(principal: Principal) -> bool:
    """Gifts and feature unlocks are paid from the caller's own wallet."""
    return principal.has(*SPENDERS)


def may_stream(principal: Principal) -> bool:
    """Start and end live streams of one's own."""
    return principal.has(Role.CREATOR)


def may_earn(principal: Principal) -> bool:
    """Creators have diamonds and earnings of their own."""
    return principal.has(Role.CREATOR)


def may_read_earnings(principal: Principal, creator_id: str) -> bool:
    """A creator's diamonds, earnings and stream takings (totals, gifts received): the creator
    themself (with the creator role), or support and finance for anyone."""
    if principal.has(*READERS_OF_ANY_WALLET):
        return True
    return principal.user_id == creator_id and principal.has(Role.CREATOR)


def may_read_leaderboards(principal: Principal) -> bool:
    """A stream's top gifters are shown to everyone watching it: any signed-in caller."""
    return bool(principal.roles)


def may_manage_catalog(principal: Principal) -> bool:
    """Gift types and premium features, their prices and whether they are on sale."""
    return principal.has(Role.ADMIN)


def may_freeze_accounts(principal: Principal) -> bool:
    """Freeze or thaw an account (support lifts the freeze a chargeback puts on)."""
    return principal.has(Role.ADMIN, Role.SUPPORT)


def may_read_chargebacks(principal: Principal) -> bool:
    """Chargebacks, with what each clawed back and lost: support and finance."""
    return principal.has(Role.SUPPORT, Role.FINANCE)


def may_read_provider_events(principal: Principal) -> bool:
    """Provider events as received, and webhook deliveries refused: finance."""
    return principal.has(Role.FINANCE)


def may_request_payouts(principal: Principal) -> bool:
    """Payout methods, the second factor and payout requests are a creator's own."""
    return principal.has(Role.CREATOR)


def may_read_payouts(principal: Principal, creator_id: str) -> bool:
    """A creator's payouts and payout methods (masked): the creator, support and finance."""
    return may_read_earnings(principal, creator_id)


def may_resolve_payouts(principal: Principal) -> bool:
    """Mark payouts sent, paid or failed, reject them, and see every payout in flight."""
    return principal.has(Role.FINANCE)


def may_verify_identity(principal: Principal) -> bool:
    """Set a creator's KYC flag."""
    return principal.has(Role.ADMIN)


def may_read_audit_log(principal: Principal) -> bool:
    return principal.has(Role.FINANCE, Role.ADMIN)


def may_refund(principal: Principal) -> bool:
    """Refunding a purchase: support only."""
    return principal.has(Role.SUPPORT)
