"""Gifts in live streams: streams, the gift and feature catalogs, gifts, unlocks, holds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:33:53.509566
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.sql import sql_statements

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# code, name, coin price, tier, animation
GIFTS = [
    ("rose", "Rose", 1, "basic", None),
    ("tiktok", "TikTok", 1, "basic", None),
    ("finger_heart", "Finger Heart", 5, "basic", None),
    ("perfume", "Perfume", 20, "popular", "spray"),
    ("doughnut", "Doughnut", 30, "popular", None),
    ("hat_and_mustache", "Hat and Mustache", 99, "popular", "wear"),
    ("hand_hearts", "Hand Hearts", 100, "popular", "hearts"),
    ("corgi", "Corgi", 299, "premium", "run"),
    ("money_gun", "Money Gun", 500, "premium", "rain"),
    ("galaxy", "Galaxy", 1_000, "premium", "fullscreen"),
    ("whale_diving", "Whale Diving", 2_150, "premium", "fullscreen"),
    ("tiktok_shuttle", "TikTok Shuttle", 20_000, "legendary", "fullscreen"),
    ("lion", "Lion", 29_999, "legendary", "fullscreen"),
    ("tiktok_universe", "TikTok Universe", 34_999, "legendary", "fullscreen"),
]

# code, name, kind, coin price
FEATURES = [
    ("sticker_pack_cats", "Cat sticker pack", "sticker", 10),
    ("comment_highlight", "Highlighted comment", "highlight", 20),
    ("glow_effect", "Glow effect", "effect", 50),
    ("supporter_badge", "Supporter badge", "badge", 100),
]


def upgrade() -> None:
    op.create_table(
        "feature",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("coin_price", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('effect', 'sticker', 'badge', 'highlight')", name=op.f("ck_feature_kind")
        ),
        sa.CheckConstraint("coin_price > 0", name=op.f("ck_feature_price")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_feature")),
    )
    op.create_table(
        "gift_type",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("coin_price", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.Text(), nullable=False),
        sa.Column("animation", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "tier IN ('basic', 'popular', 'premium', 'legendary')", name=op.f("ck_gift_type_tier")
        ),
        sa.CheckConstraint("coin_price > 0", name=op.f("ck_gift_type_price")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_gift_type")),
    )
    op.create_table(
        "stream",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("creator_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="live", nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'ended') = (ended_at IS NOT NULL)", name=op.f("ck_stream_ended")
        ),
        sa.CheckConstraint("status IN ('live', 'ended')", name=op.f("ck_stream_status")),
        sa.CheckConstraint("length(title) BETWEEN 1 AND 200", name=op.f("ck_stream_title")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream")),
    )
    op.create_index("ix_stream_creator", "stream", ["creator_id", "id"], unique=False)
    op.create_index(
        "uq_stream_one_live_per_creator",
        "stream",
        ["creator_id"],
        unique=True,
        postgresql_where="status = 'live'",
    )
    op.create_table(
        "user_status",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("frozen", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_status")),
    )
    op.create_table(
        "feature_unlock",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("feature_code", sa.Text(), nullable=False),
        sa.Column("coins", sa.BigInteger(), nullable=False),
        sa.Column("value_micros", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "coins > 0 AND value_micros >= 0", name=op.f("ck_feature_unlock_amounts")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_feature_unlock_entry_id_journal_entry"),
        ),
        sa.ForeignKeyConstraint(
            ["feature_code"], ["feature.code"], name=op.f("fk_feature_unlock_feature_code_feature")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_unlock")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_feature_unlock_entry_id")),
        sa.UniqueConstraint(
            "user_id", "idempotency_key", name=op.f("uq_feature_unlock_user_id_idempotency_key")
        ),
    )
    op.create_index("ix_feature_unlock_user", "feature_unlock", ["user_id", "id"], unique=False)
    op.create_table(
        "gift",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("creator_id", sa.Text(), nullable=False),
        sa.Column("gift_code", sa.Text(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("coin_price", sa.BigInteger(), nullable=False),
        sa.Column("coins", sa.BigInteger(), nullable=False),
        sa.Column("value_micros", sa.BigInteger(), nullable=False),
        sa.Column("diamonds", sa.BigInteger(), nullable=False),
        sa.Column("payable_micros", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("release_entry_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "quantity > 0 AND coin_price > 0 AND coins = quantity * coin_price AND value_micros >= 0 AND diamonds >= 0 AND payable_micros >= 0",
            name=op.f("ck_gift_amounts"),
        ),
        sa.CheckConstraint("sender_id <> creator_id", name=op.f("ck_gift_not_to_self")),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name=op.f("fk_gift_entry_id_journal_entry")
        ),
        sa.ForeignKeyConstraint(
            ["gift_code"], ["gift_type.code"], name=op.f("fk_gift_gift_code_gift_type")
        ),
        sa.ForeignKeyConstraint(
            ["release_entry_id"],
            ["journal_entry.id"],
            name=op.f("fk_gift_release_entry_id_journal_entry"),
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["stream.id"], name=op.f("fk_gift_stream_id_stream")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_gift_entry_id")),
        sa.UniqueConstraint(
            "sender_id", "idempotency_key", name=op.f("uq_gift_sender_id_idempotency_key")
        ),
    )
    op.create_index("ix_gift_creator_time", "gift", ["creator_id", "created_at"], unique=False)
    op.create_index(
        "ix_gift_holding",
        "gift",
        ["release_at"],
        unique=False,
        postgresql_where="release_entry_id IS NULL",
    )
    op.create_index("ix_gift_sender", "gift", ["sender_id", "id"], unique=False)
    op.create_index("ix_gift_stream", "gift", ["stream_id", "id"], unique=False)
    for statement in sql_statements("0003_gifts.sql"):
        op.execute(statement)
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO gift_type (code, name, coin_price, tier, animation)"
            " VALUES (:code, :name, :price, :tier, :animation)"
        ),
        [{"code": c, "name": n, "price": p, "tier": t, "animation": a} for c, n, p, t, a in GIFTS],
    )
    bind.execute(
        sa.text(
            "INSERT INTO feature (code, name, kind, coin_price) VALUES (:code, :name, :kind, :p)"
        ),
        [{"code": c, "name": n, "kind": k, "p": p} for c, n, k, p in FEATURES],
    )
    bind.execute(
        sa.text(
            "INSERT INTO account (code, commodity, type, contra, no_overdraft, normal_sign)"
            " VALUES ('platform:expense:promotions', 'USD', 'expense', false, false, 1)"
            " ON CONFLICT (code) DO NOTHING"
        )
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM account WHERE code = 'platform:expense:promotions' AND posting_count = 0"
    )
    op.drop_index("ix_gift_stream", table_name="gift")
    op.drop_index("ix_gift_sender", table_name="gift")
    op.drop_index("ix_gift_holding", table_name="gift", postgresql_where="release_entry_id IS NULL")
    op.drop_index("ix_gift_creator_time", table_name="gift")
    op.drop_table("gift")
    op.drop_index("ix_feature_unlock_user", table_name="feature_unlock")
    op.drop_table("feature_unlock")
    op.drop_table("user_status")
    op.drop_index(
        "uq_stream_one_live_per_creator", table_name="stream", postgresql_where="status = 'live'"
    )
    op.drop_index("ix_stream_creator", table_name="stream")
    op.drop_table("stream")
    op.drop_table("gift_type")
    op.drop_table("feature")
    for function in (
        "coinbooks_gift_guard",
        "coinbooks_stream_guard",
        "coinbooks_gift_notify",
    ):
        op.execute(f"DROP FUNCTION {function}()")
