"""Corrections from the command line (``coinbooks corrections ...``), run as a finance person
would, as a process of its own against the test database.

The book: the card provider's clearing settled $4.55 into the bank (entry 1), by mistake twice
(entry 2). Finance reverses entry 2 from the command line: entry 3 moves $4.55 back, so the bank
holds 4.55 + 4.55 - 4.55 = $4.55. Then fin-a proposes moving $0.44 of card fees the bank was
charged (bank -0.44, processor fees +0.44); fin-a cannot approve it, fin-b can: entry 4 posts,
and the bank holds 4.55 - 0.44 = $4.11."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.corrections.tables import AdjustmentProposalRow
from accounting.integrity import check_integrity
from accounting.ledger import chart
from accounting.ledger.tables import AccountRow
from accounting.policy.tables import AuditRow
from tests.corrections.test_corrections import post, settlement

COINBOOKS = Path(sys.executable).parent / "coinbooks"


async def corrections(db_url: URL, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "COINBOOKS_ENVIRONMENT": "development",
        "COLUMNS": "200",
    }
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS),
        "corrections",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def bank_balance(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        found = await session.scalar(
            select(AccountRow.balance).where(AccountRow.code == chart.bank("USD").code)
        )
    assert found is not None
    return found


async def test_finance_reverses_and_adjusts_from_the_command_line(
    db_url: URL, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await post(sessions, settlement("settlement:cli:1", 4_550_000))
    await post(sessions, settlement("settlement:cli:2", 4_550_000))

    reversed_ = (
        "reverse",
        "2",
        "--reason",
        "settled twice",
        "--by",
        "fin-a",
        "--key",
        "reverse-0001",
    )
    assert await corrections(db_url, *reversed_) == (0, "Entry 2 reversed by entry 3\n", "")
    code, out, _ = await corrections(db_url, *reversed_)
    assert (code, out) == (
        0,
        "Entry 2 reversed by entry 3 (replayed: reversed before under this key)\n",
    )
    assert await bank_balance(sessions) == 4_550_000

    proposal = (
        "propose",
        "--line",
        "platform:bank:USD USD -0.44",
        "--line",
        "platform:expense:processor_fees:USD USD 0.44",
        "--reason",
        "[ops] card fees taken from the bank",
        "--by",
        "fin-a",
        "--key",
        "adjust-0001",
    )
    assert await corrections(db_url, *proposal) == (0, "Proposal 1: proposed\n", "")
    code, _, err = await corrections(
        db_url, "approve", "1", "--by", "fin-a", "--key", "approve-0001"
    )
    assert code == 1 and err.startswith("SELF_APPROVAL: ")
    assert await bank_balance(sessions) == 4_550_000
    done = await corrections(db_url, "approve", "1", "--by", "fin-b", "--key", "approve-0002")
    assert done == (0, "Proposal 1: posted as entry 4\n", "")
    assert await bank_balance(sessions) == 4_110_000

    code, listed, _ = await corrections(db_url, "proposals", "--status", "posted")
    assert code == 0
    shown_as_typed = ("[ops] card fees", "platform:bank:USD USD -0.44", "user:fin-b", "posted")
    for shown in shown_as_typed:
        assert shown in listed

    async with sessions() as session, session.begin():
        assert (await check_integrity(session)).ok
        actions = (await session.scalars(select(AuditRow.action).order_by(AuditRow.id))).all()
        approver = await session.scalar(select(AdjustmentProposalRow.decided_by))
    assert list(actions) == ["entry.reversed", "adjustment.proposed", "adjustment.approved"]
    assert approver == "user:fin-b"


async def test_a_rejection_and_bad_input_from_the_command_line(
    db_url: URL, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A proposal rejected posts nothing; a line that is not three words, a --by that is not
    a user id, an unknown status: exit 2, nothing written; an entry that does not exist: its
    code, exit 1."""
    proposal = ("propose", "--line", "platform:bank:USD USD 1", "--line")
    unbalanced = (
        *proposal,
        "platform:bank:USD",
        "--reason",
        "x",
        "--by",
        "fin-a",
        "--key",
        "anything-1",
    )
    code, _, err = await corrections(db_url, *unbalanced)
    assert code == 2 and "--line is 'ACCOUNT COMMODITY AMOUNT'" in err
    code, _, err = await corrections(
        db_url, "reverse", "1", "--reason", "x", "--by", "fin a!", "--key", "anything-1"
    )
    assert code == 2
    code, _, err = await corrections(db_url, "proposals", "--status", "lost")
    assert code == 2
    code, _, err = await corrections(
        db_url, "reverse", "99", "--reason", "x", "--by", "fin-a", "--key", "anything-1"
    )
    assert code == 1 and err.startswith("ENTRY_NOT_FOUND: ")

    balanced = (
        "propose",
        "--line",
        "platform:bank:USD USD 1.00",
        "--line",
        "platform:expense:processor_fees:USD USD -1.00",
        "--reason",
        "a test",
        "--by",
        "fin-a",
        "--key",
        "adjust-0002",
    )
    assert (await corrections(db_url, *balanced))[0] == 0
    rejected = await corrections(db_url, "reject", "1", "--reason", "not needed", "--by", "fin-b")
    assert rejected == (0, "Proposal 1: rejected\n", "")
    async with sessions() as session:
        statuses = (await session.scalars(select(AdjustmentProposalRow.status))).all()
    assert list(statuses) == ["rejected"]
    assert await bank_balance(sessions) == 0


async def test_account_codes_print_as_themselves(
    db_url: URL, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The command line's tables print codes as typed: ``:bank:`` is not an emoji code."""
    await post(sessions, settlement("settlement:cli:3", 4_550_000))
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS),
        "trial-balance",
        env={**os.environ, "DATABASE_URL": db_url.render_as_string(hide_password=False)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert "platform:bank:USD" in out.decode()
