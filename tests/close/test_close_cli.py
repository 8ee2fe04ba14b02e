"""The close's commands in processes of their own: ``coinbooks close-period`` closes M1 (two
months ago) and says the head, refuses it a second time (exit 1, the code and why);
``coinbooks seal`` then has nothing left to seal; ``coinbooks verify-chain`` on a database that
does not exist could not run (exit 2).

The books: 10 coins issued and spent on M1's 3rd, 4 on its 20th."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL

from tests.close.support import FINANCE, grant, months_ago, name, raw

__all__ = ["raw"]

COINBOOKS = Path(sys.executable).parent / "coinbooks"
DAY = timedelta(days=1)


async def coinbooks(db_url: URL, *args: str) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": db_url.render_as_string(hide_password=False)}
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS), *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_close_period_seal_and_verify_chain_from_the_command_line(
    db_url: URL, raw: asyncpg.Connection
) -> None:
    m1 = months_ago(2)
    await grant(raw, "m1-a", m1 + 2 * DAY, 10)
    last = await grant(raw, "m1-b", m1 + 19 * DAY, 4)
    close = ("close-period", name(m1), "--reason", "month-end", "--by", FINANCE)
    code, out = await coinbooks(db_url, *close)
    assert code == 0 and out.startswith(
        f"Closed {name(m1)} by {FINANCE}; chain head: entry {last.id}"
    )
    code, out = await coinbooks(db_url, *close)
    assert (code, out.strip()) == (
        1,
        f"Refused (PERIOD_ALREADY_CLOSED): {name(m1)} is closed already",
    )
    code, out = await coinbooks(db_url, "seal", "--wait-seconds", "1")
    assert code == 0 and out.startswith(f"Sealed 0 entries; head: entry {last.id}")
    code, out = await coinbooks(db_url.set(database="no_such_database"), "verify-chain")
    assert code == 2 and out.startswith("Could not run:")
