"""The schema's SQL (trigger functions, triggers, and what a revision runs beyond its tables), kept
as SQL files so that it reads and reviews as SQL. Each piece is written once, in a file named for
what it is, and loaded whole, by name, by the revision that introduced it.

**The invariants as they stand**, one file per concern: ``invariants/<concern>.sql``, listed in
``INVARIANTS`` in an order they apply in, each headed by the invariant of docs/accounting.md (and
DESIGN.md) it enforces. Every function and trigger of the schema at head is defined in one of
them, and this is the one place it is written: the revision that introduced a file's definitions
loads it (0001 ``append_only``, ``accounts`` and ``purchases``; 0003 ``gifts``; 0004
``postings``, ``account_triggers`` and ``gift_feed``; 0007 ``chargebacks``; 0013 ``close``;
0014 ``payouts``; 0017 ``webhook_refusals``).
A concern whose definitions came from two revisions is two files, so that each is loaded whole
by one.

**Definitions a later revision replaced**: ``superseded/NNNN_<concern>.sql``, as revision NNNN
wrote them. NNNN's upgrade loads the file, and so does the downgrade of the revision that
replaced it, which puts them back without writing them again (0004 replaced
``0001_postings``, ``0001_account_triggers`` and ``0003_gift_feed``; 0014 replaced
``0005_payouts``).

**A revision's own changes**: ``NNNN_name.sql`` for what its upgrade drops or alters (0004) or a
row it opens (0003, 0005), ``NNNN_name.down.sql`` for what its downgrade removes once it has
dropped its tables. Tables are declared in the revisions themselves (``migrations/ops.py``), as
are the triggers that make a table history (``ops.append_only``).

A revision names the files it runs, in order, in ``UPGRADE_SQL`` and ``DOWNGRADE_SQL``, and runs
them with ``ops.run_sql``. Definition files (``invariants/``, ``superseded/``) say ``CREATE OR
REPLACE`` (a constraint trigger, which cannot be replaced, is dropped if it exists and created
again), so that each applies over an earlier or later version of what it defines (PostgreSQL 14
or later).

**History is pinned**, as Flyway pins applied migrations by their checksums. A database migrated
by a revision never runs it again, so what a revision runs must never change. ``checksums.py``
holds, for each revision and direction, ``sql_digest`` of the files it loads: the sha256 of the
statements they send, in order (comments outside function bodies are not sent, and do not count,
so a header can be kept true). ``tests/migrations/test_history.py`` recomputes every digest
without a database and checks that every file here is loaded by name, by exactly one revision.

**The concern files are today's.** ``tests/migrations/test_invariant_files.py`` migrates a
database to head, drops every function (and with it every trigger), applies the concern files and
the append-only triggers, and requires the same catalog as before: the same
``pg_get_functiondef`` for every function, the same ``pg_get_triggerdef`` for every trigger,
nothing missing and nothing extra; applied again at head, the files change nothing. So no later
revision can have replaced a definition without the concern file showing it.

**Changing an invariant.** Copy the concern file, as it is, to ``superseded/NNNN_<concern>.sql``,
NNNN being the revision that loads it, and point that revision at the copy: what it runs is the
same, so its digest is too. Then edit the concern file, and add a revision whose upgrade loads it
(after a file of its own dropping what goes for good) and whose downgrade removes what is new and
loads the superseded copy. Pin the new revision's digests. Editing a loaded file in place instead
fails the pins; a revision that redefines something in SQL of its own fails the drift test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

INVARIANTS: tuple[str, ...] = (
    "invariants/append_only.sql",
    "invariants/accounts.sql",
    "invariants/account_triggers.sql",
    "invariants/postings.sql",
    "invariants/purchases.sql",
    "invariants/gifts.sql",
    "invariants/gift_feed.sql",
    "invariants/payouts.sql",
    "invariants/chargebacks.sql",
    "invariants/close.sql",
    "invariants/webhook_refusals.sql",
)
"""The concern files, in an order they apply in: ``coinbooks_append_only()`` and
``coinbooks_account_guard()`` come before the account triggers that call them."""

HERE = Path(__file__).parent


def read_sql(name: str) -> str:
    return (HERE / name).read_text()


def sql_statements(name: str) -> list[str]:
    """The file's statements one by one, as ``ops.run_sql`` sends them (``split_statements``)."""
    return split_statements(read_sql(name))


def split_statements(sql: str) -> list[str]:
    """Statements one by one, as they are sent (the driver runs one statement at a time). A ``;``
    ends a statement only outside ``$$``-quoted function bodies and outside ``--`` comments.
    Lines outside function bodies that are blank or only a comment are left out: the database
    would never see them. Inside a body every line counts, comments too, since PostgreSQL keeps
    the body as written."""
    statements: list[str] = []
    current: list[str] = []
    in_body = False
    for line in sql.splitlines():
        if not in_body and (not line.strip() or line.lstrip().startswith("--")):
            continue
        code = line.split("--", 1)[0] if not in_body else line
        if code.count("$$") % 2:
            in_body = not in_body
        current.append(line)
        if not in_body and code.rstrip().endswith(";"):
            statements.append("\n".join(current))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements


def sql_digest(names: Iterable[str]) -> str:
    """The sha256 of the statements the files send, in order: what ``ops.run_sql(names)`` runs."""
    digest = hashlib.sha256()
    for name in names:
        for statement in sql_statements(name):
            digest.update(statement.encode() + b"\0")
    return digest.hexdigest()
