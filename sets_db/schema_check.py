"""The live schema, read from PostgreSQL's catalog, and what it must be.

``read_catalog()`` reads every object of the ``public`` schema that the contract covers --
columns (type, NOT NULL, default), indexes, constraints (FKs with their delete rule, CHECKs),
row-level security and its policies, table comments, triggers and their functions -- into a
flat mapping ``"<kind> <table>.<name>" -> definition`` that compares with ``==`` and diffs
line by line.

``expected_schema.json`` beside this module is that mapping for a database built by
``sets-db migrate`` from nothing. It is generated (``python -m sets_db.schema_check
SERVER_URL``), never written by hand, and a test rebuilds a fresh database and proves it is
current. ``live_differences(url)`` is the live half of ``sets-db migrate --check``; the
schema-contract tests read the catalog through the same queries.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import asyncpg

from sets_db.config import asyncpg_dsn, with_database

EXPECTED_SCHEMA_FILE = Path(__file__).resolve().parent / "expected_schema.json"
# The story's Drizzle DDL (shared/spec/seed-drizzle-reference.sql), normalised the same way:
# what `sets-db adopt` expects to take over.
DRIZZLE_SCHEMA_FILE = Path(__file__).resolve().parent / "drizzle_schema.json"

Catalog = dict[str, str]

CATALOG_COLUMNS = """
SELECT c.table_name, c.column_name, c.ordinal_position,
       format_type(a.atttypid, a.atttypmod) AS type,
       c.is_nullable, c.column_default
FROM information_schema.columns c
JOIN pg_catalog.pg_attribute a
  ON a.attrelid = format('%I.%I', c.table_schema, c.table_name)::regclass
 AND a.attname = c.column_name
WHERE c.table_schema = 'public'
ORDER BY c.table_name, c.column_name
"""

CATALOG_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' ORDER BY tablename, indexname
"""

# pg_get_constraintdef() spells out ON DELETE and appends NOT VALID to an unvalidated one.
CATALOG_CONSTRAINTS = """
SELECT conrelid::regclass::text AS table_name, conname, contype,
       pg_get_constraintdef(oid) AS definition, confdeltype
FROM pg_constraint
WHERE connamespace = 'public'::regnamespace
ORDER BY 1, 2
"""

CATALOG_RELATIONS = """
SELECT relname, relkind FROM pg_class
WHERE relnamespace = 'public'::regnamespace ORDER BY relname
"""

CATALOG_SECURITY = """
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY relname
"""

CATALOG_POLICIES = """
SELECT tablename, policyname, permissive, roles::text AS roles, cmd, qual, with_check
FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2
"""

# Privileges granted to roles other than the table's owner (the RLS role's, above all).
CATALOG_GRANTS = """
SELECT c.relname, a.grantee::regrole::text AS grantee,
       string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) AS privileges
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.grantee <> c.relowner
GROUP BY 1, 2 ORDER BY 1, 2
"""

CATALOG_COMMENTS = """
SELECT c.relname, d.description FROM pg_description d
JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND d.objoid = c.oid AND d.objsubid = 0
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1
"""

# Triggers, and the functions of public that no extension brought (pg_trgm installs its
# own there): a summary kept by triggers is only right while they are there and unchanged.
CATALOG_TRIGGERS = """
SELECT tgrelid::regclass::text AS table_name, tgname, pg_get_triggerdef(oid) AS definition
FROM pg_trigger
WHERE NOT tgisinternal
  AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
ORDER BY 1, 2
"""

CATALOG_FUNCTIONS = """
SELECT p.oid::regprocedure::text AS signature, pg_get_functiondef(p.oid) AS definition
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1
"""

RAW_QUERIES = {
    "relations": CATALOG_RELATIONS,
    "columns": CATALOG_COLUMNS,
    "indexes": CATALOG_INDEXES,
    "constraints": CATALOG_CONSTRAINTS,
}


