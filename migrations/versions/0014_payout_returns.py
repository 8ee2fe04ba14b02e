"""A payout returned after it was paid (the bank bounces it days later): ``returned`` joins a
payout's statuses and its events' phases, and the payouts' guards allow paid -> returned
(``invariants/payouts.sql``; 0005's version is ``superseded/0005_payouts.sql``). Its entry puts the cash back in the bank, owes it to
the creator again and makes the diamonds available (accounting/payouts/rules.py).

Create Date: 2026-12-05 11:00:00.000000
"""

from alembic import op

from migrations import ops

revision: str = "0014"
down_revision: str | None = "0013"

UPGRADE_SQL = ("invariants/payouts.sql",)
DOWNGRADE_SQL = ("superseded/0005_payouts.sql",)

_OLD = "'requested', 'rejected', 'sent', 'paid', 'failed'"
_NEW = f"{_OLD}, 'returned'"


def _recheck(values: str) -> None:
    op.drop_constraint(op.f("ck_payout_status"), "payout", type_="check")
    op.create_check_constraint("status", "payout", f"status IN ({values})")
    op.drop_constraint(op.f("ck_payout_event_phase"), "payout_event", type_="check")
    op.create_check_constraint("phase", "payout_event", f"phase IN ({values})")


def upgrade() -> None:
    _recheck(_NEW)
    ops.run_sql(UPGRADE_SQL)


def downgrade() -> None:
    """Refused by the database while a payout is returned."""
    _recheck(_OLD)
    ops.run_sql(DOWNGRADE_SQL)
