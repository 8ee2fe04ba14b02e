"""The concern files of ``migrations/sql/invariants`` say exactly what the migrations leave at head:
applied to a migrated database stripped of every function (and so of every trigger), together
with the triggers that make tables history (``ops.append_only``), they put back the same catalog,
function by function and trigger by trigger; applied again, they change nothing. So no revision
after the one that loads a concern file has replaced its definitions without the file showing it.
See ``migrations/sql/__init__.py``."""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from migrations.ops import append_only_sql
from migrations.sql import HERE, INVARIANTS, read_sql, sql_statements
from tests.migrations.catalog import Catalog, catalog, differences

DROP_EVERY_FUNCTION = """
DO $$
DECLARE
    function regprocedure;
BEGIN
    FOR function IN SELECT oid::regprocedure FROM pg_proc
                     WHERE pronamespace = 'public'::regnamespace LOOP
        EXECUTE format('DROP FUNCTION %s CASCADE', function);
    END LOOP;
END $$
"""


def _history_tables(schema: Catalog) -> list[str]:
    """The tables made history at head: those with an ``<table>_append_only`` trigger."""
    found = (re.fullmatch(r"trigger (\w+)\.(\w+)_append_only", name) for name in schema)
    return sorted(m[1] for m in found if m and m[1] == m[2])


async def _apply_invariant_files(engine: AsyncEngine, history: Sequence[str] = ()) -> None:
    """As a revision would: statement by statement, through ``op.execute``'s ``text()``; then the
    append-only triggers of ``history`` as ``ops.append_only`` writes them."""
    async with engine.begin() as conn:
        for name in INVARIANTS:
            for statement in sql_statements(name):
                await conn.execute(sa.text(statement))
        for table in history:
            for statement in append_only_sql(table):
                await conn.execute(sa.text(statement))


async def test_the_invariant_files_rebuild_every_function_and_trigger_of_head(
    db_url: URL, engine: AsyncEngine
) -> None:
    migrated = await catalog(db_url)
    history = _history_tables(migrated)
    assert {"posting", "journal_entry"} <= set(history)
    async with engine.begin() as conn:
        await conn.execute(sa.text(DROP_EVERY_FUNCTION))
    stripped = await catalog(db_url)
    assert not [name for name in stripped if name.startswith(("function ", "trigger "))]

    await _apply_invariant_files(engine, history)

    drift = differences(migrated, await catalog(db_url))
    assert not drift, "migrations/sql/invariants differs from the migrated head:\n" + "\n".join(
        drift
    )


async def test_the_invariant_files_apply_again_at_head_and_change_nothing(
    db_url: URL, engine: AsyncEngine
) -> None:
    migrated = await catalog(db_url)
    await _apply_invariant_files(engine)
    assert differences(migrated, await catalog(db_url)) == []


async def test_the_append_only_file_names_every_table_kept_as_history(db_url: URL) -> None:
    header = read_sql("invariants/append_only.sql").split("\n\n", 1)[0]
    missing = [
        t for t in _history_tables(await catalog(db_url)) if not re.search(rf"\b{t}\b", header)
    ]
    assert not missing, f"invariants/append_only.sql does not name {missing} as history"


def test_each_function_has_one_concern_file_that_says_what_it_enforces() -> None:
    assert sorted(INVARIANTS) == sorted(
        str(path.relative_to(HERE)) for path in HERE.glob("invariants/*.sql")
    )
    defined: dict[str, str] = {}
    for name in INVARIANTS:
        text = read_sql(name)
        assert text.startswith("-- ") and "docs/accounting.md" in text.split("\n\n", 1)[0], name
        for function in re.findall(r"CREATE OR REPLACE FUNCTION (\w+)\(", text):
            assert function not in defined, f"{function} in {defined.get(function)} and {name}"
            defined[function] = name
    assert defined
