"""The payout second factor, guarded: each TOTP time step a creator used (a code serves once),
each creator's failed codes and lockout (shared by every request, alias and process), TOTP
secrets sealed at rest and payout methods' fingerprints keyed.

Existing rows are carried forward here, with the secrets key the service runs with
(``COINBOOKS_SECRETS_KEY``, read through the service's settings): each plaintext secret is
sealed (AES-256-GCM, bound to its creator), and each unkeyed fingerprint (a SHA-256 of the
method's details) is replaced by its HMAC, which is what a fingerprint is from now on
(``accounting/payouts/sealing.py``). The database then refuses a secret not sealed and a
fingerprint not keyed. Run it with the key the service will use. The downgrade opens the
secrets again; fingerprints stay keyed (the details they came from are not kept), so a method
registered again after a downgrade is kept as a new one.

Create Date: 2026-12-05 12:00:00.000000
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from accounting.payouts.sealing import FINGERPRINT_PREFIX, SEALED_PREFIX, PayoutKeys
from migrations import ops

revision: str = "0016"
down_revision: str | None = "0015"


def _keys() -> PayoutKeys:
    from api.settings import get_settings

    return PayoutKeys.from_secrets_key(get_settings().secrets_key)


def _rewrite(table: str, key: str, column: str, change: Callable[[str, str], str]) -> None:
    """Each row's ``column`` through ``change(row key, value)``; the key is read only if a
    row needs it."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT {key}, {column} FROM {table} ORDER BY {key}")).all()
    for row_key, value in rows:
        bind.execute(
            sa.text(f"UPDATE {table} SET {column} = :value WHERE {key} = :key"),
            {"value": change(str(row_key), value), "key": row_key},
        )


def upgrade() -> None:
    ops.create_table(
        "second_factor_step",
        ops.text("creator_id"),
        ops.bigint("time_step"),
        ops.text("purpose"),
        ops.timestamp("used_at", default=ops.NOW),
        ops.primary_key("creator_id", "time_step"),
    )
    ops.create_table(
        "second_factor_throttle",
        ops.text("creator_id"),
        ops.bigint("failures", default="0"),
        ops.timestamp("window_started_at", "locked_until", null=True),
        ops.checks(failures="failures >= 0"),
        ops.primary_key("creator_id"),
    )
    needs_key = op.get_bind().scalar(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM creator_totp) OR EXISTS (SELECT 1 FROM payout_method)"
        )
    )
    if needs_key:
        keys = _keys()
        _rewrite("creator_totp", "creator_id", "secret", keys.seal)
        _rewrite("payout_method", "id", "fingerprint", lambda _, d: keys.fingerprint_of_digest(d))
    op.create_check_constraint("sealed", "creator_totp", f"secret LIKE '{SEALED_PREFIX}%'")
    op.create_check_constraint(
        "keyed", "payout_method", f"fingerprint LIKE '{FINGERPRINT_PREFIX}%'"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_payout_method_keyed"), "payout_method", type_="check")
    op.drop_constraint(op.f("ck_creator_totp_sealed"), "creator_totp", type_="check")
    if op.get_bind().scalar(sa.text("SELECT EXISTS (SELECT 1 FROM creator_totp)")):
        _rewrite("creator_totp", "creator_id", "secret", _keys().unseal)
    ops.drop_tables("second_factor_throttle", "second_factor_step")
