"""``coinbooks check`` and ``coinbooks trial-balance`` as a scheduler runs them: ``--json`` on
standard output, and the exit code says which case it is: 0 the books are clean, 1 a violation,
2 it could not run (here: a database never migrated), with one line saying why.

The book: Ana buys 350 coins for $4.99 by card. The network keeps 2.9% + 30c of 4,990,000
micro-units = 144,710 + 300,000 = 444,710, rounded to the cent 440,000; card clearing holds
4,990,000 - 440,000 = 4,550,000 ($4.55), the processor fee is 440,000 ($0.44), and Ana's coins
are worth 4,990,000 ($4.99) of deferred revenue. One entry of six postings: coins issued +350,
Ana's coins -350, card clearing +4.99, Ana's coins' value -4.99, the fee +0.44 and card
clearing -0.44. USD: debits 4.55 + 0.44 = 4.99, credits 4.99. Coins: platform:coins:issued
debit 350, user:ana:coins credit 350.

Corrupted behind the triggers, Ana's coin posting is -351: coins debit 350, credit 351."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import URL

from accounting.integrity import CHECKS
from accounting.purchases.service import PurchaseRequest, PurchaseService
from api.database import head_revision, libpq_url

COINBOOKS = str(Path(sys.executable).parent / "coinbooks")
ANA_COINS = "user:ana:coins"


async def coinbooks(url: URL, *command: str) -> tuple[int, str, str]:
    """The command in a process of its own: exit code, standard output, standard error."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COINBOOKS_") and k != "DATABASE_URL"
    }
    environment["DATABASE_URL"] = url.render_as_string(hide_password=False)
    process = await asyncio.create_subprocess_exec(
        COINBOOKS,
        *command,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def buy_350_coins(purchases: PurchaseService) -> int:
    """Ana's purchase; its entry's id."""
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            user_id="ana",
            idempotency_key="key-cli-check-1",
            currency="USD",
            channel="web",
            provider="card",
            payment_token="tok_success",
            package_code="coins_350",
        )
    )
    assert bought.purchase.entry_id is not None
    return bought.purchase.entry_id


def totals(balance: dict[str, Any]) -> dict[str, tuple[str, str, bool]]:
    return {t["commodity"]: (t["debit"], t["credit"], t["balanced"]) for t in balance["totals"]}


async def test_clean_books_exit_0_with_json(purchases: PurchaseService, db_url: URL) -> None:
    await buy_350_coins(purchases)

    code, out, err = await coinbooks(db_url, "check", "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == [name for _, name, _ in CHECKS]
    assert all(c["violations"] == [] for c in report["checks"])
    assert (report["entries"], report["postings"]) == (1, 6)

    code, out, err = await coinbooks(db_url, "trial-balance", "--json")
    assert (code, err) == (0, "")
    balance = json.loads(out)
    assert balance["balanced"] is True
    assert totals(balance) == {"COIN": ("350", "350", True), "USD": ("4.99", "4.99", True)}
    lines = {line["account"]: line for line in balance["lines"]}
    assert lines["platform:clearing:card:USD"] == {
        "account": "platform:clearing:card:USD",
        "type": "asset",
        "commodity": "USD",
        "debit": "4.55",
        "credit": "0.00",
    }
    assert (lines[ANA_COINS]["debit"], lines[ANA_COINS]["credit"]) == ("0", "350")


@pytest.fixture
async def raw(db_url: URL) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(libpq_url(db_url))
    try:
        yield connection
    finally:
        await connection.close()


async def test_books_corrupted_behind_the_triggers_exit_1_naming_the_check(
    purchases: PurchaseService, db_url: URL, raw: asyncpg.Connection
) -> None:
    entry_id = await buy_350_coins(purchases)
    await raw.execute("ALTER TABLE posting DISABLE TRIGGER USER")
    await raw.execute(
        "UPDATE posting SET amount = amount - 1 WHERE entry_id = $1"
        " AND account_id = (SELECT id FROM account WHERE code = $2)",
        entry_id,
        ANA_COINS,
    )
    await raw.execute("ALTER TABLE posting ENABLE TRIGGER USER")

    code, out, _ = await coinbooks(db_url, "check", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    found = {c["name"]: c["violations"] for c in report["checks"] if c["violations"]}
    assert found["entry_balances_per_commodity"] == [f"entry {entry_id}: COIN postings sum to -1"]
    assert found["trial_balance_per_commodity"] == ["all COIN postings sum to -1"]

    code, out, _ = await coinbooks(db_url, "check")
    assert code == 1
    assert "entry_balances_per_commodity" in out

    code, out, _ = await coinbooks(db_url, "trial-balance", "--json")
    assert code == 1
    balance = json.loads(out)
    assert balance["balanced"] is False
    assert totals(balance) == {"COIN": ("350", "351", False), "USD": ("4.99", "4.99", True)}


@pytest.fixture
async def unmigrated(server_url: URL) -> AsyncIterator[URL]:
    """An empty database no migration has run on."""
    name = f"coinbooks_unmigrated_{os.getpid()}"
    admin = await asyncpg.connect(libpq_url(server_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield server_url.set(database=name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.mark.parametrize("command", [["check", "--json"], ["check"], ["trial-balance", "--json"]])
async def test_an_unmigrated_database_exits_2_with_one_line(
    unmigrated: URL, command: list[str]
) -> None:
    code, out, err = await coinbooks(unmigrated, *command)
    assert code == 2
    assert out == ""
    host = unmigrated.query.get("host") or unmigrated.host or "localhost"
    assert err.splitlines() == [
        f"coinbooks: database {unmigrated.database} at {host} is at migration none,"
        f" not the head {head_revision()}: run `coinbooks migrate`"
    ]


async def test_a_terminal_sees_the_progress_and_standard_output_stays_the_data(
    db_url: URL,
) -> None:
    """Standard error a terminal: the check draws its progress there, and the JSON on standard
    output is untouched (the other tests, a pipe for standard error, see none: ``err == ""``)."""
    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environment.update(DATABASE_URL=db_url.render_as_string(hide_password=False), TERM="xterm")
    process = await asyncio.create_subprocess_exec(
        COINBOOKS,
        "check",
        "--json",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    drawn = b""
    with contextlib.suppress(OSError):  # the terminal's other end closed: all is read
        while chunk := os.read(controller, 65536):
            drawn += chunk
    os.close(controller)
    assert process.returncode == 0
    assert json.loads(out)["ok"] is True
    assert b"Checking" in drawn
