"""Posting invariants checked once per statement: an entry's postings arrive in one statement,
which is verified as a whole (balance, sequence numbers, running balances, overdraft, the
entries and accounts it refers to), and each account's balance moves once per statement.

Create Date: 2026-11-27 20:10:00.000000
"""

from migrations import ops

revision: str = "0004"
down_revision: str | None = "0003"

UPGRADE_SQL = (
    "0004_statement_checks.sql",
    "invariants/postings.sql",
    "invariants/account_triggers.sql",
    "invariants/gift_feed.sql",
)
DOWNGRADE_SQL = (
    "0004_statement_checks.down.sql",
    "superseded/0001_postings.sql",
    "superseded/0001_account_triggers.sql",
    "superseded/0003_gift_feed.sql",
)


def upgrade() -> None:
    ops.run_sql(UPGRADE_SQL)


def downgrade() -> None:
    ops.run_sql(DOWNGRADE_SQL)
