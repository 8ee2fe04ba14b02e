"""Receivables repaid from a later purchase: a purchase records what of its cash repaid the
buyer's receivable (``receivable_repaid_micros``, in the functional currency) and the coins it
withheld for it (``coins_withheld``); both are zero unless the purchase completed, never
negative, and a purchase withholds at most the coins it bought (accounting/purchases/repayment.py).

Create Date: 2026-12-05 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"


def upgrade() -> None:
    op.add_column(
        "purchase",
        sa.Column("receivable_repaid_micros", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "purchase",
        sa.Column("coins_withheld", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        "repayment",
        "purchase",
        "receivable_repaid_micros >= 0 AND coins_withheld >= 0"
        " AND coins_withheld <= coins + bonus_coins"
        " AND (status = 'completed' OR (receivable_repaid_micros = 0 AND coins_withheld = 0))",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_purchase_repayment"), "purchase", type_="check")
    op.drop_column("purchase", "coins_withheld")
    op.drop_column("purchase", "receivable_repaid_micros")
