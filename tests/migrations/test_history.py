"""What each revision runs is history, pinned in ``migrations/sql/checksums.py``: every revision
still runs exactly the SQL it was pinned to, every file of ``migrations/sql`` is loaded by name by
the revision that introduced it, and a revision loads files only through the ones it declares.
No database is needed. See ``migrations/sql/__init__.py``."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import pytest
from alembic.script import Script, ScriptDirectory

import migrations
from migrations.sql import HERE, INVARIANTS, split_statements, sql_digest, sql_statements
from migrations.sql.checksums import CHECKSUMS

DIRECTIONS = ("upgrade", "downgrade")
DEFINITIONS = ("invariants/", "superseded/")
"""The folders of definition files; every other file is one revision's own change."""


def _revisions() -> list[Script]:
    """Every revision, oldest first."""
    scripts = ScriptDirectory(str(Path(migrations.__file__).parent))
    return list(reversed(list(scripts.walk_revisions())))


def _declared(module: ModuleType, direction: str) -> tuple[str, ...]:
    names: tuple[str, ...] = getattr(module, f"{direction.upper()}_SQL", ())
    return names


def _loaded() -> dict[tuple[str, str], tuple[str, ...]]:
    """The files each revision runs, by revision and direction, where it runs any."""
    return {
        (script.revision, direction): names
        for script in _revisions()
        for direction in DIRECTIONS
        if (names := _declared(script.module, direction))
    }


def _changed(revision: str, direction: str, names: tuple[str, ...]) -> str:
    concerns = ", ".join(name for name in names if name.startswith("invariants/"))
    advice = (
        f" If you changed one of its concern files ({concerns}): before changing it, copy its"
        f" present text into a superseded/ file (superseded/{revision}_<concern>.sql; the"
        " committed text is `git show HEAD:migrations/sql/<file>`) and point"
        f" {revision} at it; then add a revision that loads the new definitions, and whose"
        " downgrade loads the superseded copy."
        if concerns
        else ""
    )
    return (
        f"revision {revision} would now run different SQL on {direction} than it was pinned to"
        f" (it loads {', '.join(names)}). A database that {revision} migrated never runs it"
        f" again, so what it runs must not change.{advice} Otherwise put back what {revision}"
        " ran: a change to the schema is a new revision (migrations/sql/__init__.py)."
    )


def test_each_revision_still_runs_the_sql_it_was_pinned_to() -> None:
    loaded = _loaded()
    problems: list[str] = []
    for revision, direction in sorted(loaded.keys() | CHECKSUMS.keys()):
        names = loaded.get((revision, direction), ())
        pinned = CHECKSUMS.get((revision, direction))
        digest = sql_digest(names)
        if pinned is None:
            problems.append(
                f"revision {revision} runs SQL on {direction} that is not pinned yet: add"
                f" ({revision!r}, {direction!r}): {digest!r}, to migrations/sql/checksums.py"
            )
        elif not names:
            problems.append(
                f"revision {revision} no longer declares the SQL pinned for its {direction}"
                f" ({direction.upper()}_SQL)"
            )
        elif digest != pinned:
            problems.append(_changed(revision, direction, names))
    assert not problems, "\n".join(problems)


def test_every_file_is_loaded_by_name_by_the_revision_that_introduced_it() -> None:
    files = sorted(str(path.relative_to(HERE)) for path in HERE.rglob("*.sql"))
    by: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (revision, direction), names in _loaded().items():
        assert len(set(names)) == len(names), f"{revision} {direction} loads a file twice"
        for name in names:
            assert name in files, f"{revision} {direction} loads {name}, which does not exist"
            by[name, direction].append(revision)

    for name in files:
        ups, downs = by[name, "upgrade"], by[name, "downgrade"]
        introduced = Path(name).name[:4]
        if name.startswith("invariants/"):
            assert len(ups) == 1 and not downs, f"{name}: upgrade of {ups}, downgrade of {downs}"
        elif name.startswith("superseded/"):
            assert ups == [introduced], f"{name}: loaded by the upgrade of {ups}"
            assert len(downs) == 1 and downs[0] > introduced, (
                f"{name}: loaded by the downgrade of {downs}, not of the one revision that"
                " replaced it"
            )
        elif name.endswith(".down.sql"):
            assert downs == [introduced] and not ups, f"{name}: {ups} up, {downs} down"
        else:
            assert ups == [introduced] and not downs, f"{name}: {ups} up, {downs} down"
    assert set(INVARIANTS) <= set(files)


