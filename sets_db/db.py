"""Connection lifecycle: ``init_db()`` / ``close_db()`` and a lifespan context manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tortoise import Tortoise

from sets_db.config import database_url, tortoise_config


async def init_db(url: str | None = None) -> None:
    """Connect Tortoise to ``url`` (default: the configured database).

    The global fallback makes the connection visible to every task, as a web app needs:
    its lifespan runs in one task and its requests in others.
    """
    await Tortoise.init(config=tortoise_config(url or database_url()), _enable_global_fallback=True)


async def close_db() -> None:
    """Close every connection opened by ``init_db()``."""
    await Tortoise.close_connections()


@asynccontextmanager
async def lifespan(url: str | None = None) -> AsyncIterator[None]:
    """``async with lifespan(): ...`` for an app's startup/shutdown."""
    await init_db(url)
    try:
        yield
    finally:
        await close_db()
