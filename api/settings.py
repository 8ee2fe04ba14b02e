"""Settings from the environment (``COINBOOKS_*``, plus ``DATABASE_URL``) or a ``.env`` file."""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from uuid import UUID

import platformdirs
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from accounting.breakage.rules import DEFAULT_AFTER_DAYS, MAX_AFTER_DAYS
from accounting.chargebacks.rules import LossPolicy
from accounting.ledger.chart import MAX_PLATFORM_SHARDS, PROVIDERS
from accounting.ledger.money import FIAT_CODES
from accounting.payouts.sealing import decode_key
from accounting.purchases import account_tokens
from accounting.purchases.repayment import ReceivablePolicy

DEVELOPMENT_JWT_SECRET = "coinbooks-development-key-not-for-production-use"
DEVELOPMENT_WEBHOOK_SECRET = "coinbooks-development-webhook-{provider}"
"""In development, each provider signs with this (``card`` with
``coinbooks-development-webhook-card``) unless ``COINBOOKS_WEBHOOK_SECRETS`` names its own."""
DEVELOPMENT_SECRETS_KEY = "Y29pbmJvb2tzLWRldmVsb3BtZW50LXNlY3JldHMta2U="
"""32 bytes anyone can read (``coinbooks-development-secrets-ke``): production refuses it."""
METRICS_TOKEN = re.compile(r"[!-~]{32,512}")
"""What ``COINBOOKS_METRICS_TOKEN`` may be: long enough not to be guessed, one header word."""


