"""``coinbooks breakage run`` in a process of its own against the test database: a dry run as a
forecast lists the wallet and posts nothing; a day not yet ended is refused with its code."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.purchases.service import PurchaseService
from tests.breakage.support import buy, counts

COINBOOKS = Path(sys.executable).parent / "coinbooks"


async def breakage(db_url: URL, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "COINBOOKS_ENVIRONMENT": "development",
        "COLUMNS": "200",
    }
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS),
        "breakage",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_finance_runs_breakage_from_the_command_line(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    await buy(purchases, "ana", "ana-buys-0001")
    before = await counts(sessions)

    code, out, err = await breakage(db_url, "run", "--as-of", "2099-12-31", "--dry-run")
    assert (code, err) == (0, "")
    assert "ana" in out and "4.99" in out
    assert (
        "Breakage as of 2099-12-31 (unused for 730 days, since before 2098-01-01 00:00 UTC): "
        "would recognise (dry run, nothing posted) 1 wallet(s), 350 coins, 4.99 USD"
    ) in out
    assert await counts(sessions) == before

    code, out, err = await breakage(db_url, "run", "--as-of", "2099-12-31", "--by", "fin")
    assert code == 1 and out == ""
    assert err.startswith("BREAKAGE_DATE_NOT_ENDED: Breakage is recognised as of a day")
    assert await counts(sessions) == before
