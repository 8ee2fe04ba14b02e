"""The test kit (api/testkit.py), used as another team would: the example suite in
docs/examples/testkit runs on its own, outside this repository's pytest configuration and
fixtures, with nothing but the installed plugin; and its balance check fails naming what is off
once the books are corrupted behind the triggers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg

from api.database import libpq_url
from api.testkit import Ledger

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples" / "testkit"

BUY = """
mutation Buy($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) { purchase { status } errors { code } }
}
"""


def test_the_example_suite_passes_with_only_the_plugin(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "test_example.py", tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "coinbooks", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout, run.stdout
    assert f"rootdir: {tmp_path}" in run.stdout, run.stdout  # not this repository's config


async def test_books_balanced_until_a_posting_is_changed(coinbooks_ledger: Ledger) -> None:
    order = {
        "idempotencyKey": "testkit-purchase-1",
        "currency": "USD",
        "channel": "WEB",
        "provider": "CARD",
        "paymentToken": "tok_success",
        "packageCode": "coins_350",
    }
    reply = await coinbooks_ledger.graphql(BUY, {"input": order}, user="ana")
    assert reply["data"]["purchaseCoins"]["errors"] == [], reply
    await coinbooks_ledger.assert_books_balanced()

    raw = await asyncpg.connect(libpq_url(coinbooks_ledger.url))
    try:
        await raw.execute("ALTER TABLE posting DISABLE TRIGGER USER")
        await raw.execute(
            "UPDATE posting SET amount = amount - 1"
            " WHERE account_id = (SELECT id FROM account WHERE code = 'user:ana:coins')"
        )
        await raw.execute("ALTER TABLE posting ENABLE TRIGGER USER")
    finally:
        await raw.close()

    try:
        await coinbooks_ledger.assert_books_balanced()
    except AssertionError as refused:
        # ana's 350 coins are now 351 on the credit side: 1 more credit than debit in COIN
        assert "COIN: debits 350 != credits 351" in str(refused), refused
        assert "invariant" in str(refused), refused
    else:
        raise AssertionError("the corrupted books passed the balance check")
