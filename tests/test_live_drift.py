"""``sets-db migrate --check`` compares the live database with what the migrations build."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from sets_db.migrator import pending_or_drift
from sets_db.schema_check import (
    catalog_of,
    ddl_catalog,
    drizzle_schema,
    dumps,
    expected_schema,
    fresh_catalog,
)
from tests.pg import REPO_ROOT, connect
from tests.test_schema_contract import DRIZZLE_REFERENCE_SQL

SETS_DB = str(Path(sys.executable).with_name("sets-db"))

DRIFTS = {
    "extra column": ("ALTER TABLE sets ADD COLUMN extra text", "unexpected column sets.extra"),
    "dropped index": (
        "DROP INDEX sets_user_created_idx",
        "missing index sets.sets_user_created_idx",
    ),
    "dropped policy": ("DROP POLICY sets_owner ON sets", "missing policy sets.sets_owner"),
    "RLS disabled": (
        "ALTER TABLE set_images DISABLE ROW LEVEL SECURITY",
        "row level security set_images is disabled; expected enabled",
    ),
    "changed column type": (
        "ALTER TABLE sets ALTER COLUMN release_date TYPE timestamp",
        "column sets.release_date is timestamp without time zone NULL",
    ),
    "dropped FK": (
        "ALTER TABLE set_images DROP CONSTRAINT set_images_set_id_fkey",
        "missing constraint set_images.set_images_set_id_fkey",
    ),
    "dropped CHECK": (
        "ALTER TABLE sets DROP CONSTRAINT sets_quantity_at_least_one",
        "missing constraint sets.sets_quantity_at_least_one",
    ),
}


@pytest.fixture
async def fresh(migrated_database: Callable[[], Awaitable[str]]) -> str:
    return await migrated_database()


def check(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "COLUMNS": "300"}
    return subprocess.run(
        [SETS_DB, "migrate", "--check"], cwd=REPO_ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


async def test_the_expected_schema_file_is_what_migrate_builds(server_url: str) -> None:
    """expected_schema.json cannot go stale: a fresh database is built and compared."""
    built = await fresh_catalog(server_url)
    assert dumps(built) == dumps(expected_schema()), (
        "regenerate with: python -m sets_db.schema_check SERVER_URL ../shared/spec/"
        "seed-drizzle-reference.sql"
    )


async def test_the_drizzle_schema_file_is_what_the_story_ddl_builds(server_url: str) -> None:
    """drizzle_schema.json (what adopt expects) is the reference DDL's catalog, normalised."""
    assert dumps(await ddl_catalog(server_url, DRIZZLE_REFERENCE_SQL)) == dumps(drizzle_schema())


async def test_a_fresh_database_passes(fresh: str) -> None:
    assert await pending_or_drift(fresh) == []
    result = check(fresh)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", list(DRIFTS))
async def test_each_kind_of_drift_fails_the_check(fresh: str, kind: str) -> None:
    statement, expected = DRIFTS[kind]
    conn = await connect(fresh)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
    problems = await pending_or_drift(fresh)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"live schema: {expected}"), problems
    result = check(fresh)
    assert result.returncode == 1
    assert f"live schema: {expected}" in result.stdout + result.stderr


async def test_the_catalog_is_read_the_same_way_by_the_contract_tests(fresh: str) -> None:
    assert await catalog_of(fresh) == expected_schema()
