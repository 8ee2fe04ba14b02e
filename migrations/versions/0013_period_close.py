"""Period close and the journal's seals: each month finance closes (once, in order, after it
ended), with who, when, why, whether it overrode open reconciliation exceptions, and the chain's
head at the close; and each entry's seal, the sha256 chained over its predecessor's
(accounting/close/rules.py). A trigger refuses any entry dated into a closed month. Both tables
are history.

Create Date: 2026-12-05 10:00:00.000000
"""

from migrations import ops

revision: str = "0013"
down_revision: str | None = "0012"

UPGRADE_SQL = ("invariants/close.sql",)
DOWNGRADE_SQL = ("0013_period_close.down.sql",)


def upgrade() -> None:
    ops.create_table(
        "closed_period",
        ops.timestamp("month", "period_end"),
        ops.text("closed_by", "reason"),
        ops.timestamp("closed_at", default=ops.NOW),
        ops.boolean("override", default="false"),
        ops.text("override_reason", null=True),
        ops.bigint("open_exceptions"),
        ops.bigint("head_entry_id", null=True),
        ops.text("head_hash", null=True),
        ops.checks(
            month="month = date_trunc('month', month, 'UTC')"
            " AND period_end = (month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC'",
            override="override = (override_reason IS NOT NULL)"
            " AND (override OR open_exceptions = 0)",
            head="(head_entry_id IS NULL) = (head_hash IS NULL)",
        ),
        ops.primary_key("month"),
    )
    ops.create_table(
        "entry_seal",
        ops.bigint("entry_id"),
        ops.text("hash"),
        ops.timestamp("sealed_at", default=ops.NOW),
        ops.checks(hash="hash ~ '^[0-9a-f]{64}$'"),
        ops.primary_key("entry_id"),
    )
    ops.append_only("closed_period", "entry_seal")
    ops.run_sql(UPGRADE_SQL)


def downgrade() -> None:
    ops.drop_tables("entry_seal", "closed_period")
    ops.run_sql(DOWNGRADE_SQL)
