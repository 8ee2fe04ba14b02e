"""Production takes no development shortcut: no sandbox payment provider (no test token grants
a coin, over HTTP, for any channel and provider), no development secret, no App Store
environment but Production; each configured shortcut refuses the start with one line naming
its setting."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.tables import JournalEntryRow
from accounting.policy.access import Role
from accounting.purchases.tables import PurchaseRow, SandboxPaymentRow
from api.app import create_app
from api.auth import issue_token
from api.settings import Settings, refusal_line
from tests.chargebacks.deliveries import deliver

PRODUCTION_SECRET = "production-signing-key-0123456789abcdef-0123456789abcdef"
PRODUCTION_SECRETS_KEY = "cHJvZHVjdGlvbi1zZWNyZXRzLWtleS0wMTIzNDU2Nzg="

PURCHASE_COINS = """
mutation PurchaseCoins($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) {
    purchase { status coins }
    wallet { coins }
    errors { code field }
  }
}
"""


def production(db_url: URL, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db_url.render_as_string(hide_password=False),
        environment="production",  # type: ignore[arg-type]
        jwt_secret=PRODUCTION_SECRET,
        secrets_key=PRODUCTION_SECRETS_KEY,
        **overrides,
    )


@asynccontextmanager
async def http_to(settings: Settings, db_url: URL) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, db_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test") as http:
        yield http
    await app.state.engine.dispose()


async def count(sessions: async_sessionmaker[AsyncSession], table: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


SANDBOX_TRIES = [
    ("WEB", "CARD", "tok_success"),
    ("WEB", "PAYPAL", "tok_success_1"),
    ("WEB", "MOBILE_WALLET", "tok_timeout"),
    ("IOS", "APPLE", "tok_success"),
    ("ANDROID", "GOOGLE", "tok_success"),
]


@pytest.mark.parametrize(("channel", "provider", "payment_token"), SANDBOX_TRIES)
async def test_production_grants_nothing_for_a_sandbox_token(
    db_url: URL,
    sessions: async_sessionmaker[AsyncSession],
    channel: str,
    provider: str,
    payment_token: str,
) -> None:
    settings = production(db_url)
    bearer = issue_token(settings, "ana", [Role.VIEWER])
    variables = {
        "input": {
            "idempotencyKey": "production-key-0001",
            "currency": "USD",
            "channel": channel,
            "provider": provider,
            "paymentToken": payment_token,
            "packageCode": "coins_17500",
        }
    }

    async with http_to(settings, db_url) as http:
        response = await http.post(
            "/graphql",
            json={"query": PURCHASE_COINS, "variables": variables},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        wallet = await http.post(
            "/graphql",
            json={"query": "query { wallet { coins } }"},
            headers={"Authorization": f"Bearer {bearer}"},
        )

    assert response.status_code == 200
    assert response.json()["data"] == {
        "purchaseCoins": {
            "purchase": None,
            "wallet": None,
            "errors": [{"code": "PROVIDER_NOT_AVAILABLE", "field": "provider"}],
        }
    }
    assert wallet.json()["data"] == {"wallet": {"coins": "0"}}
    # Nothing written: no purchase recorded, nothing asked of a sandbox, nothing posted.
    assert await count(sessions, PurchaseRow) == 0
    assert await count(sessions, SandboxPaymentRow) == 0
    assert await count(sessions, JournalEntryRow) == 0


async def test_development_still_has_the_sandbox(gql: Any) -> None:
    variables = {
        "input": {
            "idempotencyKey": "development-key-0001",
            "currency": "USD",
            "channel": "WEB",
            "provider": "CARD",
            "paymentToken": "tok_success",
            "packageCode": "coins_350",
        }
    }

    reply = await gql(PURCHASE_COINS, variables, user="ana")

    assert reply["data"]["purchaseCoins"] == {
        "purchase": {"status": "COMPLETED", "coins": "350"},
        "wallet": {"coins": "350"},
        "errors": [],
    }


async def test_production_refuses_a_delivery_signed_with_a_development_secret(
    db_url: URL, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = {"id": "evt_dev", "type": "charge.refunded", "data": {"object": {}}}

    async with http_to(production(db_url), db_url) as http:
        response = await deliver(http, "card", event)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "UNKNOWN_PROVIDER"


SHORTCUTS = [
    ({"sandbox_payments": True}, "COINBOOKS_SANDBOX_PAYMENTS"),
    ({"webhook_secrets": {"card": "coinbooks-development-webhook-card"}}, "WEBHOOK_SECRETS"),
    ({"webhook_secrets": {"apple": "coinbooks-development-webhook-card"}}, "WEBHOOK_SECRETS"),
    ({"apple_environment": "Sandbox"}, "COINBOOKS_APPLE_ENVIRONMENT=Sandbox"),
    ({"apple_environment": "Xcode"}, "COINBOOKS_APPLE_ENVIRONMENT=Xcode"),
    ({"apple_environment": "LocalTesting"}, "COINBOOKS_APPLE_ENVIRONMENT=LocalTesting"),
]


@pytest.mark.parametrize(("shortcut", "setting"), SHORTCUTS, ids=[s[1] for s in SHORTCUTS])
def test_production_settings_refuse_each_development_shortcut(
    db_url: URL, shortcut: dict[str, Any], setting: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        production(db_url, **shortcut)

    line = refusal_line(refused.value)
    assert "\n" not in line
    assert line.startswith("coinbooks: refusing to start: ")
    assert setting in line


def test_development_may_take_the_sandbox_and_apples_sandbox(db_url: URL) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db_url.render_as_string(hide_password=False),
        apple_environment="Sandbox",
    )

    assert settings.sandbox_payments_on
    assert not production(db_url).sandbox_payments_on
    assert not production(db_url, sandbox_payments=False).sandbox_payments_on


def test_the_service_refuses_to_start_in_production_with_the_sandbox(tmp_path: Path) -> None:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("COINBOOKS_")
    }
    environment.update(
        COINBOOKS_ENVIRONMENT="production",
        DATABASE_URL="postgresql://coinbooks@127.0.0.1:9/coinbooks",
        COINBOOKS_JWT_SECRET=PRODUCTION_SECRET,
        COINBOOKS_SECRETS_KEY=PRODUCTION_SECRETS_KEY,
        COINBOOKS_SANDBOX_PAYMENTS="true",
    )

    started = subprocess.run(
        [str(Path(sys.executable).parent / "coinbooks"), "serve"],
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert started.returncode == 2  # a setting that is not valid (api/refusals.py)
    assert started.stdout == ""
    assert started.stderr.splitlines() == [
        "coinbooks: COINBOOKS_SANDBOX_PAYMENTS: production takes no sandbox "
        "payments (its test tokens grant coins for nothing); unset it"
    ]
