"""Fixtures for the real companions of tests/clusters.py (a pytest plugin of conftest.py).

- ``pgbouncer``: one PgBouncer per run, transaction mode, in front of the run's server;
- ``replica_pair``: a private primary and its hot standby, per module;
- ``private_cluster``: a private server the test may restart or crash, per module.
Each one is stopped and its files removed in a finalizer, whatever the tests did.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sets_db.config import settings, with_database
from sets_db.db import close_db, init_db
from tests.clusters import Cluster, PgBouncer, private_dir
from tests.pg import REPO_ROOT


@pytest.fixture(scope="session")
def pgbouncer(server_url: str) -> Iterator[PgBouncer]:
    """PgBouncer 1.18 in transaction mode in front of the server the suite uses."""
    parts = urlsplit(server_url)
    bouncer = PgBouncer(
        private_dir("sets-db-pgbouncer-"),
        target_port=parts.port or 5432,
        target_host=parts.hostname or "127.0.0.1",
    )
    try:
        yield bouncer.start()
    finally:
        bouncer.remove()


@pytest.fixture(scope="session")
def pooled_url(pgbouncer: PgBouncer, database_url: str) -> str:
    """The run's database, reached through the pooler."""
    return with_database(pgbouncer.url("postgres"), urlsplit(database_url).path.lstrip("/"))


@pytest.fixture(scope="module")
def replica_pair() -> Iterator[tuple[Cluster, Cluster]]:
    """A private primary and a streaming hot standby of it (``pg_basebackup -R``)."""
    primary = Cluster(private_dir("sets-db-primary-"))
    standby: Cluster | None = None
    try:
        primary.init().start()
        standby = primary.standby(private_dir("sets-db-standby-")).start()
        yield primary, standby
    finally:
        if standby is not None:
            standby.remove()
        primary.remove()


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[Cluster]:
    """A server of the test's own, free to be restarted or crashed."""
    cluster = Cluster(private_dir("sets-db-private-"))
    try:
        yield cluster.init().start()
    finally:
        cluster.remove()


@asynccontextmanager
async def services_on(
    url: str,
    *,
    read_url: str | None = None,
    environ: dict[str, str] | None = None,
    restore: str | None = None,
) -> AsyncIterator[None]:
    """The services of this process pointed at ``url`` (and ``read_url``) with ``environ``
    set, for the block only; then the settings and Tortoise as before (``restore``: the
    URL the session's own init used, see ``database_url`` in conftest.py)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (environ or {}).items():
            patch.setenv(name, value)
        settings.cache_clear()
        await close_db()
        try:
            await init_db(url, read_url=read_url)
            yield
        finally:
            await close_db()
    settings.cache_clear()
    if restore is not None:
        await init_db(restore)


async def migrated(url: str) -> str:
    """``url``'s database migrated by ``sets-db migrate`` (in a process of its own: this
    one's Tortoise belongs to the session)."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("sets-db")),
        "migrate",
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    return url
