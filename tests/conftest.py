"""Test harness: a real PostgreSQL, a throwaway database per run, clean tables per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from tortoise import connections

from sets_db.config import embedded_data_dir, redact, server_url_for_tests, settings
from sets_db.db import close_db, init_db
from sets_db.embedded import EmbeddedServerError
from sets_db.embedded import start as start_embedded
from sets_db.migrator import migrate
from tests.pg import START_HINT, connect, create_database, drop_database


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Settings are read once per process; a test that changes the environment
    (monkeypatch.setenv) gets them read again, and the next test gets its own."""
    settings.cache_clear()
    yield
    settings.cache_clear()


@pytest.fixture(scope="session")
async def server_url() -> str:
    """The configured server, else 127.0.0.1:5432, else the embedded one (sets_db.config)."""
    url = ""
    try:
        url = server_url_for_tests()
        conn = await connect(url)
    except (TimeoutError, OSError, EmbeddedServerError) as error:
        # Configured but unreachable: the embedded server still lets the suite run.
        print(f"\nsets-db tests: {redact(url) or 'no server'} unreachable ({error}); embedded")
        try:
            url = start_embedded(embedded_data_dir())
            conn = await connect(url)
        except (TimeoutError, OSError, EmbeddedServerError) as embedded_error:
            pytest.exit(f"{START_HINT.format(url=url)}\n({error}; {embedded_error})", returncode=3)
    await conn.close()
    return url


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """This run's own database, migrated to head with the real aerich migrations."""
    url = await create_database(server_url, "run")
    try:
        await migrate(url)
        await init_db(url)
        yield url
        await close_db()
    finally:
        await drop_database(url)


@pytest.fixture
async def db(database_url: str) -> str:
    """Per-test isolation: every test starts with empty tables."""
    await connections.get("default").execute_script("TRUNCATE sets, set_images CASCADE")
    return database_url


@pytest.fixture
async def raw(db: str) -> AsyncIterator[Any]:
    """A plain asyncpg connection to the run's database, for checks that bypass the ORM."""
    conn = await connect(db)
    yield conn
    await conn.close()


@pytest.fixture
async def empty_database(server_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A factory of new, empty databases, all dropped when the test ends."""
    created: list[str] = []

    async def make() -> str:
        created.append(await create_database(server_url, "mig"))
        return created[-1]

    yield make
    for url in created:
        await drop_database(url)
