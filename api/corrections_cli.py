"""``coinbooks corrections``: finance's corrections from the command line, the same service the
GraphQL mutations call (``reverseEntry``, ``proposeAdjustment``, ``approveAdjustment``,
``rejectAdjustment``), with the same checks, idempotency and audit.

The command line speaks straight to the database, so it has no token: ``--by`` names the
finance person acting (``--by fin``, recorded as ``user:fin``), and a proposal's approver must
be another person than its proposer, as over GraphQL. Errors are one line on standard error with
the error's code, exit code 1 (2 for a value that cannot be read at all).

- ``coinbooks corrections reverse ENTRY_ID --reason TEXT --by ID --key KEY``
- ``coinbooks corrections propose --line "ACCOUNT COMMODITY AMOUNT" ... --reason TEXT --by ID
  --key KEY [--memo TEXT]``: amounts debit-positive, decimal strings in the commodity's unit.
- ``coinbooks corrections approve PROPOSAL_ID --by ID --key KEY``
- ``coinbooks corrections reject PROPOSAL_ID --reason TEXT --by ID``
- ``coinbooks corrections proposals [--status proposed|posted|rejected]``"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.corrections import service
from accounting.corrections.tables import AdjustmentProposalRow
from accounting.ledger.chart import check_user_id
from accounting.ledger.errors import LedgerError
from accounting.ledger.pages import MAX_PAGE
from accounting.policy.access import Principal, Role
from accounting.reads.journal import amount_text
from api.console import plain_console
from api.database import create_engine, database_url_for, session_factory
from api.settings import get_settings

corrections_app = typer.Typer(
    help="Reverse a journal entry; propose, approve or reject an adjusting entry.",
    no_args_is_help=True,
)
out = plain_console()
errors = plain_console(stderr=True)
T = TypeVar("T")

ByOption = Annotated[str, typer.Option("--by", help="The finance person acting (a user id).")]
KeyOption = Annotated[str, typer.Option("--key", help="Idempotency key: the same key replays.")]
ReasonOption = Annotated[str, typer.Option(help="Why (recorded in the audit log).")]


def _run(work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """``work`` on a pool of the configured database; a ledger error is one line, exit 1."""

    async def run() -> T:
        with database_url_for(get_settings()) as url:
            engine = create_engine(url, pool_size=1, max_overflow=0)
            try:
                return await work(session_factory(engine))
            finally:
                await engine.dispose()

    try:
        return asyncio.run(run())
    except LedgerError as error:
        errors.print(f"[red]{error.code}[/red]: {escape(error.message)}")
        raise typer.Exit(1) from None


def _actor(user_id: str) -> str:
    """``--by`` as the actor the service records (``user:<id>``), as a finance token's would be."""
    try:
        user = check_user_id(user_id.strip(), field="--by")
        return Principal(user, frozenset({Role.FINANCE})).actor
    except LedgerError as error:
        errors.print(f"[red]{error.code}[/red]: {escape(error.message)}")
        raise typer.Exit(2) from None


def _line(text: str) -> service.ProposedLine:
    parts = text.split()
    if len(parts) != 3:
        shown = escape(repr(text))
        errors.print(f"[red]BAD_USER_INPUT[/red]: --line is 'ACCOUNT COMMODITY AMOUNT': {shown}")
        raise typer.Exit(2)
    return service.ProposedLine(*parts)


@corrections_app.command()
def reverse(
    entry_id: Annotated[int, typer.Argument(help="The journal entry to reverse.")],
    reason: ReasonOption,
    by: ByOption,
    key: KeyOption,
) -> None:
    """Reverse a mistaken journal entry: a new entry negates it and references it; at most one
    reversal per entry; entries of flows with their own lifecycle are refused (use the flow's
    own correction: a refund, a failed payout)."""
    request = service.ReversalRequest(entry_id, key, _actor(by), reason)
    done = _run(lambda sessions: service.reverse(sessions, request))
    again = " (replayed: reversed before under this key)" if done.replayed else ""
    out.print(
        f"Entry {done.reversal.entry_id} reversed by entry {done.reversal.reversal_entry_id}{again}"
    )


@corrections_app.command()
def propose(
    line: Annotated[
        list[str],
        typer.Option(help="'ACCOUNT COMMODITY AMOUNT', debit-positive; once per posting."),
    ],
    reason: ReasonOption,
    by: ByOption,
    key: KeyOption,
    memo: Annotated[str, typer.Option(help="The entry's memo.")] = "",
) -> None:
    """Propose an adjusting entry (balanced per commodity, on accounts of the chart); it posts
    only once another finance person approves it."""
    lines = tuple(_line(text) for text in line)
    request = service.ProposalRequest(_actor(by), key, reason, lines, memo)
    done = _run(lambda sessions: service.propose_adjustment(sessions, request))
    again = " (replayed)" if done.replayed else ""
    out.print(f"Proposal {done.proposal.id}: {done.proposal.status}{again}")


@corrections_app.command()
def approve(
    proposal_id: Annotated[int, typer.Argument(help="The proposal to approve.")],
    by: ByOption,
    key: KeyOption,
) -> None:
    """Approve another person's proposal: its entry posts now."""
    request = service.ApprovalRequest(proposal_id, key, _actor(by))
    done = _run(lambda sessions: service.approve_adjustment(sessions, request))
    again = " (replayed)" if done.replayed else ""
    out.print(f"Proposal {proposal_id}: posted as entry {done.proposal.entry_id}{again}")


@corrections_app.command()
def reject(
    proposal_id: Annotated[int, typer.Argument(help="The proposal to reject.")],
    reason: ReasonOption,
    by: ByOption,
) -> None:
    """Reject a proposal still waiting: nothing is posted for it, ever."""
    request = service.RejectionRequest(proposal_id, _actor(by), reason)
    _run(lambda sessions: service.reject_adjustment(sessions, request))
    out.print(f"Proposal {proposal_id}: rejected")


@corrections_app.command()
def proposals(
    status: Annotated[
        str | None, typer.Option(help="proposed, posted or rejected (default: all).")
    ] = None,
) -> None:
    """The latest proposals, newest first, with their lines and decisions."""
    if status is not None and status not in service.PROPOSAL_STATUSES:
        errors.print(f"[red]BAD_USER_INPUT[/red]: --status is one of {service.PROPOSAL_STATUSES}")
        raise typer.Exit(2)

    async def read(sessions: async_sessionmaker[AsyncSession]) -> list[AdjustmentProposalRow]:
        async with sessions() as session:
            page = await service.adjustment_proposals(
                session, status=status, first=MAX_PAGE, before_id=None
            )
        return list(page.items)

    table = Table("id", "status", "proposed by", "reason", "postings", "decided by", "entry")
    for row in _run(read):
        postings = "\n".join(
            f"{p['account']} {p['commodity']} {amount_text(p['amount'], p['commodity'])}"
            for p in row.postings
        )
        cells = (
            str(row.id),
            row.status,
            row.proposed_by,
            row.reason,
            postings,
            row.decided_by or "",
            "" if row.entry_id is None else str(row.entry_id),
        )
        table.add_row(*(Text(cell) for cell in cells))
    out.print(table)
