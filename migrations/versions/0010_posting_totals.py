"""Stored totals of the postings per hour, by account kind, commodity and entry kind (the flow),
and the watermark below which every posting is in them: the roll-forwards and the balance sheet
at a past instant read whole hours from here and only the edges from the postings
(accounting/reads/period_totals.py).

Create Date: 2026-12-05 06:00:00.000000
"""

from migrations import ops

revision: str = "0010"
down_revision: str | None = "0009"


def upgrade() -> None:
    ops.create_table(
        "posting_hour_total",
        ops.timestamp("hour"),
        ops.text("account_kind", "commodity", "flow", "account_type"),
        ops.smallint("normal_sign"),
        ops.bigint("amount", "postings"),
        ops.checks(hour="hour = date_trunc('hour', hour, 'UTC')", postings="postings > 0"),
        ops.primary_key("hour", "account_kind", "commodity", "flow"),
    )
    # One row at most (its key can only be true), written by the first summary and moved
    # forward by each: every posting dated before summarized_until is in the totals.
    ops.create_table(
        "posting_total_watermark",
        ops.boolean("id", default="true"),
        ops.timestamp("summarized_until"),
        ops.checks(one_row="id"),
        ops.primary_key("id"),
    )
    ops.append_only("posting_hour_total")


def downgrade() -> None:
    ops.drop_tables("posting_total_watermark", "posting_hour_total")
