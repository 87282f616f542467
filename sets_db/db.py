"""Connection lifecycle: ``init_db()`` / ``close_db()`` and a lifespan context manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tortoise import Tortoise

from sets_db.config import READ_CONNECTION, tortoise_config


async def init_db(url: str | None = None, *, read_url: str | None = None) -> None:
    """Connect Tortoise to ``url`` (default: the configured database) and, when given or
    configured (``DATABASE_READ_URL``), to a reader endpoint for the read-only calls.

    The global fallback makes the connection visible to every task, as a web app needs:
    its lifespan runs in one task and its requests in others.
    """
    from sets_db import sessions

    config = tortoise_config(url, read_url=read_url)
    await Tortoise.init(config=config, _enable_global_fallback=True)
    sessions.reset_routing(has_replica=READ_CONNECTION in config["connections"])


async def close_db() -> None:
    """Close every connection opened by ``init_db()``."""
    await Tortoise.close_connections()


@asynccontextmanager
async def lifespan(url: str | None = None, *, read_url: str | None = None) -> AsyncIterator[None]:
    """``async with lifespan(): ...`` for an app's startup/shutdown."""
    await init_db(url, read_url=read_url)
    try:
        yield
    finally:
        await close_db()
