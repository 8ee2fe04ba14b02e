"""Refused webhook deliveries counted, not written one by one: ``webhook_refusal`` holds one row
per source (the provider, or ``unknown`` for an address that names none), reason and minute,
with how many deliveries and bytes were refused, when the first and last came, and the first's
sample (detail, body's SHA-256 and size, client). A flood of junk deliveries writes a bounded
number of rows: at most one per source, reason and minute. The rows of ``webhook_rejection``
are counted into it, and the table goes.

A count row only grows: the database refuses a change to its key, its sample or its first
delivery, a count or a last delivery that goes back, and any DELETE or TRUNCATE
(``invariants/webhook_refusals.sql``).

Create Date: 2026-12-05 10:00:00.000000
"""

from alembic import op

from migrations import ops

revision: str = "0017"
down_revision: str | None = "0016"

UPGRADE_SQL = ("invariants/webhook_refusals.sql",)
DOWNGRADE_SQL = ("0017_refused_delivery_counts.down.sql",)


def upgrade() -> None:
    ops.create_table(
        "webhook_refusal",
        ops.serial(),
        ops.text("source", "reason"),
        ops.timestamp("window_start"),
        ops.bigint("deliveries", "body_bytes"),
        ops.timestamp("first_seen_at", "last_seen_at"),
        ops.text("sample_provider", "sample_detail", "sample_body_sha256"),
        ops.bigint("sample_body_bytes"),
        ops.text("sample_client", null=True),
        ops.checks(
            counts="deliveries > 0 AND body_bytes >= 0 AND sample_body_bytes >= 0",
            seen="window_start <= first_seen_at AND first_seen_at <= last_seen_at",
        ),
        ops.primary_key("id"),
        ops.unique("source", "reason", "window_start"),
    )
    op.execute(
        """
        INSERT INTO webhook_refusal (source, reason, window_start, deliveries, body_bytes,
            first_seen_at, last_seen_at, sample_provider, sample_detail, sample_body_sha256,
            sample_body_bytes, sample_client)
        SELECT DISTINCT ON (source, reason, window_start)
            source, reason, window_start,
            count(*) OVER w, sum(body_bytes) OVER w, min(received_at) OVER w,
            max(received_at) OVER w, provider, detail, body_sha256, body_bytes, client
        FROM (
            SELECT r.*,
                CASE WHEN provider IN ('card', 'paypal', 'mobile_wallet', 'apple', 'google')
                     THEN provider ELSE 'unknown' END AS source,
                date_trunc('minute', received_at) AS window_start
            FROM webhook_rejection r
        ) refused
        WINDOW w AS (PARTITION BY source, reason, window_start)
        ORDER BY source, reason, window_start, received_at, id
        """
    )
    ops.run_sql(UPGRADE_SQL)
    ops.drop_tables("webhook_rejection")


def downgrade() -> None:
    """Each count row becomes one refused delivery again (its sample, at its first delivery):
    the counts are lost."""
    ops.create_table(
        "webhook_rejection",
        ops.serial(),
        ops.text("provider", "reason"),
        ops.text("detail", default=""),
        ops.text("body_sha256"),
        ops.bigint("body_bytes"),
        ops.text("client", null=True),
        ops.timestamp("received_at", default=ops.NOW),
        ops.primary_key("id"),
    )
    op.execute(
        """
        INSERT INTO webhook_rejection (provider, reason, detail, body_sha256, body_bytes,
            client, received_at)
        SELECT sample_provider, reason, sample_detail, sample_body_sha256, sample_body_bytes,
            sample_client, first_seen_at
        FROM webhook_refusal ORDER BY id
        """
    )
    ops.append_only("webhook_rejection")
    ops.drop_tables("webhook_refusal")
    ops.run_sql(DOWNGRADE_SQL)
