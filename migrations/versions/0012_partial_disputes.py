"""Partial disputes and partial provider refunds: a purchase may be taken back in pieces, each a
chargeback of its own, up to its price between them (the integrity check adds them up). At most
one of a purchase's chargebacks is a dispute: a charge is disputed once, and its decision is
keyed by the purchase (``chargeback:<purchase>:won``).

Create Date: 2026-12-05 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"


def upgrade() -> None:
    op.drop_constraint("uq_chargeback_purchase_id", "chargeback", type_="unique")
    op.create_index("ix_chargeback_purchase", "chargeback", ["purchase_id", "id"])
    op.create_index(
        "uq_chargeback_dispute",
        "chargeback",
        ["purchase_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'dispute'"),
    )


def downgrade() -> None:
    """Refused by the database while a purchase has more than one chargeback."""
    op.drop_index("uq_chargeback_dispute", table_name="chargeback")
    op.drop_index("ix_chargeback_purchase", table_name="chargeback")
    op.create_unique_constraint("uq_chargeback_purchase_id", "chargeback", ["purchase_id"])