@pytest.mark.parametrize("script", _revisions(), ids=lambda script: script.revision)
def test_a_revision_runs_sql_files_only_as_it_declares_them(script: Script) -> None:
    tree = ast.parse(Path(script.path).read_text())
    runs: dict[str, list[str]] = {"upgrade": [], "downgrade": []}
    for function in tree.body:
        if isinstance(function, ast.FunctionDef) and function.name in runs:
            runs[function.name] = [
                ", ".join(map(ast.unparse, call.args))
                for call in ast.walk(function)
                if isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "run_sql"
            ]
    expected = {
        direction: [f"{direction.upper()}_SQL"] if _declared(script.module, direction) else []
        for direction in DIRECTIONS
    }
    assert runs == expected, (
        "a revision declares the files it runs at module level and runs them with"
        " ops.run_sql(UPGRADE_SQL) in upgrade() and ops.run_sql(DOWNGRADE_SQL) in downgrade(),"
        " so that they can be pinned (migrations/sql/__init__.py)"
    )
    used = {
        node.attr if isinstance(node, ast.Attribute) else node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute | ast.Name)
    }
    assert not used & {"read_sql", "sql_statements", "split_statements", "read_text", "open"}
    assert sum(isinstance(n, ast.Attribute) and n.attr == "run_sql" for n in ast.walk(tree)) == sum(
        map(len, runs.values())
    )


@pytest.mark.parametrize(
    "name",
    [name for name in HERE.rglob("*.sql") if str(name.relative_to(HERE)).startswith(DEFINITIONS)],
    ids=lambda p: str(p.relative_to(HERE)),
)
def test_a_definition_file_applies_over_another_version_of_itself(name: Path) -> None:
    """``CREATE OR REPLACE`` for functions and triggers; a constraint trigger, which cannot be
    replaced, dropped if it exists and created again. Definitions only: what goes for good is
    dropped by a revision's own file."""
    statements = sql_statements(str(name.relative_to(HERE)))
    for before, statement in zip(["", *statements], statements, strict=False):
        words = statement.split()
        if words[:3] == ["CREATE", "CONSTRAINT", "TRIGGER"]:
            assert before.split()[:6] == ["DROP", "TRIGGER", "IF", "EXISTS", words[3], "ON"]
        elif words[:4] == ["DROP", "TRIGGER", "IF", "EXISTS"]:
            continue
        else:
            assert words[:4] in (
                ["CREATE", "OR", "REPLACE", "FUNCTION"],
                ["CREATE", "OR", "REPLACE", "TRIGGER"],
            ), statement


def test_what_counts_is_what_the_database_sees() -> None:
    """Comments and blank lines between statements are not sent; inside a function body, where
    PostgreSQL keeps them, they are."""
    body = "CREATE FUNCTION f() RETURNS int\nLANGUAGE plpgsql AS $$\nBEGIN\n{}RETURN 1;\nEND $$;"
    plain = split_statements(body.format("") + "\nDROP TABLE t; -- a note")
    assert plain == [body.format(""), "DROP TABLE t; -- a note"]
    assert (
        split_statements("-- about f\n\n" + body.format("") + "\n\n-- t\nDROP TABLE t; -- a note")
        == plain
    )
    assert split_statements(body.format("    -- a comment\n")) != [body.format("")]
