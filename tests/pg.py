"""Throwaway PostgreSQL databases for the tests, and a reader of the live catalog."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from sets_db.config import asyncpg_dsn

REPO_ROOT = Path(__file__).resolve().parent.parent

START_HINT = (
    "No PostgreSQL server answered at {url}. The tests need a real one. Start the local "
    "server with:\n    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
    "or point SETS_DB_TEST_URL (or DATABASE_URL) at a server where this user may CREATE DATABASE."
)


def with_database(url: str, name: str) -> str:
    """``url`` with its database name replaced."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def connect(url: str) -> Any:
    return await asyncpg.connect(asyncpg_dsn(url), timeout=10)


async def create_database(server_url: str, purpose: str = "t") -> str:
    """A new empty database on the server of ``server_url``; returns its URL."""
    # pid + random: two runs (or two workers) at once can never pick the same name.
    name = f"sets_db_test_{purpose}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server_url, name)


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await connect(with_database(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def aerich(url: str, *args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run the real ``aerich`` command line against ``url``, as a developer would."""
    env = {**os.environ, "DATABASE_URL": url}
    executable = Path(sys.executable).with_name("aerich")
    return subprocess.run(
        [str(executable), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


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


async def catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the schema is made of, read from the server (never from the models)."""
    conn = await connect(url)
    try:
        return {
            name: [tuple(row) for row in await conn.fetch(query)]
            for name, query in {
                "relations": CATALOG_RELATIONS,
                "columns": CATALOG_COLUMNS,
                "indexes": CATALOG_INDEXES,
                "constraints": CATALOG_CONSTRAINTS,
            }.items()
        }
    finally:
        await conn.close()
