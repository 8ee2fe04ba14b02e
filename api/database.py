"""Where the database is, how to reach it, and how to bring its schema up to date."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

import migrations
from accounting.gifts.posting import GiftRateLimit
from accounting.gifts.rules import CoinRates
from accounting.gifts.service import GiftService
from accounting.ledger.chart import PROVIDERS
from accounting.payouts.sealing import PayoutKeys
from accounting.payouts.second_factor import SecondFactor, Throttle
from accounting.payouts.service import PayoutPolicy, PayoutService
from accounting.purchases.account_tokens import AccountTokens
from accounting.purchases.fees import fee_schedules
from accounting.purchases.payments import NoGateway, ProviderGateways
from accounting.purchases.payments.app_store import AppStoreConfig, AppStoreVerifier
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseService
from accounting.purchases.store import StorePurchases
from api.settings import Settings

log = logging.getLogger(__name__)


def async_url(url: str | URL) -> URL:
    """The SQLAlchemy asyncpg form of any PostgreSQL URL."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql+asyncpg")


def libpq_url(url: str | URL) -> str:
    """The plain ``postgresql://`` form, for asyncpg and the PostgreSQL command-line tools."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str | URL, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
        connect_args={"server_settings": {"application_name": "coinbooks"}},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for reads that are one statement (so from one instant): autocommit, so such a
    read is one round trip, without a BEGIN before it and a ROLLBACK after it."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


def gift_service(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> GiftService:
    """Gifts and unlocks at the configured rates and hold."""
    return GiftService(
        sessions,
        functional_currency=settings.functional_currency,
        rates=CoinRates(settings.diamonds_per_coin, settings.diamond_value_micros),
        hold=timedelta(hours=settings.hold_hours),
        max_batch=settings.gift_batch_max,
        rate_limit=GiftRateLimit(
            settings.gift_rate_limit, timedelta(seconds=settings.gift_rate_window_seconds)
        ),
    )


def payout_service(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> PayoutService:
    """Payouts with the configured minimum, daily cap, cooling-off and second factor."""
    return PayoutService(
        sessions,
        second_factor=second_factor(settings),
        functional_currency=settings.functional_currency,
        policy=PayoutPolicy(
            minimum_minor=settings.payout_minimum_minor,
            daily_cap_minor=settings.payout_daily_cap_minor,
            method_cooling_off=timedelta(hours=settings.payout_method_cooling_off_hours),
        ),
    )


def second_factor(settings: Settings) -> SecondFactor:
    """Creators' second factors, sealed with the secrets key, throttled as configured."""
    return SecondFactor(
        PayoutKeys.from_secrets_key(settings.secrets_key),
        Throttle(
            max_failures=settings.second_factor_max_failures,
            window=timedelta(seconds=settings.second_factor_failure_window_seconds),
            lockout=timedelta(seconds=settings.second_factor_lockout_seconds),
        ),
    )


def purchase_service(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> PurchaseService:
    """Purchases as configured: the sandbox provider where it is on (development), none
    where it is off (production: then no payment token grants anything), the fee schedules,
    the grace period."""
    stores = {"apple": NoGateway()} if settings.apple_bundle_id else {}
    gateway = ProviderGateways(
        stores, SandboxGateway(sessions) if settings.sandbox_payments_on else NoGateway()
    )
    service = PurchaseService(
        sessions,
        gateway,
        functional_currency=settings.functional_currency,
        fees=fee_schedules(settings.app_store_commission_percent),
        unanswered_grace=timedelta(seconds=settings.unanswered_charge_grace_seconds),
        daily_coin_limit=settings.purchase_daily_coin_limit,
        receivable_policy=settings.receivable_policy,
    )
    sandboxed = PROVIDERS if settings.sandbox_payments_on else ()
    service.token_providers = frozenset(p for p in sandboxed if p not in stores)
    return service


def app_store_verifier(settings: Settings) -> AppStoreVerifier | None:
    """Apple in-app purchases, verified offline against the configured roots; None when Apple
    is not configured."""
    if settings.apple_bundle_id is None:
        return None
    return AppStoreVerifier(
        AppStoreConfig(
            root_certificates=tuple(
                der_certificate(path.read_bytes()) for path in settings.apple_root_certificates
            ),
            bundle_id=settings.apple_bundle_id,
            environment=settings.apple_environment,
            app_apple_id=settings.apple_app_apple_id,
            products=settings.apple_products,
        )
    )


def der_certificate(data: bytes) -> bytes:
    """A certificate file's DER bytes, whether the file is DER or PEM."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return data


def store_purchases(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> StorePurchases:
    """Purchases proven by a store's signed transaction: Apple's, when configured."""
    apple = app_store_verifier(settings)
    return StorePurchases(
        sessions,
        purchases,
        {"apple": apple} if apple is not None else {},
        account_tokens(settings),
    )


def account_tokens(settings: Settings) -> AccountTokens:
    """Whose a store transaction is: its ``appAccountToken``, required unless turned off."""
    return AccountTokens(
        namespace=settings.apple_account_token_namespace,
        required=settings.apple_require_account_token,
    )


async def ensure_database(server_url: str | URL, name: str) -> URL:
    """Create database ``name`` on the server if it does not exist; return its URL."""
    server = make_url(server_url) if isinstance(server_url, str) else server_url
    conn = await asyncpg.connect(libpq_url(server))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
            log.info("created database %s", name)
    finally:
        await conn.close()
    return server.set(database=name)


MIGRATION_LOCK = int.from_bytes(b"coinbook")
"""The advisory lock every migration run holds on its database (one run at a time)."""


def alembic_config(url: str | URL) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = async_url(url)
    config.attributes["advisory_lock"] = MIGRATION_LOCK
    return config


def migrate(url: str | URL, revision: str = "head") -> None:
    """Apply migrations up to ``revision``, holding ``MIGRATION_LOCK``: several processes may
    migrate one database at once (each service of a deployment at its start); the first does
    the work, the others wait for it and find nothing left. Runs its own event loop: call it
    outside one."""
    command.upgrade(alembic_config(url), revision)


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration of this version of Coinbooks."""
    head = ScriptDirectory(str(Path(migrations.__file__).parent)).get_current_head()
    assert head is not None, "the migrations have one head"
    return head


async def current_revision(connection: AsyncConnection) -> str | None:
    """The migration the database is at; None before the first."""
    if await connection.scalar(text("SELECT to_regclass('alembic_version')")) is None:
        return None
    revision: str | None = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    return revision


def migration_status(url: str | URL) -> tuple[str | None, str]:
    """The database's migration and the head. Runs its own event loop."""

    async def read() -> str | None:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            async with engine.connect() as connection:
                return await current_revision(connection)
        finally:
            await engine.dispose()

    return asyncio.run(read()), head_revision()


def downgrade(url: str | URL, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


@contextmanager
def database_url_for(settings: Settings) -> Iterator[URL]:
    """The database the service uses: ``DATABASE_URL`` as given, or a database on the embedded
    server (created on first use). Call it outside an event loop.

    The embedded server runs for as long as the context is open; its data stays in
    ``settings.data_dir`` across restarts.
    """
    if settings.database_url:
        yield make_url(settings.database_url)
        return
    from api.local_postgres import LocalPostgres

    with LocalPostgres(settings.data_dir / "pgdata") as server:
        yield asyncio.run(ensure_database(server.url(), settings.database_name))
