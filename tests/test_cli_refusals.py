"""A setting that is not right ends every ``coinbooks`` command with one line on stderr naming
the variable, and exit code 2: the real command, run as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

COINBOOKS = str(Path(sys.executable).parent / "coinbooks")
ROOT = Path(__file__).parents[1]
NOTHING_LISTENS = "postgresql://coinbooks:secret@127.0.0.1:1/coinbooks"


def _run(folder: Path, *command: str, **settings: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COINBOOKS_") and k != "DATABASE_URL"
    }
    environment.update(COINBOOKS_DATA_DIR=str(folder / "data"), PYTHONPATH=str(ROOT))
    environment.update(settings)
    return subprocess.run(
        [COINBOOKS, *command],
        cwd=folder,  # no .env of the checkout
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line_and_2(ran: subprocess.CompletedProcess[str], line: str) -> None:
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.splitlines() == [line]
    assert "Traceback" not in ran.stdout + ran.stderr


BAD_SETTINGS = [
    (
        {"COINBOOKS_PORT": "abc"},
        "coinbooks: COINBOOKS_PORT: input should be a valid integer, unable to parse string "
        "as an integer: 'abc'",
    ),
    (
        {"COINBOOKS_FUNCTIONAL_CURRENCY": "XYZ"},
        "coinbooks: COINBOOKS_FUNCTIONAL_CURRENCY: not a currency of the ledger (one of USD, "
        "EUR, GBP, BRL, MXN, CAD, AUD, JPY, KRW): 'XYZ'",
    ),
    (
        {"COINBOOKS_READ_REPLICA_URLS": "postgresql://r1/coinbooks,mysql://r2/coinbooks"},
        "coinbooks: COINBOOKS_READ_REPLICA_URLS: the URL number 2 is not a PostgreSQL URL",
    ),
    (
        {"COINBOOKS_PLATFORM_SHARDS": "0"},
        "coinbooks: COINBOOKS_PLATFORM_SHARDS: input should be greater than or equal to 1: '0'",
    ),
    (
        {"COINBOOKS_HOLD_HOURS": "-1"},
        "coinbooks: COINBOOKS_HOLD_HOURS: input should be greater than or equal to 0: '-1'",
    ),
    (
        {"COINBOOKS_ENVIRONMENT": "prod"},
        "coinbooks: COINBOOKS_ENVIRONMENT: input should be 'development' or 'production': 'prod'",
    ),
    (
        {"COINBOOKS_WEBHOOK_SECRETS": "{card"},
        "coinbooks: COINBOOKS_WEBHOOK_SECRETS: not valid JSON",
    ),
    (
        {"COINBOOKS_APPLE_ACCOUNT_TOKEN_NAMESPACE": "not-a-uuid"},
        "coinbooks: COINBOOKS_APPLE_ACCOUNT_TOKEN_NAMESPACE: input should be a valid UUID, "
        "invalid character: found `n` at 0: 'not-a-uuid'",
    ),
    (
        {"COINBOOKS_APPLE_REQUIRE_ACCOUNT_TOKEN": "maybe"},
        "coinbooks: COINBOOKS_APPLE_REQUIRE_ACCOUNT_TOKEN: input should be a valid boolean, "
        "unable to interpret input: 'maybe'",
    ),
    (  # the value is not repeated: it is a secret
        {"COINBOOKS_METRICS_TOKEN": "short secret"},
        "coinbooks: COINBOOKS_METRICS_TOKEN: 32 to 512 visible ASCII characters, no spaces",
    ),
    ({"DATABASE_URL": "not a url"}, "coinbooks: DATABASE_URL: not a database URL"),
    (  # the value is not repeated: it may hold a password
        {"DATABASE_URL": "mysql://ana:secret@db/x"},
        "coinbooks: DATABASE_URL: not a PostgreSQL URL",
    ),
]
COMMANDS = [
    ["serve"],
    ["migrate"],
    ["check"],
    ["trial-balance"],
    ["token", "--user", "ana", "--role", "viewer"],
    ["breakage", "run"],
]


@pytest.mark.parametrize(("settings", "line"), BAD_SETTINGS, ids=lambda v: str(v)[:30])
def test_a_bad_setting_is_one_line_naming_it(
    tmp_path: Path, settings: dict[str, str], line: str
) -> None:
    _one_line_and_2(_run(tmp_path, "serve", **settings), line)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_bad_setting_alike(tmp_path: Path, command: list[str]) -> None:
    """The unknown currency is refused before anything starts: no banner, no database."""
    ran = _run(tmp_path, *command, COINBOOKS_FUNCTIONAL_CURRENCY="ZZZ")
    _one_line_and_2(ran, BAD_SETTINGS[1][1].replace("XYZ", "ZZZ"))
    assert ran.stdout == ""
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["check"]], ids=" ".join)
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    ran = _run(tmp_path, *command, DATABASE_URL=NOTHING_LISTENS)
    _one_line_and_2(
        ran,
        "coinbooks: DATABASE_URL: cannot connect to postgresql://coinbooks:***@127.0.0.1:1/"
        "coinbooks: [Errno 111] Connect call failed ('127.0.0.1', 1)",
    )


def test_an_unknown_host_is_one_line(tmp_path: Path) -> None:
    ran = _run(tmp_path, "migrate", DATABASE_URL="postgresql://u:p@no-such-host.invalid/x")
    assert ran.returncode == 2
    [line] = ran.stderr.splitlines()
    assert line.startswith(
        "coinbooks: DATABASE_URL: cannot connect to postgresql://u:***@no-such-host.invalid/x: "
    )


def test_a_missing_database_and_a_wrong_password_are_one_line(
    tmp_path: Path, server_url: URL
) -> None:
    missing = server_url.set(database="coinbooks_no_such_database")
    ran = _run(tmp_path, "migrate", DATABASE_URL=missing.render_as_string(hide_password=False))
    shown = missing.render_as_string(hide_password=True)
    _one_line_and_2(
        ran,
        f'coinbooks: DATABASE_URL: cannot connect to {shown}: database "coinbooks_no_such_'
        'database" does not exist',
    )

    stranger = server_url.set(username="coinbooks_no_such_role", password="wrong")
    ran = _run(tmp_path, "check", DATABASE_URL=stranger.render_as_string(hide_password=False))
    assert ran.returncode == 2
    [line] = ran.stderr.splitlines()
    assert line.startswith(f"coinbooks: DATABASE_URL: cannot connect to {stranger!r}: ")
    assert "coinbooks_no_such_role" in line
