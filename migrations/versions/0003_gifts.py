"""Gifts in live streams: streams, the gift and feature catalogs, gifts, unlocks, holds.

Create Date: 2026-11-25 16:33:53.509566
"""

import sqlalchemy as sa
from alembic import op

from migrations import ops

revision: str = "0003"
down_revision: str | None = "0002"

UPGRADE_SQL = ("invariants/gifts.sql", "superseded/0003_gift_feed.sql", "0003_gifts.sql")
DOWNGRADE_SQL = ("0003_gifts.down.sql",)


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
    ops.create_table(
        "feature",
        ops.text("code", "name", "kind"),
        ops.bigint("coin_price"),
        ops.boolean("active", default="true"),
        ops.timestamp("updated_at", default=ops.NOW),
        ops.checks(
            kind="kind IN ('effect', 'sticker', 'badge', 'highlight')", price="coin_price > 0"
        ),
        ops.primary_key("code"),
    )
    ops.create_table(
        "gift_type",
        ops.text("code", "name"),
        ops.bigint("coin_price"),
        ops.text("tier"),
        ops.text("animation", null=True),
        ops.boolean("active", default="true"),
        ops.timestamp("updated_at", default=ops.NOW),
        ops.checks(
            tier="tier IN ('basic', 'popular', 'premium', 'legendary')", price="coin_price > 0"
        ),
        ops.primary_key("code"),
    )
    ops.create_table(
        "stream",
        ops.serial(),
        ops.text("creator_id", "title"),
        ops.text("status", default="live"),
        ops.timestamp("started_at", default=ops.NOW),
        ops.timestamp("ended_at", null=True),
        ops.checks(
            ended="(status = 'ended') = (ended_at IS NOT NULL)",
            status="status IN ('live', 'ended')",
            title="length(title) BETWEEN 1 AND 200",
        ),
        ops.primary_key("id"),
    )
    op.create_index("ix_stream_creator", "stream", ["creator_id", "id"])
    op.create_index(
        "uq_stream_one_live_per_creator",
        "stream",
        ["creator_id"],
        unique=True,
        postgresql_where="status = 'live'",
    )
    ops.create_table(
        "user_status",
        ops.text("user_id"),
        ops.boolean("frozen", default="false"),
        ops.text("reason", default=""),
        ops.text("changed_by"),
        ops.timestamp("changed_at", default=ops.NOW),
        ops.primary_key("user_id"),
    )
    ops.create_table(
        "feature_unlock",
        ops.serial(),
        ops.text("user_id", "idempotency_key", "request_hash", "feature_code"),
        ops.bigint("coins", "value_micros", "entry_id"),
        ops.timestamp("created_at"),
        ops.checks(amounts="coins > 0 AND value_micros >= 0"),
        ops.references("journal_entry", "entry_id"),
        ops.references("feature", "feature_code", to=["code"]),
        ops.primary_key("id"),
        ops.unique("entry_id"),
        ops.unique("user_id", "idempotency_key"),
    )
    op.create_index("ix_feature_unlock_user", "feature_unlock", ["user_id", "id"])
    ops.create_table(
        "gift",
        ops.serial(),
        ops.text("sender_id", "idempotency_key", "request_hash"),
        ops.bigint("stream_id"),
        ops.text("creator_id", "gift_code"),
        ops.bigint("quantity", "coin_price", "coins", "value_micros"),
        ops.bigint("diamonds", "payable_micros"),
        ops.bigint("entry_id"),
        ops.timestamp("created_at", "release_at"),
        ops.bigint("release_entry_id", null=True),
        ops.checks(
            amounts="quantity > 0 AND coin_price > 0 AND coins = quantity * coin_price AND value_micros >= 0 AND diamonds >= 0 AND payable_micros >= 0",
            not_to_self="sender_id <> creator_id",
        ),
        ops.references("journal_entry", "entry_id"),
        ops.references("gift_type", "gift_code", to=["code"]),
        ops.references("journal_entry", "release_entry_id"),
        ops.references("stream", "stream_id"),
        ops.primary_key("id"),
        ops.unique("entry_id"),
        ops.unique("sender_id", "idempotency_key"),
    )
    op.create_index("ix_gift_creator_time", "gift", ["creator_id", "created_at"])
    op.create_index(
        "ix_gift_holding", "gift", ["release_at"], postgresql_where="release_entry_id IS NULL"
    )
    op.create_index("ix_gift_sender", "gift", ["sender_id", "id"])
    op.create_index("ix_gift_stream", "gift", ["stream_id", "id"])
    ops.run_sql(UPGRADE_SQL)
    ops.append_only("feature_unlock")
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


def downgrade() -> None:
    ops.drop_tables("gift", "feature_unlock", "user_status", "stream", "gift_type", "feature")
    ops.run_sql(DOWNGRADE_SQL)
