"""Throwaway PostgreSQL databases for the tests, and a reader of the live catalog."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from sets_db.config import APP_LABEL, asyncpg_dsn, connect_options, load_settings, with_database
from sets_db.migrator import MIGRATIONS_DIR as MIGRATIONS_ROOT
from sets_db.migrator import migrate, migration_versions
from sets_db.schema_check import raw_catalog
from sets_db.schemas import SetQuery
from sets_db.services.listing import _encode_cursor as encode_cursor
from sets_db.services.rows import set_with_images, to_set

REPO_ROOT = Path(__file__).resolve().parent.parent

START_HINT = (
    "No PostgreSQL server answered at {url}. The tests need a real one. Start the local "
    "server with:\n    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
    "or point SETS_DB_TEST_URL (or DATABASE_URL) at a server where this user may CREATE DATABASE."
)


TEST_DATABASE_PREFIX = "sets_db_test_"
# The pooler leg (tests/test_pooler.py) runs test modules again with SETS_DB_POOLER=transaction;
# the session's PgBouncer port is then in this variable (tests/conftest.py sets it).
POOLER_PORT_VARIABLE = "SETS_DB_TEST_POOLER_PORT"


def behind_pooler() -> bool:
    return load_settings().behind_pooler


def service_url(url: str) -> str:
    """The URL the services use for the database of ``url``: in the pooler leg, the same
    database through the session's PgBouncer (for the tests' own databases, not for a URL a
    test made up); else ``url`` itself."""
    port = os.environ.get(POOLER_PORT_VARIABLE)
    parts = urlsplit(url)
    if not port or not behind_pooler() or not parts.path.startswith("/" + TEST_DATABASE_PREFIX):
        return url
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def service_env(url: str) -> dict[str, str]:
    """The environment of a sets-db process for the database of ``url``: in the pooler leg,
    services through PgBouncer and migrations direct, as a deployment behind one has it."""
    if service_url(url) == url:
        return {"DATABASE_URL": url}
    return {"DATABASE_URL": service_url(url), "DATABASE_DIRECT_URL": url}


async def connect(url: str) -> Any:
    return await asyncpg.connect(asyncpg_dsn(url), timeout=10, **connect_options(load_settings()))


async def create_database(server_url: str, purpose: str = "t", *, copy_of: str = "") -> str:
    """A new database on the server of ``server_url``, empty or a copy of the database of
    the URL ``copy_of`` (which nobody may be connected to); returns its URL."""
    # pid + random: two runs (or two workers) at once can never pick the same name.
    name = f"{TEST_DATABASE_PREFIX}{purpose}_{os.getpid()}_{secrets.token_hex(4)}"
    template = f' TEMPLATE "{urlsplit(copy_of).path.lstrip("/")}"' if copy_of else ""
    admin = await connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{template}')
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
    env = {**os.environ, **service_env(url)}
    executable = Path(sys.executable).with_name("aerich")
    return subprocess.run(
        [str(executable), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


async def execute(url: str, script: str) -> None:
    """Run ``script`` on a connection of its own."""
    conn = await connect(url)
    try:
        await conn.execute(script)
    finally:
        await conn.close()


async def fetch(url: str, query: str, *args: Any) -> list[Any]:
    """The rows of ``query``, read on a connection of its own."""
    conn = await connect(url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


# The indexes that back no constraint: the load can go without them.
_SECONDARY_INDEXES = """
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = ANY($1::regclass[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
"""


@asynccontextmanager
async def _indexes_built_after(conn: Any, tables: tuple[str, ...]) -> AsyncIterator[None]:
    """Secondary indexes dropped for the load and built again from their own definitions:
    one bulk build each instead of an insert per row (half the setup time of 200k sets)."""
    indexes = await conn.fetch(_SECONDARY_INDEXES, list(tables))
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["name"]}"')
    yield
    await conn.execute("SET maintenance_work_mem = '256MB'")
    for index in indexes:
        await conn.execute(index["definition"])
    await conn.execute("RESET maintenance_work_mem")


@asynccontextmanager
async def loaded_database(
    server_url: str, purpose: str, load_sql: str, tables: tuple[str, ...] = ("sets",)
) -> AsyncIterator[Any]:
    """A connection to a migrated database of its own holding what ``load_sql`` inserts,
    VACUUMed (the visibility map an index-only scan needs, as autovacuum keeps it) and
    ANALYZEd; the database is dropped at the end."""
    url = await create_database(server_url, purpose)
    try:
        await migrate(url)
        conn = await connect(url)
        try:
            async with _indexes_built_after(conn, tables):
                await conn.execute(load_sql)
            # VACUUM refuses a multi-statement script (one implicit transaction): one a table.
            for table in tables:
                await conn.execute(f"VACUUM ANALYZE {table}")
            yield conn
        finally:
            await conn.close()
    finally:
        await drop_database(url)


async def cursor_after(conn: Any, user_id: str, query: SetQuery, depth: int) -> str:
    """The cursor ``list_sets`` hands out after the owner's first ``depth`` rows in the
    query's order (its sort column, then id; no filters)."""
    direction = "DESC" if query.is_descending else "ASC"
    row = await conn.fetchrow(
        f"SELECT {set_with_images('s')} FROM sets s WHERE s.user_id = $1"
        f" ORDER BY s.{query.sort} {direction}, s.id {direction} OFFSET $2 LIMIT 1",
        user_id,
        depth - 1,
    )
    return encode_cursor(query, to_set(row))


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, the root first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


async def catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the schema is made of, read from the server (never from the models), by the
    same queries as ``sets-db migrate --check`` (sets_db.schema_check)."""
    conn = await connect(url)
    try:
        return await raw_catalog(conn)
    finally:
        await conn.close()


# --- Helpers for the migration tests -------------------------------------------------------

# aerich's location "./migrations" + app "models"
MIGRATIONS_DIR = MIGRATIONS_ROOT / APP_LABEL
# What a developer's checkout needs for aerich to run: its config, the models, the history.
PROJECT_FILES = ("pyproject.toml", "aerich.ini")
PROJECT_DIRS = ("sets_db", "migrations")


def version_number(path: Path) -> int:
    """The leading number of an aerich migration file name (``3_2026..._name.py`` -> 3)."""
    return int(path.name.split("_", 1)[0])


def migration_files(folder: Path = MIGRATIONS_DIR) -> list[Path]:
    """The migration files aerich would run, in its own order (by leading number)."""
    return [folder / name for name in migration_versions(folder.parent)]


def migration_named(name: str) -> Path:
    """The one migration file called ``<number>_<timestamp>_<name>.py``."""
    [path] = [p for p in migration_files() if p.name.endswith(f"_{name}.py")]
    return path


def copy_project(dest: Path, *, upto: int | None = None) -> Path:
    """A throwaway copy of the project in ``dest``, for aerich runs that must not touch the repo.

    ``upto=k`` keeps only migrations ``0..k-1``: aerich has no "upgrade to version k", but a
    copy whose history stops there upgrades exactly that far.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(REPO_ROOT / name, dest / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO_ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    if upto is not None:
        for path in migration_files(dest / "migrations" / "models"):
            if version_number(path) >= upto:
                path.unlink()
    return dest


def aerich_in(project: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``aerich`` run inside a project copy, importing that copy's ``sets_db`` (not the repo's)."""
    pythonpath = os.pathsep.join(p for p in (str(project), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": pythonpath}
    executable = Path(sys.executable).with_name("aerich")
    return subprocess.run(
        [str(executable), *args], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


def python(url: str, code: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``DATABASE_URL=url`` (its own Tortoise)."""
    env = {**os.environ, **service_env(url)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def output_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The stdout lines of a command that must have succeeded (else a readable failure)."""
    assert result.returncode == 0, (
        f"{result.args} exited {result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}"
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


SCHEMA_EXTRAS = {
    "schemas": """
        SELECT nspname, nspacl::text FROM pg_namespace
        WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1""",
    "types": """
        SELECT typname, typtype FROM pg_type
        WHERE typnamespace = 'public'::regnamespace ORDER BY 1""",
    "functions": """
        SELECT proname, pg_get_function_identity_arguments(oid) FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "extensions": "SELECT extname, extversion FROM pg_extension ORDER BY 1",
    "comments": """
        SELECT c.relname, d.objsubid, d.description FROM pg_description d
        JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND d.objoid = c.oid
        WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal ORDER BY 1, 2""",
    "sequences": """
        SELECT sequencename, data_type::text, start_value, increment_by FROM pg_sequences
        WHERE schemaname = 'public' ORDER BY 1""",
    "foreign_keys": """
        SELECT conrelid::regclass::text, pg_get_constraintdef(oid), confdeltype, confupdtype
        FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace
        ORDER BY 1, 2""",
    # Grants, row-level security and storage options of every table, index and sequence.
    "relation_options": """
        SELECT relname, relacl::text, relrowsecurity, relforcerowsecurity, reloptions::text,
               relpersistence
        FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1""",
    "policies": """
        SELECT tablename, policyname, permissive, roles::text, cmd, qual, with_check
        FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2""",
    "default_privileges": """
        SELECT defaclrole::regrole::text, defaclnamespace::regnamespace::text, defaclobjtype,
               defaclacl::text
        FROM pg_default_acl ORDER BY 1, 2, 3""",
}


async def schema_snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """``catalog()`` plus the rest a migration could leave behind in this database (types,
    functions, comments, triggers, sequences, grants, row-level security, policies,
    extensions, schemas): equal snapshots = same schema. Roles are cluster-wide: not here."""
    snapshot = await catalog(url)
    conn = await connect(url)
    try:
        for name, query in SCHEMA_EXTRAS.items():
            snapshot[name] = [tuple(row) for row in await conn.fetch(query)]
    finally:
        await conn.close()
    return snapshot


# The role RLS mode runs as (migration 3).
APP_ROLE = "sets_db_app"


async def act_as_app(conn: Any, user_id: str) -> None:
    """Within the open transaction, act as the application role for ``user_id``, as RLS
    mode does."""
    await conn.execute(f"SET LOCAL ROLE {APP_ROLE}")
    await conn.execute("SELECT set_config('sets_db.user_id', $1, true)", user_id)
