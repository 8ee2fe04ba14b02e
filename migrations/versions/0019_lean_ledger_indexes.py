"""Leaner ledger indexes: what a gift stores in indexes, cut where another rule already holds.

- The unique constraint on a posting's ``(account_id, account_seq)`` goes: the posting trigger
  (migrations/sql/invariants/postings.sql, invariant 5) already refuses any posting whose
  sequence number is not its account's next, under the account's row lock, so two postings of
  one account never share a number; the index only repeated that, at 40 bytes a posting.
- The account history index is ``(account_id, posted_at)`` instead of ``(account_id,
  posted_at, account_seq)``: the postings a batch of gifts lays on one account share their
  instant, so B-tree deduplication keeps them as one key (a busy platform account costs a few
  bytes a posting instead of 36). Reads that walk an account in order still walk this index
  (ties within one instant are ordered by ``account_seq`` from the rows, a batch at a time).
- The journal's time index is ``(posted_at)`` instead of ``(posted_at, id)``: a batch's entries
  share their instant, so it deduplicates likewise; pages by ``(posted_at, id)`` order each
  instant's few entries by id.
- "An entry is reversed at most once" is a unique index over the reversals alone
  (``reverses_entry_id IS NOT NULL``), under the constraint's former name, rather than an entry
  in a unique index for every entry of the journal.

docs/performance.md, "What each byte buys", gives the bytes per gift before and after.

Create Date: 2026-12-05 13:00:00.000000
"""

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"


def upgrade() -> None:
    op.drop_constraint("uq_posting_account_id_account_seq", "posting", type_="unique")
    op.drop_index("ix_posting_account_history", table_name="posting")
    op.create_index("ix_posting_account_history", "posting", ["account_id", "posted_at"])
    op.drop_index("ix_journal_entry_posted_at", table_name="journal_entry")
    op.create_index("ix_journal_entry_posted_at", "journal_entry", ["posted_at"])
    op.drop_constraint("uq_journal_entry_reverses_entry_id", "journal_entry", type_="unique")
    op.create_index(
        "uq_journal_entry_reverses_entry_id",
        "journal_entry",
        ["reverses_entry_id"],
        unique=True,
        postgresql_where="reverses_entry_id IS NOT NULL",
    )


def downgrade() -> None:
    op.drop_index("uq_journal_entry_reverses_entry_id", table_name="journal_entry")
    op.create_unique_constraint(
        "uq_journal_entry_reverses_entry_id", "journal_entry", ["reverses_entry_id"]
    )
    op.drop_index("ix_journal_entry_posted_at", table_name="journal_entry")
    op.create_index("ix_journal_entry_posted_at", "journal_entry", ["posted_at", "id"])
    op.drop_index("ix_posting_account_history", table_name="posting")
    op.create_index(
        "ix_posting_account_history", "posting", ["account_id", "posted_at", "account_seq"]
    )
    op.create_unique_constraint(
        "uq_posting_account_id_account_seq", "posting", ["account_id", "account_seq"]
    )
