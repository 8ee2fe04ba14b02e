"""Promises the repository keeps about itself: migrations match the models and go down and up
again, the committed SDL matches the schema, and the layers import only downwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from accounting.metadata import Base
from api.database import downgrade, libpq_url, migrate
from schema import SDL_PATH, sdl
from tests.conftest import run_sync

ROOT = Path(__file__).resolve().parent.parent


async def test_autogenerate_finds_no_difference_between_models_and_migrations(
    engine: AsyncEngine,
) -> None:
    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []


async def _tables_and_counts(url: URL) -> dict[str, int]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )
        return {
            t["tablename"]: await conn.fetchval(f'SELECT count(*) FROM "{t["tablename"]}"')
            for t in tables
        }
    finally:
        await conn.close()


async def _triggers(url: URL) -> set[str]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        rows = await conn.fetch("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        return {row["tgname"] for row in rows}
    finally:
        await conn.close()


async def _indexes(url: URL) -> set[str]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        rows = await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        return {row["indexname"] for row in rows}
    finally:
        await conn.close()


async def _purchase_columns(url: URL) -> set[str]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        rows = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'purchase'"
        )
        return {row["column_name"] for row in rows}
    finally:
        await conn.close()


async def _payout_statuses(url: URL) -> str:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        found: str = await conn.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck_payout_status'"
        )
        return found
    finally:
        await conn.close()


def test_latest_migrations_downgrade_and_upgrade_again(db_url: URL) -> None:
    at_head = run_sync(lambda: _tables_and_counts(db_url))
    triggers_at_head = run_sync(lambda: _triggers(db_url))
    assert at_head["gift_type"] > 0 and at_head["feature"] > 0 and at_head["account"] > 0
    assert {"postings_apply", "account_no_delete"} <= triggers_at_head
    payout_tables = {"payout", "payout_event", "payout_method", "creator_totp", "creator_kyc"}
    chargeback_tables = {"chargeback", "chargeback_clawback", "provider_event", "webhook_refusal"}
    correction_tables = {"entry_reversal", "adjustment_proposal"}
    assert payout_tables | {"refund"} | chargeback_tables | correction_tables <= set(at_head)

    assert "uq_posting_account_id_account_seq" not in run_sync(lambda: _indexes(db_url))
    downgrade(db_url, "0018")  # 0019: the posting sequence and full history indexes again
    indexes = run_sync(lambda: _indexes(db_url))
    assert {"uq_posting_account_id_account_seq", "uq_journal_entry_reverses_entry_id"} <= indexes
    downgrade(db_url, "0017")  # 0018: a provider's reference may name several purchases
    downgrade(db_url, "0016")  # 0017: refused deliveries one row each again, not counted
    assert "webhook_rejection" in run_sync(lambda: _tables_and_counts(db_url))
    assert "webhook_refusal" not in run_sync(lambda: _tables_and_counts(db_url))

    guard_tables = {"second_factor_step", "second_factor_throttle"}
    assert guard_tables <= set(at_head)
    downgrade(db_url, "0015")  # 0016: no used time steps or throttle; secrets open, unchecked
    assert not guard_tables & set(run_sync(lambda: _tables_and_counts(db_url)))

    assert {"receivable_repaid_micros", "coins_withheld"} <= run_sync(
        lambda: _purchase_columns(db_url)
    )
    downgrade(db_url, "0014")  # 0015: no receivable repaid by a purchase
    assert not {"receivable_repaid_micros", "coins_withheld"} & run_sync(
        lambda: _purchase_columns(db_url)
    )

    assert "'returned'" in run_sync(lambda: _payout_statuses(db_url))
    downgrade(db_url, "0013")  # 0014: no returned payouts
    assert "'returned'" not in run_sync(lambda: _payout_statuses(db_url))

    close_tables = {"closed_period", "entry_seal"}
    assert close_tables <= set(at_head)
    assert "journal_entry_closed_period" in triggers_at_head
    downgrade(db_url, "0012")  # 0013: no closed periods, no seals, no guard on the journal
    assert not close_tables & set(run_sync(lambda: _tables_and_counts(db_url)))
    assert "journal_entry_closed_period" not in run_sync(lambda: _triggers(db_url))

    settlement_tables = {"settlement_report", "settlement_line", "reconciliation_exception"}
    assert settlement_tables <= set(at_head)
    downgrade(db_url, "0010")  # 0011: no settlement reports, lines or exceptions
    assert not settlement_tables & set(run_sync(lambda: _tables_and_counts(db_url)))

    totals_tables = {"posting_hour_total", "posting_total_watermark"}
    assert totals_tables <= set(at_head)
    downgrade(db_url, "-1")  # 0010: no stored totals of the postings
    assert not totals_tables & set(run_sync(lambda: _tables_and_counts(db_url)))
    assert "posting_hour_total_append_only" not in run_sync(lambda: _triggers(db_url))

    assert "ix_journal_entry_posted_at" in run_sync(lambda: _indexes(db_url))
    downgrade(db_url, "-1")  # 0009: no index of the journal by period
    assert "ix_journal_entry_posted_at" not in run_sync(lambda: _indexes(db_url))
    assert run_sync(lambda: _tables_and_counts(db_url)) == {
        t: n
        for t, n in at_head.items()
        if t
        not in totals_tables | settlement_tables | close_tables | guard_tables | {"webhook_refusal"}
    } | {"webhook_rejection": at_head["webhook_refusal"]}

    downgrade(db_url, "-1")  # 0008: no corrections
    assert not correction_tables & set(run_sync(lambda: _tables_and_counts(db_url)))

    downgrade(db_url, "-1")  # 0007: no chargebacks
    assert not chargeback_tables & set(run_sync(lambda: _tables_and_counts(db_url)))

    downgrade(db_url, "-1")  # 0006: no refunds
    assert "refund" not in run_sync(lambda: _tables_and_counts(db_url))

    downgrade(db_url, "-1")  # 0005: no payouts
    below = run_sync(lambda: _tables_and_counts(db_url))
    assert not (payout_tables | {"audit_log"}) & set(below)
    assert below["gift_type"] == at_head["gift_type"]
    assert below["account"] == at_head["account"] - 1  # platform:payouts_in_transit:USD
    assert "postings_apply" in run_sync(lambda: _triggers(db_url))

    downgrade(db_url, "-1")  # 0004: the per-row posting triggers again
    triggers = run_sync(lambda: _triggers(db_url))
    assert {"posting_apply", "posting_entry_check", "journal_entry_check"} <= triggers
    assert not {"postings_apply", "account_no_delete", "account_guard_update"} & triggers

    downgrade(db_url, "-1")  # 0003: no gifts
    below = run_sync(lambda: _tables_and_counts(db_url))
    assert not {"gift", "gift_type", "feature", "stream", "feature_unlock"} & set(below)
    assert below["coin_package"] == at_head["coin_package"]

    migrate(db_url)
    assert run_sync(lambda: _tables_and_counts(db_url)) == at_head
    assert run_sync(lambda: _triggers(db_url)) == triggers_at_head

    downgrade(db_url, "base")
    assert run_sync(lambda: _tables_and_counts(db_url)) == {}
    migrate(db_url)
    assert run_sync(lambda: _tables_and_counts(db_url)) == at_head


def test_committed_sdl_matches_the_schema() -> None:
    assert SDL_PATH.read_text() == sdl(), "run `coinbooks export-schema` and commit the result"


def test_layers_import_only_downwards() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
