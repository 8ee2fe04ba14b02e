"""``coinbooks release-holds``, run as the operator runs it: several processes at once, then
again. Between them every due gift is released exactly once; a run with nothing due releases
nothing."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.tables import GiftRow
from tests.conftest import GraphQLClient
from tests.gifts.streaming import account_balance, buy_coins, gift_sent, start_stream

COINBOOKS = Path(sys.executable).parent / "coinbooks"
RELEASED = re.compile(r"^Released (\d+) gift\(s\) from hold$", re.MULTILINE)


async def release_holds(db_url: URL) -> int:
    """Run the command in a process of its own; the number of gifts it says it released."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "COINBOOKS_ENVIRONMENT": "development",
    }
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS),
        "release-holds",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    found = RELEASED.search(out.decode())
    assert found is not None, out.decode()
    return int(found[1])


async def test_concurrent_and_repeated_runs_release_every_due_gift_once(
    gql: GraphQLClient, db_url: URL, sessions: async_sessionmaker[AsyncSession]
) -> None:
    creators = ("bo", "cy", "di")
    for viewer in ("ana", "ed"):
        await buy_coins(gql, viewer)
    for creator in creators:
        stream_id = await start_stream(gql, creator)
        for viewer in ("ana", "ed"):
            for _ in range(4):
                await gift_sent(gql, stream_id, "finger_heart", 2, user=viewer)  # 10 coins

    counts = await asyncio.gather(*(release_holds(db_url) for _ in range(3)))
    again = await release_holds(db_url)

    assert sum(counts) == 24
    assert again == 0
    for creator in creators:
        assert (await account_balance(gql, f"creator:{creator}:diamonds:pending"))[0] == "0"
        assert (await account_balance(gql, f"creator:{creator}:diamonds:available"))[0] == "80"
    async with sessions() as session:
        unreleased = await session.scalar(
            select(func.count()).where(GiftRow.release_entry_id.is_(None))
        )
    assert unreleased == 0
