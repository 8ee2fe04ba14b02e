"""Who may call what: every root field of the schema and the rule that lets a caller through.

Each entry names the same predicate of :mod:`accounting.policy.access` that the field's resolver
checks, so the roles a field admits are computed from the rule, not written a second time.
``tests/graphql/test_authorization.py`` calls every field of the committed SDL as every role
(and with no token) over HTTP and holds each answer to this table; a field missing from it
fails that test. The Roles section of ``docs/graphql.md`` is :func:`roles_markdown`'s output.

Resolvers gate through the same rules: :func:`require` (one wording and code for every refusal),
and for each Node type its :class:`NodeRule` in :data:`NODES`, which the type's own fields and
its loader (what ``node(id:)`` answers with) both ask."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from accounting.policy.access import (
    Principal,
    Role,
    may_buy_coins,
    may_earn,
    may_freeze_accounts,
    may_manage_catalog,
    may_read_audit_log,
    may_read_books,
    may_read_chargebacks,
    may_read_earnings,
    may_read_leaderboards,
    may_read_payouts,
    may_read_provider_events,
    may_read_wallet,
    may_refund,
    may_request_payouts,
    may_resolve_payouts,
    may_spend_coins,
    may_stream,
    may_verify_identity,
)
from schema.context import Info
from schema.errors import require_principal, require_role
from schema.nodes import pk_of

ROLES: tuple[Role, ...] = tuple(Role)
CALLER = "caller"
"""The user a role's lone principal stands for when a rule is asked about it."""
SOMEONE_ELSE = "someone-else"
"""Another user, for the rules that depend on whose data is asked for."""


class Kind(StrEnum):
    PUBLIC = "public"
    """No token needed."""
    ROLES = "roles"
    """The roles the rule admits; any other caller is FORBIDDEN."""
    WHOSE = "whose"
    """An argument names whose data: left out, the caller's own (``own``); named, anyone's
    (``anyone``). A caller the rule does not admit either way is FORBIDDEN."""
    OBJECT = "object"
    """Looked up by id: any signed-in caller may ask, and an object the caller may not see
    answers exactly as one that does not exist (NOT_FOUND, or null)."""


@dataclass(frozen=True, slots=True)
class Access:
    kind: Kind
    may: Callable[[Principal], bool] = lambda principal: True
    """For ROLES: the rule. For WHOSE: the rule for one's own (argument left out)."""
    may_see: Callable[[Principal, str], bool] = lambda principal, user_id: False
    """For WHOSE and OBJECT: the rule for a user's data or objects."""
    argument: str | None = None
    """For WHOSE: the argument naming whose data is asked for."""

    def admits(self, role: Role | None) -> bool:
        """Whether a caller with this one role (None: no token) gets past the gate, asking for
        their own where whose matters."""
        if self.kind is Kind.PUBLIC:
            return True
        if role is None:
            return False
        return self.kind is Kind.OBJECT or self.may(_alone(role))

    def admits_for_another(self, role: Role) -> bool:
        """Whether a caller with this one role may name another user (WHOSE only)."""
        return self.may_see(_alone(role), SOMEONE_ELSE)

    def sees(self, role: Role) -> str:
        """Whose objects a caller with this one role sees (OBJECT only): any, own or none."""
        if self.may_see(_alone(role), SOMEONE_ELSE):
            return "any"
        return "own" if self.may_see(_alone(role), CALLER) else "none"


def _alone(role: Role) -> Principal:
    return Principal(CALLER, frozenset({role}))


PUBLIC = Access(Kind.PUBLIC)
SIGNED_IN = Access(Kind.ROLES)
"""Any caller with a valid token."""


def only(may: Callable[[Principal], bool]) -> Access:
    return Access(Kind.ROLES, may=may)


def whose(argument: str, may_see: Callable[[Principal, str], bool]) -> Access:
    """Own data by leaving ``argument`` out, anyone's by naming them: both under ``may_see``."""
    return Access(
        Kind.WHOSE,
        may=lambda principal: may_see(principal, principal.user_id),
        may_see=may_see,
        argument=argument,
    )


def earnings_of(argument: str) -> Access:
    """A creator's earnings and payouts: one's own needs the creator role (``may_earn``),
    another creator's ``may_read_earnings``."""
    return Access(Kind.WHOSE, may=may_earn, may_see=may_read_earnings, argument=argument)


def seen(may_see: Callable[[Principal, str], bool]) -> Access:
    return Access(Kind.OBJECT, may_see=may_see)


def _any_books_or_wallet(principal: Principal, user_id: str) -> bool:
    """accountStatement of a user's wallet account: finance reads every account, the others
    the wallets they may read (schema.statements.may_read_statement)."""
    return may_read_books(principal) or may_read_wallet(principal, user_id)


FINANCE = only(may_read_books)
RESOLVES_PAYOUTS = only(may_resolve_payouts)


# --- the gate every resolver calls --------------------------------------------------------------