async def raw_catalog(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    """The catalog rows as the tests compare them (relations, columns, indexes, constraints)."""
    return {
        name: [tuple(row) for row in await conn.fetch(query)] for name, query in RAW_QUERIES.items()
    }


async def read_catalog(conn: Any) -> Catalog:
    """The normalised schema of ``public`` on an open asyncpg connection.

    Column order is left out on purpose: a table adopted from another tool may order its
    columns differently, and nothing in sets-db depends on the order.
    """
    found: Catalog = {}
    for name, kind in await conn.fetch(CATALOG_RELATIONS):
        if kind == b"r":
            found[f"table {name}"] = "exists"
    for table, column, _position, type_, nullable, default in await conn.fetch(CATALOG_COLUMNS):
        null = "NOT NULL" if nullable == "NO" else "NULL"
        found[f"column {table}.{column}"] = f"{type_} {null}" + (
            f" DEFAULT {default}" if default is not None else ""
        )
    for table, index, definition in await conn.fetch(CATALOG_INDEXES):
        found[f"index {table}.{index}"] = definition
    for table, name, _kind, definition, _rule in await conn.fetch(CATALOG_CONSTRAINTS):
        found[f"constraint {table}.{name}"] = definition
    for table, enabled, forced in await conn.fetch(CATALOG_SECURITY):
        state = "enabled" if enabled else "disabled"
        found[f"row level security {table}"] = state + (", forced" if forced else "")
    for table, name, permissive, roles, cmd, qual, check in await conn.fetch(CATALOG_POLICIES):
        found[f"policy {table}.{name}"] = (
            f"{permissive} FOR {cmd} TO {roles} USING ({qual}) WITH CHECK ({check})"
        )
    for table, grantee, privileges in await conn.fetch(CATALOG_GRANTS):
        found[f"grant {table} to {grantee}"] = privileges
    for table, description in await conn.fetch(CATALOG_COMMENTS):
        found[f"comment {table}"] = description
    for table, name, definition in await conn.fetch(CATALOG_TRIGGERS):
        found[f"trigger {table}.{name}"] = definition
    for signature, definition in await conn.fetch(CATALOG_FUNCTIONS):
        found[f"function {signature}"] = definition
    return dict(sorted(found.items()))


async def catalog_of(url: str) -> Catalog:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await read_catalog(conn)
    finally:
        await conn.close()


def differences(expected: Mapping[str, str], found: Mapping[str, str]) -> list[str]:
    """One line per object that is missing, unexpected or defined differently."""
    lines = []
    for key in sorted(expected.keys() | found.keys()):
        want, have = expected.get(key), found.get(key)
        if want == have:
            continue
        if have is None:
            lines.append(f"missing {key}: {want}")
        elif want is None:
            lines.append(f"unexpected {key}: {have}")
        else:
            lines.append(f"{key} is {have}; expected {want}")
    return lines


def load(path: Path) -> Catalog:
    loaded: Catalog = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def expected_schema() -> Catalog:
    """What ``sets-db migrate`` builds: the committed, generated expectation."""
    return load(EXPECTED_SCHEMA_FILE)


def drizzle_schema() -> Catalog:
    """What the story's drizzle-kit DDL builds (generated the same way)."""
    return load(DRIZZLE_SCHEMA_FILE)


async def live_differences(url: str) -> list[str]:
    """How the live database differs from what the models and migrations make it."""
    return differences(expected_schema(), await catalog_of(url))


def dumps(found: Catalog) -> str:
    return json.dumps(found, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- Regenerating the expectation -----------------------------------------------------------


async def _scratch_catalog(server_url: str, build: Callable[[str], Awaitable[Any]]) -> Catalog:
    """The catalog of a database created on ``server_url``, built by ``build(url)``, dropped."""
    name = f"sets_db_expected_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(server_url, name)
        try:
            await build(url)
            return await catalog_of(url)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def fresh_catalog(server_url: str) -> Catalog:
    """The catalog of a database migrated from nothing by ``sets-db migrate``."""
    from sets_db.migrator import migrate  # the migrator imports this module

    return await _scratch_catalog(server_url, migrate)


async def ddl_catalog(server_url: str, ddl: str) -> Catalog:
    """The catalog of a database made by running ``ddl`` (e.g. drizzle-kit's SQL)."""

    async def run(url: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(ddl)
        finally:
            await conn.close()

    return await _scratch_catalog(server_url, run)


def main(argv: list[str]) -> None:
    """``python -m sets_db.schema_check SERVER_URL [DRIZZLE_DDL.sql]``: rewrite
    expected_schema.json (and drizzle_schema.json from the story's DDL file, when given)."""
    if len(argv) not in (1, 2):
        raise SystemExit("usage: python -m sets_db.schema_check SERVER_URL [DRIZZLE_DDL.sql]")
    EXPECTED_SCHEMA_FILE.write_text(dumps(asyncio.run(fresh_catalog(argv[0]))), encoding="utf-8")
    if len(argv) == 2:
        ddl = Path(argv[1]).read_text(encoding="utf-8")
        DRIZZLE_SCHEMA_FILE.write_text(
            dumps(asyncio.run(ddl_catalog(argv[0], ddl))), encoding="utf-8"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
