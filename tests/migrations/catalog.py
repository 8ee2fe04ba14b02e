"""The schema of a database as its catalog has it, object by object, to compare two databases
exactly: every relation with its columns, constraint, index, trigger (and whether it is enabled),
function (``pg_get_functiondef``) and sequence of the public schema."""

from __future__ import annotations

import difflib

import asyncpg
from sqlalchemy.engine import URL

from api.database import libpq_url

CATALOG = """
SELECT 'relation ' || c.relname, c.relkind::text || ' ' || coalesce((
         SELECT string_agg(format('%s %s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                                  CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                                  ' default ' || pg_get_expr(d.adbin, d.adrelid)),
                           ', ' ORDER BY a.attnum)
           FROM pg_attribute a
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT format('constraint %s.%s', conrelid::regclass, conname),
       contype::text || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'index ' || i.indexrelid::regclass, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT format('trigger %s.%s', t.tgrelid::regclass, t.tgname),
       pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'function ' || oid::regprocedure, pg_get_functiondef(oid)
  FROM pg_proc WHERE pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'sequence ' || s.seqrelid::regclass,
       format('%s start %s by %s from %s to %s cache %s cycle %s owned by %s',
              format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
              s.seqcache, s.seqcycle,
              (SELECT d.refobjid::regclass || '.' || a.attname
                 FROM pg_depend d
                 JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
 WHERE c.relnamespace = 'public'::regnamespace
"""

Catalog = dict[str, str]
"""Each object's kind and name, e.g. ``trigger posting.postings_apply``, to its definition."""


async def catalog(url: URL) -> Catalog:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return {name: definition for name, definition in await conn.fetch(CATALOG)}
    finally:
        await conn.close()


def differences(expected: Catalog, actual: Catalog) -> list[str]:
    """What differs, object by object, as a readable list (empty when the two are the same)."""
    lines: list[str] = []
    for name in sorted(expected.keys() | actual.keys()):
        before, after = expected.get(name, ""), actual.get(name, "")
        if before != after:
            lines.append(f"{name}:")
            lines += difflib.unified_diff(
                before.splitlines(), after.splitlines(), "expected", "actual", lineterm="", n=1
            )
    return lines