def role_names(access: Access) -> str:
    """The roles a ROLES rule admits, as its refusal names them: "finance", "support or finance"."""
    return " or ".join(role.value for role in ROLES if access.admits(role))


def require(info: Info, access: Access, what: str) -> Principal:
    """The caller, when the ROLES rule ``access`` admits them; else ``FORBIDDEN``, worded alike
    for every rule: "You may not <what> without the <roles> role", the roles read off the rule."""
    return require_role(info, access.may, f"{what} without the {role_names(access)} role")


READ_BOOKS = "read the books"
"""What a caller without the finance role may not do with the reports, balances and journal."""


def require_finance(info: Info, what: str) -> Principal:
    """The caller, when they have the finance role (:data:`FINANCE`); else ``FORBIDDEN``."""
    return require(info, FINANCE, what)


# --- who sees each Node type: its own lookup and node(id:) ask the one rule ---------------------


@dataclass(frozen=True, slots=True)
class NodeRule:
    """Who may see the objects of one Node type. ROLES: those roles see every one, any other
    caller is FORBIDDEN (``reading`` says what they may not do). OBJECT: any signed-in caller may
    ask and sees those ``access.may_see`` lets them; another's answers as a missing one (null)."""

    access: Access
    reading: str = ""
    receiver: Callable[[Principal, str], bool] | None = None
    """For a type with two parties (a gift: its sender, and the creator who received it): the
    rule for the second, who sees the object as well as its owner does."""

    def caller(self, info: Info) -> Principal:
        """The caller, past the type's gate (signed in; with a role that reads the type)."""
        if self.access.kind is Kind.ROLES:
            return require(info, self.access, self.reading)
        return require_principal(info)

    def sees(self, principal: Principal, owner: str, receiver: str | None = None) -> bool:
        """Whether the caller (past :meth:`caller`) sees an object of the type that is
        ``owner``'s (the buyer's, the creator's, the sender's), or ``receiver``'s."""
        if self.access.kind is Kind.ROLES or self.access.may_see(principal, owner):
            return True
        if self.receiver is None or receiver is None:
            return False
        return self.receiver(principal, receiver)


PURCHASES = NodeRule(seen(may_read_wallet))
REFUNDS = PURCHASES
"""A refund is seen as the purchase it refunds is."""
PAYOUTS = NodeRule(seen(may_read_payouts))
PAYOUT_METHODS = PAYOUTS
"""A payout method is seen as its creator's payouts are."""
GIFTS = NodeRule(seen(may_read_wallet), receiver=may_read_earnings)
"""A gift is seen as its sender's wallet history (giftsSent) and as its creator's takings
(streamGifts): by the sender, the creator, support and finance."""
STREAMS = NodeRule(SIGNED_IN)
SETTLEMENT_REPORTS = NodeRule(FINANCE, "read settlement reports")
JOURNAL_ENTRIES = NodeRule(FINANCE, READ_BOOKS)
CHARGEBACKS = NodeRule(only(may_read_chargebacks), "read chargebacks")
ADJUSTMENT_PROPOSALS = NodeRule(FINANCE, "read adjustment proposals")
RECONCILIATION_EXCEPTIONS = NodeRule(FINANCE, "read reconciliation exceptions")

NODES: Mapping[str, NodeRule] = {
    "Purchase": PURCHASES,
    "Refund": REFUNDS,
    "Payout": PAYOUTS,
    "PayoutMethod": PAYOUT_METHODS,
    "Gift": GIFTS,
    "Stream": STREAMS,
    "SettlementReport": SETTLEMENT_REPORTS,
    "JournalEntry": JOURNAL_ENTRIES,
    "Chargeback": CHARGEBACKS,
    "AdjustmentProposal": ADJUSTMENT_PROPOSALS,
    "ReconciliationException": RECONCILIATION_EXCEPTIONS,
}
"""Every Node type's rule: its loader (what node(id:) answers with) and its own fields ask it."""

Found = TypeVar("Found")


async def look_up(
    info: Info, id: str, type_name: str, load: Callable[[Info, int], Awaitable[Found | None]]
) -> Found | None:
    """A Node type's own lookup by id: the type's gate first, whatever the id, then the loader
    node(id:) answers with; an id that names nothing of the type is null."""
    NODES[type_name].caller(info)
    pk = pk_of(id, type_name)
    return None if pk is None else await load(info, pk)


