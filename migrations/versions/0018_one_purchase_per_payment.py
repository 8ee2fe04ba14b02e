"""One payment grants once, held by the database: a provider's reference for a payment (the
sandbox's charge, Apple's transaction id) names at most one purchase, whatever its buyer or
idempotency key (a unique index on the purchase's provider and provider reference, where it has
one). The App Store path also locks the transaction id before it looks (accounting/purchases/
store.py); the index is what holds if any path forgets.

Create Date: 2026-12-05 13:00:00.000000
"""

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"


def upgrade() -> None:
    op.create_index(
        "ux_purchase_provider_reference",
        "purchase",
        ["provider", "provider_reference"],
        unique=True,
        postgresql_where="provider_reference IS NOT NULL",
    )


def downgrade() -> None:
    op.drop_index("ux_purchase_provider_reference", table_name="purchase")
