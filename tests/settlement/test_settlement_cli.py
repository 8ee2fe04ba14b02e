"""``coinbooks settlement``, run as finance runs it, in processes of its own: two imports of the
same file at once import it once; a malformed file exits 1 naming its line and imports nothing;
``exceptions`` prints the open exceptions as CSV.

Ana buys 350 coins for $4.99 by card: 2.9% x 499 = 14.471 -> 14 cents + 30 = 44 cents of fee
expected, $4.55 in clearing. The report settles her charge as expected and an unknown charge
ch_cli of $1.00 (fee 0.33, net 0.67), and pays 4.55 + 0.67 = $5.22 to the bank."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.purchases.service import PurchaseService
from tests.settlement.support import balance, buy, counts, report

COINBOOKS = Path(sys.executable).parent / "coinbooks"


async def coinbooks(db_url: URL, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "COINBOOKS_ENVIRONMENT": "development",
        "COLUMNS": "200",
    }
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_finance_imports_a_file_once_and_lists_what_it_did_not_reconcile(
    db_url: URL,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    ana = await buy(purchases, "ana", "coins_350")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        report("card-cli-1", "card", (ana.reference, "charge", "4.99", "0.44", "4.50", "USD"))
    )
    code, _, err = await coinbooks(db_url, "settlement", "import", str(bad))
    assert code == 1
    assert "MALFORMED_SETTLEMENT_REPORT: Line 2: net is not gross less fee" in err
    assert await counts(sessions) == (0, 0, 0)

    good = tmp_path / "card.csv"
    good.write_text(
        report(
            "card-cli-1",
            "card",
            (ana.reference, "charge", "4.99", "0.44", "4.55", "USD"),
            ("ch_cli", "charge", "1.00", "0.33", "0.67", "USD"),
            ("po_cli", "payout", "-5.22", "0.00", "-5.22", "USD"),
        )
    )
    runs = await asyncio.gather(
        *(coinbooks(db_url, "settlement", "import", str(good), "--by", "user:fiona") for _ in "ab")
    )
    assert [code for code, _, _ in runs] == [0, 0]
    said = sorted(out.splitlines()[0] for _, out, _ in runs)
    assert said == [
        "Report card-cli-1 of card imported: 3 line(s), entry 2, 1 exception(s)",
        "Report card-cli-1 of card was imported before: 3 line(s), entry 2, 1 exception(s)",
    ]
    assert await counts(sessions) == (1, 3, 1)
    assert await balance(sessions, "platform:bank:USD") == 5_220_000

    code, out, _ = await coinbooks(db_url, "settlement", "exceptions")
    assert code == 0
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert (row["kind"], row["provider_reference"], row["difference"], row["status"]) == (
        "missing_in_ledger",
        "ch_cli",
        "-0.67",
        "open",
    )
    code, _, err = await coinbooks(db_url, "settlement", "exceptions", "--status", "closed")
    assert code == 2 and "open, resolved or all" in err
