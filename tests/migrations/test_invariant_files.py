"""The concern files of ``migrations/sql/invariants`` say exactly what the migrations leave at head:
applied to a migrated database stripped of every function (and so of every trigger), they put
back the same catalog, function by function and trigger by trigger; applied again, they change
nothing. See ``migrations/sql/__init__.py``."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from migrations.sql import INVARIANTS, read_sql, sql_statements
from tests.migrations.catalog import catalog, differences

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


async def _apply_invariant_files(engine: AsyncEngine) -> None:
    """As a revision would: statement by statement, through ``op.execute``'s ``text()``."""
    async with engine.begin() as conn:
        for name in INVARIANTS:
            for statement in sql_statements(name):
                await conn.execute(sa.text(statement))


async def test_the_invariant_files_rebuild_every_function_and_trigger_of_head(
    db_url: URL, engine: AsyncEngine
) -> None:
    migrated = await catalog(db_url)
    async with engine.begin() as conn:
        await conn.execute(sa.text(DROP_EVERY_FUNCTION))
    stripped = await catalog(db_url)
    assert not [name for name in stripped if name.startswith(("function ", "trigger "))]

    await _apply_invariant_files(engine)

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


def test_each_function_has_one_concern_file_that_says_what_it_enforces() -> None:
    defined: dict[str, str] = {}
    for name in INVARIANTS:
        text = read_sql(name)
        assert text.startswith("-- ") and "docs/accounting.md" in text.split("\n\n", 1)[0], name
        for function in re.findall(r"CREATE OR REPLACE FUNCTION (\w+)\(", text):
            assert function not in defined, f"{function} in {defined.get(function)} and {name}"
            defined[function] = name
    assert defined
