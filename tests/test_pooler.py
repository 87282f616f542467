"""Behind PgBouncer in transaction mode (SETS_DB_POOLER=transaction), as a Lambda fleet
reaches its database: the service, concurrency, RLS-mode and CLI tests pass through it, and
migrations run on the direct URL or refuse in one sentence.

The pooler is strict on purpose (tests/clusters.py): a startup parameter such as
``statement_timeout`` is refused, and the server connection behind a client changes at every
transaction, so named prepared statements or session state would break at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from sets_db.config import asyncpg_dsn, with_database
from sets_db.errors import ConfigurationError
from tests.clusters import PgBouncer
from tests.companions import services_on
from tests.pg import REPO_ROOT

# Run again, whole, with the services going through the session's PgBouncer (conftest.py's
# pooler_leg): the modules that exercise every service call, the CLI and RLS mode.
POOLER_LEG = (
    "tests/test_sets.py",
    "tests/test_images.py",
    "tests/test_listing.py",
    "tests/test_collection.py",
    "tests/test_rows.py",
    "tests/test_concurrency.py",
    "tests/test_rls.py",
    "tests/test_cli.py",
    "tests/test_ownership.py",
    "tests/test_transfer.py",
    "tests/test_export_stream.py",
)
POOLED = {"SETS_DB_POOLER": "transaction"}
SETS_DB = str(Path(sys.executable).with_name("sets-db"))


def environment(**variables: str) -> dict[str, str]:
    """This process's environment without any database variable, plus ``variables``."""
    base = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "POSTGRES_", "SETS_DB_"))
    }
    return {**base, **variables}


def cli(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SETS_DB, *args],
        cwd=REPO_ROOT,
        env=environment(COLUMNS="200", **variables),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_service_rls_cli_and_concurrency_tests_pass_through_pgbouncer(
    server_url: str,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *POOLER_LEG],
        cwd=REPO_ROOT,
        env=environment(SETS_DB_TEST_URL=server_url, **POOLED),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, f"the pooler leg failed:\n{result.stdout[-6000:]}"


async def test_the_pooler_refuses_a_startup_statement_timeout(pgbouncer: PgBouncer) -> None:
    # What sets-db must never send behind a pooler (it would be refused as here).
    with pytest.raises(asyncpg.PostgresError, match="statement_timeout"):
        await asyncpg.connect(
            asyncpg_dsn(pgbouncer.url("postgres")),
            server_settings={"statement_timeout": "1000"},
            timeout=10,
        )


async def test_migrate_without_a_direct_url_refuses_in_one_sentence(
    pooled_url: str, database_url: str
) -> None:
    from sets_db.migrator import migrate

    environ = {"DATABASE_URL": pooled_url, **POOLED}
    async with services_on(pooled_url, environ=environ, restore=database_url):
        with pytest.raises(ConfigurationError, match="DATABASE_DIRECT_URL") as raised:
            await migrate()
    assert raised.value.detail.count(". ") == 0  # one sentence

    result = cli("migrate", DATABASE_URL=pooled_url, **POOLED)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "DATABASE_DIRECT_URL" in errors[0]
    assert "Traceback" not in result.stderr


async def test_migrate_status_and_demo_work_through_the_pooler_with_a_direct_url(
    pgbouncer: PgBouncer, empty_database: Callable[[], Awaitable[str]]
) -> None:
    direct = await empty_database()
    pooled = with_database(pgbouncer.url("postgres"), direct.rsplit("/", 1)[1])
    urls = {"DATABASE_URL": pooled, "DATABASE_DIRECT_URL": direct, **POOLED}
    for command in (["migrate"], ["status"], ["migrate", "--check"], ["demo"], ["demo"]):
        result = cli(*command, **urls)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
