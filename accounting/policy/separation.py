"""Separation of duties (DESIGN.md, "Who may do what"): nobody acts with a staff role on their
own account or objects. A person holding a staff role and a role with money of their own (a
creator who is also in finance, a viewer who is also in support) may not refund their own
purchase, freeze or thaw their own account, set their own KYC flag, move their own payout
through its phases, write off what they owe, reverse, propose, approve or reject a correction
that moves their own accounts, resolve a reconciliation exception over their own entry, or
break their own wallet in a breakage run.

Each service that writes a staff action calls the check here before it writes, in the
transaction that writes, so the API and the command line (which name their actor too) are held
to the same rule. The owner of an object is the user it belongs to: a purchase's buyer, a
payout's creator, the user in an account's code (``user:<id>:...``, ``creator:<id>:...``)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.errors import LedgerError
from accounting.ledger.posting import entry_postings

OWNED_ACCOUNT_PREFIXES = ("user", "creator")
"""The first segment of the codes of accounts that belong to one user."""


class SelfApprovalForbidden(LedgerError):
    """A staff action on the actor's own account or objects: another staff member does it."""

    code = "SELF_APPROVAL_FORBIDDEN"


def user_of_actor(actor: str) -> str | None:
    """The user an actor names (``user:<id>``), or None for a process or a provider."""
    kind, _, user_id = actor.partition(":")
    return user_id if kind == "user" and user_id else None


def owner_of_account(code: str) -> str | None:
    """The user an account belongs to (``user:bo:coins`` → ``bo``), or None for the platform's."""
    parts = code.split(":")
    if len(parts) >= 3 and parts[0] in OWNED_ACCOUNT_PREFIXES and parts[1]:
        return parts[1]
    return None


def is_own(actor: str, owner: str) -> bool:
    return user_of_actor(actor) == owner


def check_not_own(actor: str, owner: str, *, doing: str, field: str | None) -> None:
    """Refuse ``doing`` (``"refund your own purchase"``) when ``owner`` is the actor."""
    if is_own(actor, owner):
        raise SelfApprovalForbidden(
            f"You may not {doing}: another staff member does it",
            field=field,
            actor=actor,
        )


def check_accounts_not_own(
    actor: str, account_codes: Iterable[str], *, doing: str, field: str | None
) -> None:
    """Refuse ``doing`` when any of the accounts belongs to the actor."""
    for code in account_codes:
        owner = owner_of_account(code)
        if owner is not None:
            check_not_own(actor, owner, doing=doing, field=field)


async def check_entry_not_own(
    session: AsyncSession, actor: str, entry_id: int, *, doing: str, field: str | None
) -> None:
    """Refuse ``doing`` when the journal entry moves any account of the actor's."""
    if user_of_actor(actor) is None:
        return
    postings = await entry_postings(session, entry_id)
    check_accounts_not_own(
        actor, (posting.account.code for posting in postings), doing=doing, field=field
    )
