"""Apply aerich migrations from Python (and from ``sets-db migrate``), one migrator at a time.

aerich has no lock of its own: two ``aerich upgrade`` runs on an empty database race and one
crashes. Here every run first takes a PostgreSQL advisory lock, so concurrent deployers
queue up and each later one finds nothing left to do.

``pending_or_drift()`` is the read-only check behind ``sets-db migrate --check``.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import asyncpg
from aerich import Command
from aerich.migrate import Migrate
from tortoise import Tortoise

from sets_db.config import APP_LABEL, asyncpg_dsn, settings, tortoise_config
from sets_db.schema_check import live_differences
from sets_db.translation import translate_errors

# The checkout's migrations/ folder (editable install), else the copy a wheel carries.
_CHECKOUT_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
MIGRATIONS_DIR = (
    _CHECKOUT_MIGRATIONS
    if _CHECKOUT_MIGRATIONS.is_dir()
    else Path(__file__).resolve().parent / "_migrations"
)
# Any constant works; it only has to be the same in every migrator.
ADVISORY_LOCK_KEY = 0x5E75_DB00
MIN_LOCK_POLL_S = 0.05
MAX_LOCK_POLL_S = 1.0

T = TypeVar("T")


async def connect_direct(url: str) -> asyncpg.Connection:
    """A plain session on ``url`` for the migrator's own work (lock, history)."""
    return await asyncpg.connect(asyncpg_dsn(url), timeout=30)


async def migrate(url: str | None = None) -> list[str]:
    """Apply every pending migration; returns the versions applied by this call.

    ``url`` defaults to ``DATABASE_DIRECT_URL`` (else ``DATABASE_URL``); behind a transaction
    pooler without a direct URL it refuses (ConfigurationError), because the migration lock
    is a session lock that a transaction pooler cannot keep.
    """
    url = url or settings().migration_url()
    with translate_errors():
        lock_connection = await connect_direct(url)
        try:
            await _wait_for_lock(lock_connection)
            return await _isolated(_upgrade, url)
        finally:
            # Closing the session releases the advisory lock too.
            await lock_connection.close()


async def _wait_for_lock(conn: asyncpg.Connection) -> None:
    """Take the migration lock, polling instead of blocking in ``pg_advisory_lock``.

    A session blocked in ``pg_advisory_lock`` sits in a statement with a snapshot, and
    ``CREATE INDEX CONCURRENTLY`` (run by the lock holder) waits for every such snapshot in
    the database: the holder and the waiters would wait for each other forever, unseen by
    the deadlock detector. Between two short tries a waiter holds no snapshot.
    """
    delay = MIN_LOCK_POLL_S
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY):
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, MAX_LOCK_POLL_S)


async def _isolated(run: Callable[[str], Coroutine[Any, Any, T]], url: str) -> T:
    # aerich initialises Tortoise itself; a fresh context keeps that apart from any
    # connection the caller already has open.
    return await asyncio.create_task(run(url), context=contextvars.Context())


@asynccontextmanager
async def _command(url: str, location: Path | None = None) -> AsyncIterator[Command]:
    """An aerich Command on ``url``, with a Tortoise of its own.

    aerich only initialises Tortoise when none is visible, and an app's ``init_db()`` is
    visible everywhere (global fallback): without this init, ``migrate(other_url)`` in such
    a process would check and migrate the app's database instead of ``other_url``.
    """
    config = tortoise_config(url, config=settings().for_migrations(), migrations=True)
    await Tortoise.init(config=config)
    command = Command(
        tortoise_config=config, app=APP_LABEL, location=str(location or MIGRATIONS_DIR)
    )
    async with command:  # closes this context's connections at the end
        yield command


async def _upgrade(url: str) -> list[str]:
    async with _command(url) as command:
        await command.init()
        applied: list[str] = await command.upgrade(run_in_transaction=True)
    return applied


def migration_versions(location: Path | None = None) -> list[str]:
    """The migration files aerich knows, in its order (``N_<timestamp>_<name>.py``)."""
    folder = (location or MIGRATIONS_DIR) / APP_LABEL
    files = [p.name for p in folder.glob("*.py") if p.name.split("_")[0].isdigit()]
    return sorted(files, key=lambda name: int(name.split("_")[0]))


def load_migration(path: Path) -> ModuleType:
    """A migration file imported as a module, to call its functions without aerich."""
    spec = importlib.util.spec_from_file_location(f"sets_db_migration_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordingConnection:
    """Stands in for aerich's connection to list what a migration would execute: records
    scripts, answers queries with no rows (e.g. "is there an INVALID index left over?" is
    answered no)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    async def execute_script(self, sql: str) -> None:
        self.statements.append(sql)

    async def execute_query_dict(self, sql: str, values: Any = None) -> list[dict[str, Any]]:
        return []

    async def execute_query(self, sql: str, values: Any = None) -> tuple[int, list[Any]]:
        return 0, []


async def applied_versions(url: str) -> list[str]:
    """The versions recorded in the database's ``aerich`` table (none if it has no table)."""
    with translate_errors():
        conn = await connect_direct(url)
        try:
            if await conn.fetchval("SELECT to_regclass('public.aerich') IS NULL"):
                return []
            rows = await conn.fetch(
                "SELECT version FROM public.aerich WHERE app = $1 ORDER BY id", APP_LABEL
            )
            return [row["version"] for row in rows]
        finally:
            await conn.close()


async def pending_or_drift(url: str | None = None) -> list[str]:
    """Every reason a deploy should stop; empty when the database is exactly at head and the
    models match the migrations.

    - pending: a migration file that the database has not applied;
    - unknown: a version the database applied that no file describes (code older than db);
    - live schema: at head, an object of the live catalog that differs from what the
      migrations build (``sets_db.schema_check``): a column, index, FK, CHECK, RLS, policy;
    - drift: the models differ from the last migration's ``MODELS_STATE``, i.e.
      ``aerich migrate`` would generate a new migration. This runs aerich's own diff in a
      throwaway copy of the migrations folder, so nothing in the repo is written.
    """
    url = url or settings().migration_url()
    problems: list[str] = []
    files = migration_versions()
    applied = await applied_versions(url)
    problems += [f"pending migration: {version}" for version in files if version not in applied]
    problems += [
        f"applied but unknown to this code: {version}"
        for version in applied
        if version not in files
    ]
    with translate_errors():
        if not problems:
            # Only at head does the live schema have to be exactly what the migrations build.
            problems += [f"live schema: {line}" for line in await live_differences(url)]
        drift = await _isolated(_drift, url)
    if drift:
        problems.append(
            f"models have drifted from the migrations; aerich migrate would add: {drift}"
        )
    return problems


def _reset_aerich_state() -> None:
    # aerich keeps the operators of a diff in class attributes and never clears them, so a
    # second check in the same process would otherwise see the first one's leftovers.
    for name in (
        "upgrade_operators",
        "downgrade_operators",
        "_upgrade_fk_m2m_index_operators",
        "_downgrade_fk_m2m_index_operators",
        "_upgrade_m2m",
        "_downgrade_m2m",
    ):
        setattr(Migrate, name, [])
    Migrate._rename_fields = {}
    Migrate._rename_models = {}
    Migrate._last_version_content = None


async def _drift(url: str) -> str:
    """The SQL ``aerich migrate`` would generate now (empty: no drift)."""
    with tempfile.TemporaryDirectory(prefix="sets_db_drift_") as scratch:
        location = Path(scratch) / "migrations"
        shutil.copytree(
            MIGRATIONS_DIR, location, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        _reset_aerich_state()
        try:
            async with _command(url, location) as command:
                # offline: compare with the files' MODELS_STATE, not with the database.
                await command.init(offline=True)
                generated = await command.migrate(name="drift_check", no_input=True, offline=True)
        finally:
            upgrade = "; ".join(Migrate.upgrade_operators)
            _reset_aerich_state()
        return upgrade if generated else ""


# --- Steps shared by migration files ---------------------------------------------------------

_INVALID_INDEX = "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid"
# What a migration that did its work itself hands aerich to execute (an empty string
# crashes asyncpg). CONCURRENTLY takes SHARE UPDATE EXCLUSIVE, which blocks no read or
# write, and a big table's build may rightly take long: no lock or statement timeout wanted.
NOTHING_LEFT_TO_RUN = (
    "-- squawk-ignore-file require-lock-timeout, require-statement-timeout\nSELECT 1"
)


async def create_indexes_concurrently(db: Any, indexes: dict[str, str]) -> str:
    """Build each index ``CONCURRENTLY``, one statement at a time (PostgreSQL wraps the
    statements of one script in a transaction, where CONCURRENTLY is refused). A failed
    concurrent build leaves an INVALID index that ``IF NOT EXISTS`` would keep forever:
    such a leftover is dropped and built again. Returns what aerich should execute."""
    for name, definition in indexes.items():
        if await db.execute_query_dict(_INVALID_INDEX, [name]):
            await db.execute_script(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
        await db.execute_script(f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" {definition}')
    return NOTHING_LEFT_TO_RUN


def drop_indexes(indexes: dict[str, str]) -> str:
    """A downgrade's script that drops ``indexes``, newest first. Plain ``DROP INDEX``:
    aerich runs downgrades in a transaction, where CONCURRENTLY is refused, and dropping an
    index is a catalog change only (squawk's rules for it are waived for that reason)."""
    ignore = (
        "-- squawk-ignore-file require-concurrent-index-deletion, require-lock-timeout,"
        " require-statement-timeout\n"
    )
    return ignore + "\n".join(f'DROP INDEX IF EXISTS "{name}";' for name in reversed(indexes))
