"""What the revisions share: a table declared in a few lines (columns grouped by type, constraints
named by the project's convention), the triggers that keep a table's rows as history, and a
revision's SQL files (``migrations/sql``) run statement by statement.

Every helper emits exactly the DDL the spelled-out Alembic operations did, so a database migrated
by these revisions is the same, to the byte, as one migrated before they were written this way
(``tests/migrations`` checks the schema a downgrade restores against a fresh upgrade)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.schema import SchemaItem

from migrations.sql import sql_statements

Part = Callable[[str], list[SchemaItem]]
"""Columns or constraints of a table, given the table's name (constraint names follow from it)."""

NOW = sa.text("now()")
"""The server default of a timestamp that records when its row was written."""


def run_sql(names: Iterable[str]) -> None:
    """Run files of ``migrations/sql``, in order: a revision's ``UPGRADE_SQL`` or ``DOWNGRADE_SQL``,
    the files it declares (and ``migrations/sql/checksums.py`` pins) so that they can be checked
    without a database."""
    for name in names:
        for statement in sql_statements(name):
            op.execute(statement)


def create_table(name: str, *parts: Part) -> None:
    op.create_table(name, *(item for part in parts for item in part(name)))


def drop_tables(*names: str) -> None:
    """Drop tables in the order given (each before those it refers to); their indexes, constraints
    and triggers go with them."""
    for name in names:
        op.drop_table(name)


def _columns(
    kind: Callable[[], sa.types.TypeEngine[Any]],
    names: Sequence[str],
    default: str | sa.TextClause | None,
    null: bool,
) -> Part:
    def part(_table: str) -> list[SchemaItem]:
        return [sa.Column(n, kind(), server_default=default, nullable=null) for n in names]

    return part


def serial(name: str = "id") -> Part:
    """A ``bigserial`` key."""
    return lambda _table: [sa.Column(name, sa.BigInteger(), autoincrement=True, nullable=False)]


def text(*names: str, default: str | None = None, null: bool = False) -> Part:
    return _columns(sa.Text, names, default, null)


def bigint(*names: str, default: str | None = None, null: bool = False) -> Part:
    return _columns(sa.BigInteger, names, default, null)


def smallint(*names: str, null: bool = False) -> Part:
    return _columns(sa.SmallInteger, names, None, null)


def boolean(*names: str, default: str | None = None) -> Part:
    return _columns(sa.Boolean, names, default, False)


def timestamp(*names: str, default: sa.TextClause | None = None, null: bool = False) -> Part:
    return _columns(lambda: sa.DateTime(timezone=True), names, default, null)


def jsonb(*names: str, default: str | None = None) -> Part:
    return _columns(lambda: postgresql.JSONB(astext_type=sa.Text()), names, default, False)


def numeric(name: str, precision: int, scale: int) -> Part:
    return _columns(lambda: sa.Numeric(precision=precision, scale=scale), [name], None, False)


def checks(**rules: str) -> Part:
    """CHECK constraints, each named ``ck_<table>_<keyword>``."""

    def part(table: str) -> list[SchemaItem]:
        return [sa.CheckConstraint(rule, name=op.f(f"ck_{table}_{n}")) for n, rule in rules.items()]

    return part


def primary_key(*columns: str) -> Part:
    return lambda table: [sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))]


def unique(*columns: str) -> Part:
    def part(table: str) -> list[SchemaItem]:
        name = op.f(f"uq_{table}_{'_'.join(columns)}")
        return [sa.UniqueConstraint(*columns, name=name)]

    return part


def references(target: str, *columns: str, to: Sequence[str] = ("id",)) -> Part:
    """A foreign key from ``columns`` to ``target(to)``, named ``fk_<table>_<columns>_<target>``."""

    def part(table: str) -> list[SchemaItem]:
        name = op.f(f"fk_{table}_{'_'.join(columns)}_{target}")
        return [sa.ForeignKeyConstraint(columns, [f"{target}.{c}" for c in to], name=name)]

    return part


def append_only_sql(table: str) -> list[str]:
    """The two triggers that make ``table`` history with ``coinbooks_append_only()``
    (``migrations/sql/invariants/append_only.sql``): ``<table>_append_only`` refuses any UPDATE or
    DELETE, row by row, and ``<table>_no_truncate`` any TRUNCATE."""
    return [
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
        " FOR EACH ROW EXECUTE FUNCTION coinbooks_append_only()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
        " FOR EACH STATEMENT EXECUTE FUNCTION coinbooks_append_only()",
    ]


def append_only(*tables: str) -> None:
    """Make tables history: no row is ever updated or deleted, and the table never truncated."""
    for table in tables:
        for statement in append_only_sql(table):
            op.execute(statement)
