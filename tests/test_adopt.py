"""``sets-db adopt``: a database made and filled by the story's Drizzle app, taken over intact."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from sets_db.adopt import AdoptionError, adopt
from sets_db.migrator import migrate, pending_or_drift
from sets_db.schema_check import catalog_of
from tests.drizzle import as_instants, drizzle_database, fill_like_drizzle, rows
from tests.pg import (
    REPO_ROOT,
    create_database,
    drop_database,
    execute,
    schema_snapshot,
)

SETS_DB = str(Path(sys.executable).with_name("sets-db"))
Factory = Callable[[str], Awaitable[str]]


@pytest.fixture(scope="module")
async def migrated_catalog(server_url: str) -> AsyncIterator[dict[str, str]]:
    """The catalog of a database built by ``sets-db migrate`` from nothing."""
    url = await create_database(server_url, "head")
    try:
        await migrate(url)
        yield await catalog_of(url)
    finally:
        await drop_database(url)


@pytest.fixture
async def drizzle(server_url: str) -> AsyncIterator[Factory]:
    """A factory of filled Drizzle-made databases whose sessions run in a given zone."""
    made: list[str] = []

    async def make(zone: str) -> str:
        made.append(await drizzle_database(server_url, zone))
        await fill_like_drizzle(made[-1])
        return made[-1]

    yield make
    for url in made:
        await drop_database(url)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
async def test_adopt_keeps_every_value_and_yields_the_migrated_schema(
    drizzle: Factory, migrated_catalog: dict[str, str], zone: str
) -> None:
    url = await drizzle(zone)
    before = {table: await rows(url, table) for table in ("sets", "set_images")}
    assert before["sets"]
    assert before["set_images"]

    result = await adopt(url, timezone=zone)

    assert result.state == "adopted"
    assert result.verified_rows == {table: len(found) for table, found in before.items()}
    assert await catalog_of(url) == migrated_catalog
    for table, source in before.items():
        assert await rows(url, table) == as_instants(source, table, zone), table
    assert await pending_or_drift(url) == []


async def test_a_second_adopt_is_a_no_op(drizzle: Factory) -> None:
    url = await drizzle("UTC")
    await adopt(url, timezone="UTC")
    snapshot = await schema_snapshot(url)
    data = await rows(url, "sets")
    again = await adopt(url, timezone="UTC")
    assert again.state == "managed"
    assert "already managed by sets-db" in again.lines[0]
    assert await schema_snapshot(url) == snapshot
    assert await rows(url, "sets") == data


async def test_a_fresh_sets_db_database_is_left_alone(migrated_catalog: dict[str, str],
                                                      server_url: str) -> None:  # fmt: skip
    url = await create_database(server_url, "managed")
    try:
        await migrate(url)
        assert (await adopt(url, timezone="UTC")).state == "managed"
        assert await catalog_of(url) == migrated_catalog
    finally:
        await drop_database(url)


async def test_dry_run_prints_every_statement_and_changes_nothing(drizzle: Factory) -> None:
    url = await drizzle("Europe/Berlin")
    snapshot, data = await schema_snapshot(url), await rows(url, "sets")
    result = await adopt(url, timezone="Europe/Berlin", dry_run=True)
    assert result.state == "planned"
    text = "\n".join(result.lines)
    assert 'ALTER COLUMN "created_at" TYPE timestamptz USING "created_at" AT TIME ZONE' in text
    assert 'RENAME CONSTRAINT "set_images_set_id_sets_id_fk" TO "set_images_set_id_fkey"' in text
    assert 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "sets_user_created_idx"' in text
    assert "CREATE POLICY" in text
    assert await schema_snapshot(url) == snapshot
    assert await rows(url, "sets") == data


async def test_the_utc_plan_has_no_rewrite(drizzle: Factory) -> None:
    result = await adopt(await drizzle("UTC"), timezone="UTC", dry_run=True)
    assert "SET LOCAL TimeZone = 'UTC';" in result.plan
    assert not [line for line in result.plan if "AT TIME ZONE" in line]


async def test_an_unexpected_column_is_refused_and_nothing_changes(drizzle: Factory) -> None:
    url = await drizzle("UTC")
    await execute(url, "ALTER TABLE sets ADD COLUMN color text")
    snapshot = await schema_snapshot(url)
    with pytest.raises(AdoptionError) as caught:
        await adopt(url, timezone="UTC")
    assert "unexpected column sets.color: text NULL" in caught.value.detail
    assert await schema_snapshot(url) == snapshot


async def test_a_changed_type_and_a_missing_table_are_refused(drizzle: Factory) -> None:
    url = await drizzle("UTC")
    await execute(url, "ALTER TABLE sets ALTER COLUMN quantity TYPE bigint; DROP TABLE set_images")
    with pytest.raises(AdoptionError) as caught:
        await adopt(url, timezone="UTC")
    assert "column sets.quantity is bigint NOT NULL DEFAULT 1; expected" in caught.value.detail
    assert "missing table set_images" in caught.value.detail


async def test_rows_that_break_a_constraint_are_reported_first(drizzle: Factory) -> None:
    url = await drizzle("UTC")
    await execute(url, "UPDATE sets SET quantity = 0 WHERE title LIKE 'Set 1 %'")
    dry = await adopt(url, timezone="UTC", dry_run=True)
    assert dry.violations == {"sets_quantity_at_least_one": 1}
    snapshot = await schema_snapshot(url)
    with pytest.raises(AdoptionError, match=r"sets_quantity_at_least_one \(1 rows\)"):
        await adopt(url, timezone="UTC")
    assert await schema_snapshot(url) == snapshot


async def test_a_database_migrated_by_mistake_is_adopted_too(
    drizzle: Factory, migrated_catalog: dict[str, str]
) -> None:
    """``sets-db migrate`` run first on a Drizzle database records every migration and
    leaves the zoneless columns; adopt still converts them and finishes the job."""
    url = await drizzle("UTC")
    await migrate(url)
    assert [p for p in await pending_or_drift(url) if "timestamp without time zone" in p]
    assert (await adopt(url, timezone="UTC")).state == "adopted"
    assert await catalog_of(url) == migrated_catalog


def _cli(url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "COLUMNS": "300"}
    env.pop("DATABASE_DIRECT_URL", None)
    return subprocess.run(
        [SETS_DB, "adopt", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=120, input=stdin,
    )  # fmt: skip


async def test_cli_needs_the_server_zone_confirmed(drizzle: Factory) -> None:
    url = await drizzle("America/New_York")
    refused = _cli(url)
    assert refused.returncode == 1, refused.stderr
    assert "America/New_York" in refused.stderr
    assert "--yes" in refused.stderr
    done = _cli(url, "--yes")
    assert done.returncode == 0, done.stderr
    assert "verified 40 row(s) of sets" in done.stdout
    again = _cli(url, "--yes")
    assert again.returncode == 0
    assert "already managed by sets-db" in again.stdout