QUERIES: Mapping[str, Access] = {
    "node": SIGNED_IN,
    "nodes": SIGNED_IN,
    "coinPackages": PUBLIC,
    "wallet": whose("userId", may_read_wallet),
    "transactions": whose("userId", may_read_wallet),
    "purchases": whose("userId", may_read_wallet),
    "purchase": PURCHASES.access,
    "refundCheck": PURCHASES.access,
    "appAccountToken": only(may_buy_coins),
    "trialBalance": FINANCE,
    "integrityReport": FINANCE,
    "accountBalance": FINANCE,
    "balanceSheet": FINANCE,
    "incomeStatement": FINANCE,
    "rollForwards": FINANCE,
    "stream": STREAMS.access,
    "liveStreams": SIGNED_IN,
    "giftCatalog": PUBLIC,
    "featureCatalog": PUBLIC,
    "gift": GIFTS.access,
    "giftByKey": only(may_spend_coins),
    "giftsSent": whose("userId", may_read_wallet),
    "streamGifts": seen(may_read_earnings),
    "topGifters": only(may_read_leaderboards),
    "streamTotals": seen(may_read_earnings),
    "creatorEarnings": earnings_of("creatorId"),
    "earningsOverTime": earnings_of("creatorId"),
    "payoutMethods": earnings_of("creatorId"),
    "payoutMethod": PAYOUT_METHODS.access,
    "payoutControls": earnings_of("creatorId"),
    "payouts": earnings_of("creatorId"),
    "payout": PAYOUTS.access,
    "payoutsInFlight": RESOLVES_PAYOUTS,
    "auditLog": only(may_read_audit_log),
    "chargebacks": CHARGEBACKS.access,
    "providerEvents": only(may_read_provider_events),
    "refusedDeliveries": only(may_read_provider_events),
    "adjustmentProposals": ADJUSTMENT_PROPOSALS.access,
    "reconciliationExceptions": RECONCILIATION_EXCEPTIONS.access,
    "settlementReports": SETTLEMENT_REPORTS.access,
    "settlementReport": SETTLEMENT_REPORTS.access,
    "closedPeriods": FINANCE,
    "verifyChain": FINANCE,
    "journal": JOURNAL_ENTRIES.access,
    "journalEntry": JOURNAL_ENTRIES.access,
    "accountStatement": whose("accountCode", _any_books_or_wallet),
}

MUTATIONS: Mapping[str, Access] = {
    "refundPurchase": only(may_refund),
    "purchaseCoins": only(may_buy_coins),
    "purchaseCoinsInAppStore": only(may_buy_coins),
    "startStream": only(may_stream),
    "endStream": only(may_stream),
    "sendGift": only(may_spend_coins),
    "unlockFeature": only(may_spend_coins),
    "upsertGiftType": only(may_manage_catalog),
    "upsertFeature": only(may_manage_catalog),
    "setAccountFrozen": only(may_freeze_accounts),
    "registerPayoutMethod": only(may_request_payouts),
    "enrolSecondFactor": only(may_request_payouts),
    "confirmSecondFactor": only(may_request_payouts),
    "requestPayout": only(may_request_payouts),
    "rejectPayout": RESOLVES_PAYOUTS,
    "markPayoutSent": RESOLVES_PAYOUTS,
    "markPayoutPaid": RESOLVES_PAYOUTS,
    "markPayoutFailed": RESOLVES_PAYOUTS,
    "markPayoutReturned": RESOLVES_PAYOUTS,
    "setKycVerified": only(may_verify_identity),
    "reverseEntry": FINANCE,
    "proposeAdjustment": FINANCE,
    "approveAdjustment": FINANCE,
    "rejectAdjustment": FINANCE,
    "importSettlementReport": FINANCE,
    "resolveReconciliationException": FINANCE,
    "closePeriod": FINANCE,
    "recogniseBreakage": FINANCE,
    "writeOffReceivable": FINANCE,
}

SUBSCRIPTIONS: Mapping[str, Access] = {
    "giftsInStream": SIGNED_IN,
}

WHO_MAY: Mapping[str, Mapping[str, Access]] = {
    "Query": QUERIES,
    "Mutation": MUTATIONS,
    "Subscription": SUBSCRIPTIONS,
}
"""Each root type's fields, by their GraphQL names."""


# --- the table in docs/graphql.md -----------------------------------------------------------

DOCS_BEGIN = "<!-- who-may-call-what: generated from schema/authorization.py -->"
DOCS_END = "<!-- end of who-may-call-what -->"


def cell(access: Access, role: Role) -> str:
    """What one role may do with one field, as the docs' table says it."""
    if access.kind is Kind.OBJECT:
        return access.sees(role)
    if access.kind is Kind.WHOSE:
        own, anyone = access.admits(role), access.admits_for_another(role)
        return ", ".join(text for text, holds in (("own", own), ("any", anyone)) if holds) or "-"
    return "yes" if access.admits(role) else "-"


def roles_markdown() -> str:
    """The table of every root field and role, between its two markers."""
    lines = [
        DOCS_BEGIN,
        "",
        "| field | no token | " + " | ".join(f"`{role}`" for role in ROLES) + " |",
        "|---|---|" + "---|" * len(ROLES),
    ]
    for type_name, fields in WHO_MAY.items():
        for name in sorted(fields):
            access = fields[name]
            named = f"`{name}({access.argument}:)`" if access.argument else f"`{name}`"
            first = [f"{type_name.lower()} {named}", "yes" if access.admits(None) else "-"]
            lines.append("| " + " | ".join(first + [cell(access, r) for r in ROLES]) + " |")
    lines += ["", DOCS_END]
    return "\n".join(lines)


if __name__ == "__main__":
    print(roles_markdown())