def default_data_dir() -> Path:
    """``.coinbooks`` in the project's checkout when it runs from one (as ``make run`` does),
    else the user's data folder: the same place from whatever folder a command starts."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists():
        return checkout / ".coinbooks"
    return platformdirs.user_data_path("coinbooks")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COINBOOKS_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Environment = Environment.DEVELOPMENT
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "COINBOOKS_DATABASE_URL")
    )
    """Any PostgreSQL; when unset, an embedded PostgreSQL is started under ``data_dir``."""
    data_dir: Path = Field(default_factory=default_data_dir)
    """Where the embedded PostgreSQL keeps its data, always absolute: a relative value is taken
    from the folder the command starts in, and the default does not depend on it."""
    database_name: str = "coinbooks"
    """The database created on the embedded server."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_format: Literal["json", "console"] | None = None
    """``json`` (a JSON object a line) or ``console`` (readable lines); by default JSON in
    production and readable in development."""
    metrics_token: str | None = None
    """When set, ``GET /metrics`` answers only ``Authorization: Bearer <this token>`` (32 to 512
    visible ASCII characters); unset, it answers whoever reaches it."""

    jwt_secret: str = DEVELOPMENT_JWT_SECRET
    """The HS256 key; in production at least 32 bytes (256 bits) of random."""
    jwt_algorithm: Literal["HS256", "RS256", "ES256", "EdDSA"] = "HS256"
    """HS256 (a key shared with whoever signs users in) or an identity provider's RS256, ES256
    or EdDSA, verified with ``jwt_public_key_file`` or ``jwt_jwks_file``."""
    jwt_public_key_file: Path | None = None
    """A PEM public key verifying RS256, ES256 or EdDSA tokens."""
    jwt_jwks_file: Path | None = None
    """A JWKS file (the provider's published keys) verifying them, a token's key by its kid."""
    jwt_jwks_reload_seconds: float = Field(default=30.0, ge=0, le=3600)
    """How often, at most, the JWKS file is looked at again for rotated keys (when a token
    arrives); 0: at every token. The file is read again only when it changed."""
    jwt_private_key_file: Path | None = None
    """A PEM private key with which ``coinbooks token`` issues RS256, ES256 or EdDSA tokens
    (e.g. for tests against a staging service); unset, it refuses to."""
    jwt_issuer: str = "coinbooks"
    jwt_audience: str = "coinbooks"
    token_ttl_minutes: int = Field(default=60 * 24, ge=1)

    functional_currency: str = "USD"
    app_store_commission_percent: int = Field(default=30, ge=0, le=100)
    """30 for the standard app-store rate, 15 for the small-business programmes."""

    unanswered_charge_grace_seconds: int = Field(default=120, ge=0)
    """How long a charge the provider has no record of may still be on its way: until then a
    pending purchase stays pending rather than failing as never charged."""

    diamonds_per_coin: Decimal = Field(default=Decimal(1), gt=0)
    diamond_value_micros: int = Field(default=5_000, ge=1)
    """Cash value of one diamond in functional micro-units (5000 = $0.005)."""
    hold_hours: float = Field(default=7 * 24, ge=0)
    """How long a gift's diamonds stay pending before they become available."""
    gift_batch_max: int = Field(default=256, ge=1, le=4096)
    """Most gifts written in one transaction (they are group-committed)."""
    platform_shards: int = Field(default=1, ge=1, le=MAX_PLATFORM_SHARDS)
    """Sub-accounts each hot platform account (coins spent, diamonds issued, gift and feature
    revenue, promotions) is split into, one chosen per wallet owner; 1: not split."""
    gift_rate_limit: int = Field(default=600, ge=1)
    """Most gifts one sender may send within the rate window (a gift of any quantity is one)."""
    gift_rate_window_seconds: int = Field(default=60, ge=1, le=3600)
    """The sliding window of the gift rate limit: 600 gifts per 60 seconds by default."""
    purchase_daily_coin_limit: int = Field(default=100_000, ge=1)
    """Coins (bonus coins included) one user may buy per calendar day (UTC)."""
    refund_window_days: int = Field(default=14, ge=0, le=365)
    """How long after a purchase its coins may be refunded, if none of them was spent."""
    breakage_after_days: int = Field(default=DEFAULT_AFTER_DAYS, ge=1, le=MAX_AFTER_DAYS)
    """Whole days a wallet's coins and their value go unmoved before a breakage run recognises
    their deferred value as breakage revenue (730: two years)."""

    payout_minimum_minor: int = Field(default=1_000, ge=1)
    """The smallest payout, in minor units of the functional currency (1000 = $10.00)."""
    payout_daily_cap_minor: int = Field(default=100_000, ge=1)
    """Cash a creator may request per calendar day (UTC), in minor units (100000 = $1,000)."""
    payout_method_cooling_off_hours: float = Field(default=72, ge=0, le=24 * 90)
    """How long a newly registered payout method waits before its first payout."""
    secrets_key: str = DEVELOPMENT_SECRETS_KEY
    """32 random bytes, URL-safe base64 (``python -c "import secrets, base64;
    print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"``): seals creators' TOTP
    secrets and keys payout methods' fingerprints. Changing it makes existing secrets unreadable."""
    second_factor_max_failures: int = Field(default=5, ge=1, le=100)
    """Wrong or reused second-factor codes a creator may give within the window before the
    second factor locks."""
    second_factor_failure_window_seconds: int = Field(default=900, ge=1, le=86_400)
    """The window the failures are counted in, from the first of them."""
    second_factor_lockout_seconds: int = Field(default=900, ge=1, le=7 * 86_400)
    """How long a locked second factor refuses every code, even the right one."""

    webhook_secrets: dict[str, str] = Field(default_factory=dict)
    """Each provider's webhook signing secret, as JSON: ``{"card": "whsec_...", "apple": ...}``.
    In production a provider without one is refused as unknown."""
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=86_400)
    """How far a webhook's signature timestamp may be from now (replays older are refused)."""
    chargeback_loss_policy: LossPolicy = LossPolicy.RECEIVABLE
    """Where a chargeback books the value of coins already spent: ``receivable`` (claimed
    from the user) or ``fraud_loss`` (written off)."""
    receivable_policy: ReceivablePolicy = ReceivablePolicy.REPAY_FIRST
    """What a later purchase does with what its buyer owes after a chargeback: ``repay_first``
    (its cash repays the receivable first; the coins granted shrink in proportion) or ``none``."""

    sandbox_payments: bool | None = None
    """Whether the sandbox payment provider charges test tokens (``tok_success``, ...): unset,
    on in development and off in production, which refuses to start with it on."""
    apple_bundle_id: str | None = None
    """The app's bundle id: set (with the roots and products), Apple in-app purchases are
    taken, verified from the App Store's signed transactions (docs/payments.md)."""
    apple_app_apple_id: int | None = None
    """The app's Apple id (App Store Connect); required in the Production environment."""
    apple_environment: str = "Production"
    """The App Store environment whose transactions are taken: ``Production`` or ``Sandbox``
    (``Xcode`` and ``LocalTesting``, which Apple does not sign, in development only)."""
    apple_root_certificates: tuple[Path, ...] = ()
    """Files of Apple's root certificates (DER or PEM), as JSON: ``["AppleRootCA-G3.cer"]``."""
    apple_products: dict[str, str] = Field(default_factory=dict)
    """Each App Store product id and the coin package it grants, as JSON:
    ``{"com.example.coins350": "coins_350"}``."""
    apple_account_token_namespace: UUID = account_tokens.DEFAULT_NAMESPACE
    """The namespace of users' account tokens (``appAccountToken``, a UUIDv5 of the user id):
    set once, before the first purchase; changing it refuses transactions bought under the old
    tokens (docs/payments.md)."""
    apple_require_account_token: bool = True
    """Whether a transaction without an ``appAccountToken`` is refused; false takes those of
    app releases from before the token, for whichever user presents them first."""

    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    read_replica_urls: Annotated[tuple[str, ...], NoDecode] = ()
    """PostgreSQL streaming replicas of the database, comma-separated: read-only queries are
    answered from them once they have replayed the caller's writes (api/replicas.py)."""
    read_replica_max_lag_seconds: float = Field(default=5.0, gt=0, le=3600)
    """A replica further behind the primary than this takes no reads until it catches up."""
    read_replica_check_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often each replica's replay position and lag are checked."""

    max_query_depth: int = Field(default=10, ge=1)
    max_query_tokens: int = Field(default=2000, ge=10)
    max_query_aliases: int = Field(default=15, ge=1)
    max_query_cost: int = Field(default=1000, ge=1)
    """The most a GraphQL operation may cost: each object selected 1, a page's items ``first``
    times, a mutation 10 more (docs/graphql.md, "Query cost")."""
    graphql_cache_size: int = Field(default=1024, ge=1)

    gift_feed_queue_size: int = Field(default=256, ge=1, le=10_000)
    """Live gifts that may wait for one slow subscriber before its subscription is ended."""
    gift_feed_stream_check_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often the live gift feed looks for ended streams, to complete their subscriptions."""
    posting_totals_every_seconds: float = Field(default=60.0, ge=0, le=3600)
    """How often the service brings the postings' totals per hour up to date (the finance
    reports read whole hours from them); 0 leaves it to ``coinbooks summarize-totals``."""
    websocket_allowed_origins: tuple[str, ...] = ()
    """Browser origins, besides the service's own, whose pages may open the GraphQL websocket
    (e.g. ``["https://app.example.com"]``); others are refused at the handshake."""

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("database_url")
    @classmethod
    def _a_postgresql_url(cls, value: str | None) -> str | None:
        try:
            backend = make_url(value).get_backend_name() if value else "postgresql"
        except ArgumentError:
            raise ValueError("not a database URL") from None
        if backend != "postgresql":
            raise ValueError("not a PostgreSQL URL")
        return value

    @field_validator("read_replica_urls", mode="before")
    @classmethod
    def _postgresql_urls(cls, value: object) -> tuple[str, ...]:
        given = value.split(",") if isinstance(value, str) else value
        if not isinstance(given, list | tuple):
            raise ValueError("comma-separated PostgreSQL URLs")
        urls = tuple(str(url).strip() for url in given if str(url).strip())
        for n, url in enumerate(urls, start=1):
            try:
                backend = make_url(url).get_backend_name()
            except ArgumentError:
                raise ValueError(f"the URL number {n} is not a database URL") from None
            if backend != "postgresql":
                raise ValueError(f"the URL number {n} is not a PostgreSQL URL")
        return urls

    @field_validator("functional_currency")
    @classmethod
    def _a_currency_of_the_ledger(cls, value: str) -> str:
        if value not in FIAT_CODES:
            raise ValueError(f"not a currency of the ledger (one of {', '.join(FIAT_CODES)})")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token_is_long(cls, value: str | None) -> str | None:
        if value is not None and not METRICS_TOKEN.fullmatch(value):
            raise ValueError("32 to 512 visible ASCII characters, no spaces")
        return value

    @field_validator("secrets_key")
    @classmethod
    def _secrets_key_is_32_bytes(cls, value: str) -> str:
        decode_key(value)
        return value

    @model_validator(mode="after")
    def _production_is_explicit(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            if self.jwt_algorithm == "HS256" and self.jwt_secret == DEVELOPMENT_JWT_SECRET:
                raise ValueError("production needs COINBOOKS_JWT_SECRET set to a secret key")
            if self.database_url is None:
                raise ValueError("production needs DATABASE_URL")
            if self.secrets_key == DEVELOPMENT_SECRETS_KEY:
                raise ValueError("production needs COINBOOKS_SECRETS_KEY set to a key of its own")
        return self

    @property
    def development(self) -> bool:
        return self.environment is Environment.DEVELOPMENT

    def provider_webhook_secrets(self) -> dict[str, str]:
        """The secret each provider signs its webhooks with."""
        defaults = (
            {p: DEVELOPMENT_WEBHOOK_SECRET.format(provider=p) for p in PROVIDERS}
            if self.development
            else {}
        )
        return {**defaults, **self.webhook_secrets}

    @property
    def sandbox_payments_on(self) -> bool:
        return self.development if self.sandbox_payments is None else self.sandbox_payments

    @model_validator(mode="after")
    def _app_store_is_complete(self) -> Settings:
        if self.apple_environment not in APPLE_ENVIRONMENTS:
            raise ValueError(
                f"COINBOOKS_APPLE_ENVIRONMENT is one of {', '.join(APPLE_ENVIRONMENTS)}"
            )
        if self.apple_bundle_id is None:
            return self
        if not self.apple_root_certificates:
            raise ValueError("COINBOOKS_APPLE_ROOT_CERTIFICATES: name Apple's root certificates")
        for path in self.apple_root_certificates:
            if not path.is_file():
                raise ValueError(f"COINBOOKS_APPLE_ROOT_CERTIFICATES: no file {path}")
        if not self.apple_products:
            raise ValueError("COINBOOKS_APPLE_PRODUCTS: map the app's products to coin packages")
        if self.apple_environment == "Production" and self.apple_app_apple_id is None:
            raise ValueError("COINBOOKS_APPLE_APP_APPLE_ID: required in the Production environment")
        return self

    @model_validator(mode="after")
    def _production_takes_no_shortcuts(self) -> Settings:
        """Production refuses every development shortcut, naming the setting."""
        if self.environment is not Environment.PRODUCTION:
            return self
        if self.sandbox_payments:
            raise ValueError(
                "COINBOOKS_SANDBOX_PAYMENTS: production takes no sandbox payments (its test "
                "tokens grant coins for nothing); unset it"
            )
        for provider, secret in self.webhook_secrets.items():
            if secret == DEVELOPMENT_WEBHOOK_SECRET.format(provider=provider) or (
                secret.startswith(DEVELOPMENT_WEBHOOK_SECRET.partition("{")[0])
            ):
                raise ValueError(
                    f"COINBOOKS_WEBHOOK_SECRETS: {provider}'s is a development secret; production "
                    "needs the provider's own"
                )
        if self.apple_environment != "Production":
            raise ValueError(
                f"COINBOOKS_APPLE_ENVIRONMENT={self.apple_environment}: production takes App Store "
                "transactions of the Production environment only"
            )
        return self


APPLE_ENVIRONMENTS = ("Production", "Sandbox", "Xcode", "LocalTesting")


class SettingsRefused(SystemExit):
    """The service refuses to start: the settings are not valid (one line saying which)."""


def refusal_line(error: ValidationError) -> str:
    """One line naming each setting at fault and why."""
    reasons = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        where = "_".join(str(part) for part in problem["loc"]).upper()
        reasons.append(f"COINBOOKS_{where}: {message}" if where else message)
    return "coinbooks: refusing to start: " + "; ".join(reasons).replace("\n", " ")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsRefused(refusal_line(error)) from None
    except SettingsError as error:  # a setting that is not the JSON it should be
        raise SettingsRefused(f"coinbooks: refusing to start: {error}") from None
