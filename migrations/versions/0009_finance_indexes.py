"""The journal's filters at millions of entries: by period (and the unfiltered page, newest
first), by actor, and by business reference (``refs @> {...}``). Without them each of these
pages sorts or scans every entry (EXPLAIN on a grown history: a parallel sequential scan and a
top-N sort of the whole table); with them each is an index range, newest or oldest first.

Create Date: 2026-12-05 04:00:00.000000
"""

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"


def upgrade() -> None:
    op.create_index("ix_journal_entry_posted_at", "journal_entry", ["posted_at", "id"])
    op.create_index("ix_journal_entry_actor", "journal_entry", ["actor", "posted_at", "id"])
    op.create_index(
        "ix_journal_entry_refs",
        "journal_entry",
        ["refs"],
        postgresql_using="gin",
        postgresql_ops={"refs": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_journal_entry_refs", table_name="journal_entry")
    op.drop_index("ix_journal_entry_actor", table_name="journal_entry")
    op.drop_index("ix_journal_entry_posted_at", table_name="journal_entry")
