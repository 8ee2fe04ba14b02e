"""Posting invariants checked once per statement: an entry's postings arrive in one statement,
which is verified as a whole (balance, sequence numbers, running balances, overdraft, the
entries and accounts it refers to), and each account's balance moves once per statement.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 20:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

from migrations.sql import sql_statements

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLACED = (
    "coinbooks_posting_apply",
    "coinbooks_entry_check",
    "coinbooks_entry_stamp",
)
"""The per-row functions of 0001 that this revision replaces (and a downgrade restores)."""


def upgrade() -> None:
    for statement in sql_statements("0004_statement_checks.sql"):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER gift_notify ON gift")
    for statement in sql_statements("0003_gifts.sql"):
        if "coinbooks_gift_notify()" in statement:
            op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    op.execute("ALTER TABLE journal_entry ALTER COLUMN created_txid DROP DEFAULT")
    op.execute("DROP TRIGGER account_guard_update ON account")
    op.execute("DROP TRIGGER account_guard ON account")
    op.execute(
        "CREATE TRIGGER account_guard BEFORE INSERT OR UPDATE ON account"
        " FOR EACH ROW EXECUTE FUNCTION coinbooks_account_guard()"
    )
    op.execute("DROP TRIGGER account_no_truncate ON account")
    op.execute("DROP TRIGGER account_no_delete ON account")
    op.create_unique_constraint("uq_account_id_commodity", "account", ["id", "commodity"])
    op.create_unique_constraint(
        "uq_journal_entry_id_posted_at", "journal_entry", ["id", "posted_at"]
    )
    op.create_foreign_key(
        "fk_posting_account_id_commodity_account",
        "posting",
        "account",
        ["account_id", "commodity"],
        ["id", "commodity"],
    )
    op.create_foreign_key(
        "fk_posting_entry_id_posted_at_journal_entry",
        "posting",
        "journal_entry",
        ["entry_id", "posted_at"],
        ["id", "posted_at"],
    )
    op.execute("DROP TRIGGER journal_entry_check ON journal_entry")
    op.execute("DROP FUNCTION coinbooks_entry_has_postings()")
    op.execute("DROP TRIGGER postings_apply ON posting")
    op.execute("DROP FUNCTION coinbooks_postings_apply()")
    for statement in sql_statements("0001_invariants.sql"):
        if any(f"FUNCTION {name}()" in statement for name in REPLACED):
            op.execute(statement)
