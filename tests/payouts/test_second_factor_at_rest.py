"""What the payout flow keeps at rest: TOTP secrets sealed to their creator under the secrets
key, payout methods' fingerprints keyed; the key's form and production's refusal of the
development key; and migration 0016 carrying plaintext secrets and unkeyed fingerprints forward
(and the secrets back on a downgrade)."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg
import pyotp
import pytest
from pydantic import ValidationError
from sqlalchemy.engine import URL

from accounting.payouts.methods import PayoutMethodDetails, PayoutMethodKind, check_method
from accounting.payouts.sealing import PayoutKeys, SecretsKeyError
from api.database import downgrade, libpq_url, migrate
from api.settings import DEVELOPMENT_SECRETS_KEY, Settings, get_settings
from tests.conftest import run_sync
from tests.payouts.support import KEYS

OTHER = PayoutKeys.from_secrets_key("b3RoZXItc2VjcmV0cy1rZXktMzItYnl0ZXMtbG9uZyE=")
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_a_sealed_secret_opens_only_for_its_creator_under_its_key() -> None:
    sealed = KEYS.seal("bo", SECRET)

    assert sealed.startswith("aesgcm1:") and SECRET not in sealed
    assert sealed != KEYS.seal("bo", SECRET)  # a fresh nonce each time
    assert KEYS.unseal("bo", sealed) == SECRET
    for creator, keys in (("cy", KEYS), ("bo", OTHER)):
        with pytest.raises(SecretsKeyError):
            keys.unseal(creator, sealed)
    with pytest.raises(SecretsKeyError):
        KEYS.unseal("bo", SECRET)  # never taken as it is


def test_a_fingerprint_is_keyed() -> None:
    details = PayoutMethodDetails(
        PayoutMethodKind.BANK_ACCOUNT,
        "Bo",
        account_number="0001-2345-6789",
        routing_number="021000021",
    )
    mine, other = check_method(details, KEYS), check_method(details, OTHER)
    unkeyed = hashlib.sha256(b"bank_account:021000021:000123456789").hexdigest()

    assert mine.fingerprint == check_method(details, KEYS).fingerprint
    assert mine.fingerprint != other.fingerprint
    assert mine.fingerprint == KEYS.fingerprint_of_digest(unkeyed)
    assert unkeyed not in mine.fingerprint and mine.masked == "****6789"


def production(**overrides: Any) -> Settings:
    given: dict[str, Any] = {
        "environment": "production",
        "database_url": "postgresql://coinbooks@db.internal/coinbooks",
        "jwt_secret": "9f2c7e1a5b3d8f6e0a4c2b7d9e1f3a5c7b9d0e2f4a6c8e0b2d4f6a8c0e2b4d6f",
        **overrides,
    }
    return Settings(_env_file=None, **given)  # type: ignore[call-arg]


def test_production_refuses_the_development_secrets_key_and_any_key_not_32_bytes() -> None:
    with pytest.raises(ValidationError, match="COINBOOKS_SECRETS_KEY"):
        production()
    assert production(secrets_key=OTHER_KEY).secrets_key == OTHER_KEY
    for wrong in ("x", "c2hvcnQ=", DEVELOPMENT_SECRETS_KEY + "AAAA"):
        with pytest.raises(ValidationError, match="secrets key"):
            Settings(_env_file=None, secrets_key=wrong)  # type: ignore[call-arg]


OTHER_KEY = "b3RoZXItc2VjcmV0cy1rZXktMzItYnl0ZXMtbG9uZyE="


async def _sql(url: URL, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def test_migration_0016_seals_secrets_and_keys_fingerprints_already_stored(db_url: URL) -> None:
    """Bo enrolled and registered his bank account before 0016: his secret was stored as it is,
    his account's fingerprint as its plain SHA-256. After the upgrade the secret is sealed (and
    opens to the same secret), the fingerprint keyed (the one a new registration of the same
    account computes), and the database refuses either in the old form. The downgrade opens the
    secret again."""
    keys = PayoutKeys.from_secrets_key(get_settings().secrets_key)
    unkeyed = hashlib.sha256(b"bank_account:021000021:000123456789").hexdigest()
    downgrade(db_url, "0015")
    run_sync(
        lambda: _sql(
            db_url,
            "INSERT INTO creator_totp (creator_id, secret, confirmed_at) VALUES ('bo', $1, now())",
            SECRET,
        )
    )
    run_sync(
        lambda: _sql(
            db_url,
            "INSERT INTO payout_method (creator_id, kind, masked, holder_name, fingerprint)"
            " VALUES ('bo', 'bank_account', '****6789', 'Bo Example', $1)",
            unkeyed,
        )
    )

    migrate(db_url)

    [totp] = run_sync(lambda: _sql(db_url, "SELECT secret FROM creator_totp"))
    [method] = run_sync(lambda: _sql(db_url, "SELECT fingerprint FROM payout_method"))
    assert keys.unseal("bo", totp["secret"]) == SECRET and SECRET not in totp["secret"]
    details = PayoutMethodDetails(
        PayoutMethodKind.BANK_ACCOUNT,
        "Bo",
        account_number="000123456789",
        routing_number="021000021",
    )
    assert method["fingerprint"] == check_method(details, keys).fingerprint
    for refused in (
        "UPDATE creator_totp SET secret = 'JBSWY3DPEHPK3PXP'",
        f"UPDATE payout_method SET fingerprint = '{unkeyed}'",
    ):
        with pytest.raises(asyncpg.CheckViolationError):
            run_sync(lambda refused=refused: _sql(db_url, refused))  # type: ignore[misc]

    downgrade(db_url, "0015")
    [totp] = run_sync(lambda: _sql(db_url, "SELECT secret FROM creator_totp"))
    assert totp["secret"] == SECRET
    assert pyotp.TOTP(totp["secret"]).now().isdigit()
    migrate(db_url)
