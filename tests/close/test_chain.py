"""The journal's chain: sealing after commit, in id order, waiting out a transaction in flight;
each seal derived by hand from the canonical encoding; tampering found by ``verify_chain`` and
by ``coinbooks verify-chain`` even when the triggers were set aside by a superuser.

The books: two months ago (M1) 10 coins issued and spent on the 3rd at 00:00 UTC and 4 on the
20th; last month (M2) 6 on the 5th."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from datetime import timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.close import reads
from accounting.close.rules import GENESIS
from accounting.close.service import seal_journal
from api.app import create_app
from api.settings import Settings
from tests.close.support import grant, months_ago, raw, violations

__all__ = ["raw"]

COINBOOKS = Path(sys.executable).parent / "coinbooks"
DAY = timedelta(days=1)


async def three_entries(raw: asyncpg.Connection) -> list[int]:
    m1, m2 = months_ago(2), months_ago(1)
    entries = [
        await grant(raw, "m1-a", m1 + 2 * DAY, 10),
        await grant(raw, "m1-b", m1 + 19 * DAY, 4),
        await grant(raw, "m2-a", m2 + 4 * DAY, 6),
    ]
    return [entry.id for entry in entries]


async def seal(sessions: async_sessionmaker[AsyncSession], wait_seconds: float = 5.0) -> int:
    async with sessions() as session:
        done = await seal_journal(session, wait_seconds=wait_seconds)
    return -1 if done.waited_out else done.sealed


async def test_each_seal_is_the_sha256_of_its_encoding_over_its_predecessor(
    sessions: async_sessionmaker[AsyncSession], raw: asyncpg.Connection
) -> None:
    """The first entry's seal, by hand: sha256 of 64 zeros, a newline, and its encoding with
    keys sorted, no spaces, postings sorted by account code (``platform:coins:issued`` +10
    before ``platform:coins:spent`` -10), the instant in UTC with six digits. The second's is
    chained over the first's. Sealing again seals nothing."""
    ids = await three_entries(raw)
    assert await seal(sessions) == 3
    assert await seal(sessions) == 0
    day = (months_ago(2) + 2 * DAY).strftime("%Y-%m-%d")
    encoding = (
        f'{{"id":{ids[0]},"kind":"transfer","postedAt":"{day}T00:00:00.000000Z",'
        '"postings":[["platform:coins:issued","COIN",10],["platform:coins:spent","COIN",-10]],'
        '"rates":{},"refs":{},"reverses":null}'
    )
    first = hashlib.sha256(f"{GENESIS}\n{encoding}".encode()).hexdigest()
    stored = dict(await raw.fetch("SELECT entry_id, hash FROM entry_seal ORDER BY entry_id"))
    assert stored[ids[0]] == first
    second_day = (months_ago(2) + 19 * DAY).strftime("%Y-%m-%d")
    second = encoding.replace(str(ids[0]), str(ids[1]), 1).replace(day, second_day)
    second = second.replace("10]", "4]").replace("-10]", "-4]")
    assert stored[ids[1]] == hashlib.sha256(f"{first}\n{second}".encode()).hexdigest()
    async with sessions() as session:
        verified = await reads.verify_chain(session)
    assert verified.intact and verified.head.entry_id == ids[2]


async def test_sealing_waits_out_a_transaction_in_flight(
    sessions: async_sessionmaker[AsyncSession], raw: asyncpg.Connection
) -> None:
    """An entry not yet committed: sealing gives up (nothing sealed), so that it never seals
    past an entry that may still appear below; committed, the next sealing seals both."""
    await grant(raw, "m1-a", months_ago(2), 10)
    writer = raw.transaction()
    await writer.start()
    await grant(raw, "in-flight", months_ago(2) + DAY, 3)
    assert await seal(sessions, wait_seconds=0.3) == -1
    await writer.commit()
    assert await seal(sessions) == 2


async def verify_chain_command(db_url: URL) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": db_url.render_as_string(hide_password=False)}
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS), "verify-chain", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_tampering_behind_the_triggers_is_named_by_its_entry(
    sessions: async_sessionmaker[AsyncSession], raw: asyncpg.Connection, db_url: URL
) -> None:
    """A superuser sets the triggers aside (``session_replication_role = replica``) and makes
    the second entry's 4 coins 40 on both sides (it still balances). ``verify_chain`` and the
    command (exit 1) name that entry; before, the command said intact (exit 0). Deleting the
    third entry's seal the same way breaks the seals' continuity (the integrity check)."""
    ids = await three_entries(raw)
    await seal(sessions)
    code, out = await verify_chain_command(db_url)
    assert (code, out.split(":")[0]) == (0, "Intact")
    await raw.execute("SET session_replication_role = replica")
    await raw.execute("UPDATE posting SET amount = amount * 10 WHERE entry_id = $1", ids[1])
    async with sessions() as session:
        verified = await reads.verify_chain(session)
    assert verified.first_difference == ids[1] and verified.entries_checked == 2
    code, out = await verify_chain_command(db_url)
    assert code == 1 and out.startswith(f"The chain differs at entry {ids[1]}:")

    await raw.execute("DELETE FROM entry_seal WHERE entry_id = $1", ids[1])
    await raw.execute("RESET session_replication_role")
    assert f"entry {ids[1]} has no seal, yet entry {ids[2]} after it has" in await violations(
        sessions
    )


async def test_the_service_seals_every_round(
    settings: Settings, db_url: URL, raw: asyncpg.Connection
) -> None:
    """With the service's round every 0.2 s, the three entries are sealed without a command."""
    ids = await three_entries(raw)
    app = create_app(settings.model_copy(update={"posting_totals_every_seconds": 0.2}), db_url)
    async with app.router.lifespan_context(app):
        for _ in range(100):
            if await raw.fetchval("SELECT count(*) FROM entry_seal") == len(ids):
                break
            await asyncio.sleep(0.1)
    assert await raw.fetchval("SELECT max(entry_id) FROM entry_seal") == ids[2]
