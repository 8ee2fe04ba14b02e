"""SQL that matters (triggers, functions), kept as SQL files so it reads and reviews as SQL.

Two kinds of file live here.

**Each revision's SQL, forward and reverse, side by side.** ``NNNN_name.sql`` is what revision
NNNN runs once it has created its tables: its trigger functions and triggers, its changes to
earlier ones, a row it must open. ``NNNN_name.down.sql`` is what its downgrade runs once it has
dropped those tables (their triggers go with them): explicit SQL that puts back exactly what was
there before. Where a revision replaced earlier definitions (0004), its ``.down.sql`` writes
them out again in full. Tables are declared in the revision itself (``migrations/ops.py``), as
are the guard triggers that make a table history (``ops.append_only``).

These files are history. A database migrated by them is never asked to run them again, so they
are never edited to change what they create: a new revision does that. ``tests/migrations``
checks that every downgrade leaves exactly the schema that a fresh upgrade to the revision below
leaves.

**The invariants as they stand, one file per concern** (``invariants/<concern>.sql``, listed in
``INVARIANTS`` in an order they apply in). Every trigger function of the schema at head
(``CREATE OR REPLACE FUNCTION``) and every trigger, each file headed by the invariant of
docs/accounting.md (and DESIGN.md) it enforces. The revisions built these up over time, and 0004
replaced what 0001 had; these files say what holds now, with no history to replay.

They are kept true by a test rather than by a revision that runs them. A new revision would give
every database already at head something to run for no change at all; a test keeps history the
one source of what a database holds and makes the files a checked view of it.
``tests/migrations/test_invariant_files.py`` migrates a database to head, drops every function
(and with it every trigger), applies these files and requires the same catalog as before: the
same ``pg_get_functiondef`` for every function, the same ``pg_get_triggerdef`` for every trigger,
nothing missing and nothing extra. Both sides come from PostgreSQL's catalog, so they compare
exactly, with no normalising. A file that drifts from what the migrations produce fails the
build. The files are idempotent (``CREATE OR REPLACE``; PostgreSQL 14 or later) and the test
re-applies them at head to prove it.

**Changing an invariant.** Edit its concern file. Then add a revision whose ``.sql`` holds its
own copy of the new definitions and whose ``.down.sql`` holds the previous ones, written out.
The revision copies rather than re-reads the concern file, so that later edits to the file can
never change what an old revision does. Earlier revisions' files stay as they are. The drift
test fails until the concern file and the migrated head agree.
"""

from pathlib import Path

INVARIANTS: tuple[str, ...] = (
    "invariants/append_only.sql",
    "invariants/accounts.sql",
    "invariants/postings.sql",
    "invariants/purchases.sql",
    "invariants/gifts.sql",
    "invariants/payouts.sql",
    "invariants/chargebacks.sql",
)
"""The concern files, in an order they apply in: ``coinbooks_append_only()`` comes first, since
the account triggers call it too."""


def read_sql(name: str) -> str:
    return (Path(__file__).parent / name).read_text()


def sql_statements(name: str) -> list[str]:
    """The file's statements one by one (the driver runs one statement at a time). A ``;`` ends a
    statement only outside ``$$``-quoted function bodies and outside ``--`` comments."""
    statements: list[str] = []
    current: list[str] = []
    in_body = False
    for line in read_sql(name).splitlines():
        code = line.split("--", 1)[0] if not in_body else line
        if code.count("$$") % 2:
            in_body = not in_body
        current.append(line)
        if not in_body and code.rstrip().endswith(";"):
            statement = "\n".join(current).strip()
            if any(not part.strip().startswith("--") for part in statement.splitlines()):
                statements.append(statement)
            current = []
    if "".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements
