"""Apply aerich migrations from Python (and from ``sets-db migrate``), one migrator at a time.

aerich has no lock of its own: two ``aerich upgrade`` runs on an empty database race and one
crashes. Here every run first takes a PostgreSQL advisory lock, so concurrent deployers
queue up and each later one finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path

import asyncpg
from aerich import Command

from sets_db.config import APP_LABEL, asyncpg_dsn, database_url, tortoise_config

# The repo's migrations/ folder (an editable install runs from the checkout).
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any constant works; it only has to be the same in every migrator.
ADVISORY_LOCK_KEY = 0x5E75_DB00


async def migrate(url: str | None = None) -> list[str]:
    """Apply every pending migration; returns the versions applied by this call."""
    url = url or database_url()
    lock_connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await lock_connection.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        # aerich initialises Tortoise itself; a fresh context keeps that apart from any
        # connection the caller already has open.
        task = asyncio.create_task(_upgrade(url), context=contextvars.Context())
        return await task
    finally:
        # Closing the session releases the advisory lock too.
        await lock_connection.close()


async def _upgrade(url: str) -> list[str]:
    command = Command(
        tortoise_config=tortoise_config(url), app=APP_LABEL, location=str(MIGRATIONS_DIR)
    )
    async with command:
        await command.init()
        applied: list[str] = await command.upgrade(run_in_transaction=True)
    return applied
