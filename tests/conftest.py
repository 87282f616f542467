"""Test harness: a real PostgreSQL, a throwaway database per run, clean tables per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tortoise import connections

from sets_db.config import (
    embedded_data_dir,
    load_settings,
    redact,
    server_url_for_tests,
    settings,
)
from sets_db.db import close_db, init_db
from sets_db.embedded import EmbeddedServerError
from sets_db.embedded import start as start_embedded
from sets_db.migrator import migrate
from tests.pg import (
    POOLER_PORT_VARIABLE,
    START_HINT,
    connect,
    create_database,
    drop_database,
    service_url,
)

pytest_plugins = ["tests.companions"]


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
def pooler_leg(request: pytest.FixtureRequest) -> Iterator[None]:
    """With SETS_DB_POOLER=transaction (the pooler leg, tests/test_pooler.py), a PgBouncer
    in transaction mode for this run: the services reach every database through it."""
    if not load_settings().behind_pooler:
        yield
        return
    bouncer = request.getfixturevalue("pgbouncer")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(POOLER_PORT_VARIABLE, str(bouncer.port))
        yield


@pytest.fixture(scope="session")
async def database_url(server_url: str, pooler_leg: None) -> AsyncIterator[str]:
    """This run's own database, migrated to head with the real aerich migrations; the
    services reach it through ``service_url`` (PgBouncer in the pooler leg)."""
    url = await create_database(server_url, "run")
    try:
        await migrate(url)
        await init_db(service_url(url))
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


@pytest.fixture(scope="session")
async def head_template(server_url: str) -> AsyncIterator[str]:
    """A database migrated to head once per run, for ``migrated_database`` to copy."""
    url = await create_database(server_url, "head")
    try:
        await migrate(url)
        yield url
    finally:
        await drop_database(url)


@asynccontextmanager
async def _new_databases(
    server_url: str, purpose: str, copy_of: str = ""
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A factory of new databases (empty, or copies of ``copy_of``), all dropped at the end."""
    created: list[str] = []

    async def make() -> str:
        created.append(await create_database(server_url, purpose, copy_of=copy_of))
        return created[-1]

    try:
        yield make
    finally:
        for url in created:
            await drop_database(url)


@pytest.fixture
async def migrated_database(
    server_url: str, head_template: str, pooler_leg: None
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A factory of new databases at head, all dropped when the test ends: copies of
    ``head_template`` (CREATE DATABASE ... TEMPLATE, about 0.1 s instead of a migration's
    1 s), so exactly what ``migrate()`` makes."""
    async with _new_databases(server_url, "copy", copy_of=head_template) as make:
        yield make


@pytest.fixture
async def empty_database(
    server_url: str, pooler_leg: None
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A factory of new, empty databases, all dropped when the test ends."""
    async with _new_databases(server_url, "mig") as make:
        yield make
