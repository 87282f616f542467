"""The aerich migration history, checked like pytest-alembic's built-in tests, but for aerich.

Everything runs the real ``aerich`` command line (as a developer or a deploy would) against
throwaway databases, and reads the result back from the PostgreSQL catalog.
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aerich.utils import decompress_dict

from sets_db.migrator import RecordingConnection, load_migration
from tests.pg import (
    MIGRATIONS_DIR,
    aerich,
    aerich_in,
    connect,
    copy_project,
    migration_files,
    migration_named,
    output_of,
    python,
    schema_snapshot,
    version_number,
)

EmptyDatabase = Callable[[], Awaitable[str]]
Snapshot = dict[str, list[tuple[Any, ...]]]

# aerich's own file name: <number>_<YYYYmmddHHMMSS>_<name>.py
FILE_NAME = re.compile(r"^(0|[1-9][0-9]*)_[0-9]{14}_[A-Za-z0-9_]+\.py$")


def _files() -> list[str]:
    return [path.name for path in migration_files()]


def _upgraded(lines: list[str], files: list[str]) -> None:
    assert lines == [f"Success upgrading to {name}" for name in files]


def _downgraded(lines: list[str], files: list[str]) -> None:
    assert lines == [f"Success downgrading to {name}" for name in files]


async def _applied_versions(url: str) -> list[str]:
    conn = await connect(url)
    try:
        return [row[0] for row in await conn.fetch("SELECT version FROM aerich ORDER BY id")]
    finally:
        await conn.close()


def _without(snapshot: Snapshot, table: str) -> Snapshot:
    """``snapshot`` minus every row that names ``table`` (its columns, indexes, types, ...)."""
    return {
        name: [row for row in rows if not any(isinstance(v, str) and table in v for v in row)]
        for name, rows in snapshot.items()
    }


# --- 1. One straight line ------------------------------------------------------------------


def test_history_is_one_straight_line() -> None:
    """Files numbered 0..N-1, no gap, no two with the same number, nothing aerich would skip."""
    candidates = sorted(
        p.name for p in MIGRATIONS_DIR.iterdir() if p.suffix == ".py" and p.name != "__init__.py"
    )
    # aerich silently ignores a file whose name does not start with "<digits>_": a typo there
    # would drop a migration from the history without a word.
    assert [name for name in candidates if not FILE_NAME.match(name)] == []
    numbers = sorted(int(name.split("_", 1)[0]) for name in candidates)
    assert len(numbers) >= 2
    assert numbers == list(range(len(numbers))), f"gap or duplicate in {candidates}"
    assert [version_number(p) for p in migration_files()] == numbers


async def test_every_migration_has_upgrade_downgrade_and_models_state() -> None:
    for path in migration_files():
        module = load_migration(path)
        for name in ("upgrade", "downgrade"):
            function = getattr(module, name, None)
            assert inspect.iscoroutinefunction(function), f"{path.name}: no async {name}()"
            # aerich runs the SQL returned; an empty downgrade makes it refuse ("No
            # downgrade items found"), and an empty string crashes asyncpg.
            sql = await function(RecordingConnection())
            assert isinstance(sql, str), f"{path.name}: {name}() returns no SQL"
            assert sql.strip(), f"{path.name}: empty {name}()"
        state = getattr(module, "MODELS_STATE", None)
        assert isinstance(state, str), f"{path.name}: no MODELS_STATE"
        described = decompress_dict(state)
        assert {"models.Set", "models.Aerich"} <= set(described), path.name


async def test_history_starts_like_the_story() -> None:
    """Migration 0 creates sets (and aerich's table), migration 1 creates set_images."""
    first, second = (load_migration(p) for p in migration_files()[:2])
    up0, up1 = (
        await first.upgrade(RecordingConnection()),
        await second.upgrade(RecordingConnection()),
    )
    assert 'CREATE TABLE IF NOT EXISTS "sets"' in up0
    assert 'CREATE TABLE IF NOT EXISTS "aerich"' in up0
    assert "set_images" not in up0
    assert 'CREATE TABLE IF NOT EXISTS "set_images"' in up1


async def test_aerich_history_and_heads_agree_with_the_files(database_url: str) -> None:
    assert output_of(aerich(database_url, "history")) == _files()
    # The run's database was migrated to head before the first test.
    assert output_of(aerich(database_url, "heads")) == ["No available heads."]
    assert await _applied_versions(database_url) == _files()


# --- 3. Models match migrations ------------------------------------------------------------


def test_models_match_migrations(database_url: str, tmp_path: Path) -> None:
    """``aerich migrate`` at head finds nothing to do (drift = failure), online and offline.

    It runs in a copy of the project, so a drift never leaves a stray file in migrations/.
    """
    project = copy_project(tmp_path / "project")
    folder = project / "migrations" / "models"
    before = sorted(p.name for p in folder.iterdir())
    real_before = sorted(p.name for p in MIGRATIONS_DIR.iterdir())
    # Online: compares the models with the state stored in the database's "aerich" table.
    assert output_of(aerich_in(project, database_url, "migrate")) == ["No changes detected"]
    # Offline: compares them with MODELS_STATE of the last migration file.
    offline = aerich_in(project, database_url, "migrate", "--offline")
    assert output_of(offline) == ["No changes detected"]
    assert sorted(p.name for p in folder.iterdir()) == before
    assert sorted(p.name for p in MIGRATIONS_DIR.iterdir()) == real_before


# The parts of a schema that Tortoise models describe.
MODEL_PARTS = (
    "relations",
    "columns",
    "indexes",
    "constraints",
    "foreign_keys",
    "sequences",
    "types",
    "comments",
)
# What models cannot declare (a trigram operator class, an expression): these indexes live
# only in migrations 5 and 6, and pg_trgm's types come with its extension; nor the
# trigger-kept summaries (migrations 7 and 8), tables without a model. The comparison
# leaves them out.
MIGRATION_ONLY = frozenset(
    {
        "sets_search_trgm_idx",
        "sets_user_total_cost_idx",
        "sets_user_title_prefix_idx",
        "set_tag_counts",
        "_set_tag_counts",
        "set_tag_counts_pkey",
        "set_collection_stats",
        "_set_collection_stats",
        "set_collection_stats_owner_theme_key",
        "gtrgm",
        "_gtrgm",
    }
)
GENERATE_SCHEMAS = """
from tortoise import Tortoise, run_async
from sets_db.config import tortoise_config

async def main() -> None:
    await Tortoise.init(config=tortoise_config(migrations=True))
    await Tortoise.generate_schemas(safe=False)

run_async(main())
"""


async def test_models_generate_the_same_schema_as_the_migrations(
    database_url: str, empty_database: EmptyDatabase
) -> None:
    """The SQL in the migrations builds what the models build on their own.

    ``aerich migrate`` only compares the models with MODELS_STATE; this also catches a
    migration whose SQL was edited by hand away from the models (a default, a type, an
    index, the delete rule). Column order is left out: ALTER TABLE appends columns. So is
    what models cannot say (grants, row-level security, policies, functions, triggers).
    """
    generated = await empty_database()
    output_of(python(generated, GENERATE_SCHEMAS))

    def unordered(snapshot: Snapshot) -> Snapshot:
        snapshot["columns"] = [row[:2] + row[3:] for row in snapshot["columns"]]
        # Nor can models say CHECK constraints (migration 4; tests/test_constraints.py).
        snapshot["constraints"] = [row for row in snapshot["constraints"] if row[2] != b"c"]
        for part in ("relations", "columns", "indexes", "constraints", "types", "comments"):
            snapshot[part] = [row for row in snapshot[part] if not MIGRATION_ONLY.intersection(row)]
        return snapshot

    from_models = unordered(await schema_snapshot(generated))
    from_migrations = unordered(await schema_snapshot(database_url))
    for name in MODEL_PARTS:
        assert from_migrations[name] == from_models[name], name


# --- 4. Upgrade with existing data ---------------------------------------------------------

OFFSET = timezone(timedelta(hours=5, minutes=30))
SETS_ROWS: list[dict[str, Any]] = [
    {
        "id": uuid.UUID("0e3f6c8e-4b1a-4d2e-9c57-000000000001"),
        "user_id": "cognito-sub-1",
        "title": "Millennium Falcon",
        "set_number": "75192",
        "store": "LEGO Store",
        "source_url": "https://www.lego.com/product/75192",
        "piece_count": 7541,
        "release_date": datetime(2017, 10, 1, tzinfo=UTC),
        "theme": "Star Wars",
        "tags": ["ucs", "falcon", "display", "ucs"],
        "notes": 'O\'Brien said "mint" \u2014 \u00fcn\u00efc\u00f8d\u00e9 \U0001f9f1',
        "is_built": True,
        "quantity": 2,
        "purchase_price": Decimal("99999999.99"),
        "tax": Decimal("0.01"),
        "shipping": Decimal("0.00"),
        "purchase_date": datetime(2023, 11, 24, 9, 30, 15, 123456, tzinfo=OFFSET),
        "wishlist_item_id": uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
        "created_at": datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "updated_at": datetime(2024, 6, 7, 8, 9, 10, 111213, tzinfo=OFFSET),
    },
    {
        "id": uuid.UUID("0e3f6c8e-4b1a-4d2e-9c57-000000000002"),
        "user_id": "cognito-sub-2",
        "title": "Eiffel Tower",
        "set_number": "10307-1",
        "store": "Amazon",
        "source_url": "https://example.com/eiffel",
        "piece_count": 10001,
        "release_date": datetime(2022, 11, 25, 23, 59, 59, tzinfo=timezone(timedelta(hours=-8))),
        "theme": "Icons",
        "tags": [],
        "notes": "",
        "is_built": False,
        "quantity": 1,  # the lowest the CHECK constraint of migration 4 allows
        "purchase_price": Decimal("629.99"),
        "tax": Decimal("55.12"),
        "shipping": Decimal("12.34"),
        "purchase_date": datetime(2022, 12, 1, tzinfo=UTC),
        "wishlist_item_id": uuid.UUID("00000000-0000-4000-8000-000000000000"),
        "created_at": datetime(2022, 12, 1, 12, tzinfo=UTC),
        "updated_at": datetime(2022, 12, 2, 12, tzinfo=UTC),
    },
]


async def test_upgrade_with_existing_data_keeps_every_value(
    empty_database: EmptyDatabase, tmp_path: Path
) -> None:
    """Stop at migration 0, fill sets through plain SQL, upgrade to head: nothing changes."""
    url = await empty_database()
    files = _files()
    at_zero = copy_project(tmp_path / "at-0", upto=1)
    _upgraded(output_of(aerich_in(at_zero, url, "upgrade")), files[:1])

    conn = await connect(url)
    try:
        tables = await conn.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relkind = 'r' ORDER BY 1"
        )
        assert [row[0] for row in tables] == ["aerich", "sets"]
        # "All fields filled": the rows must name every column migration 0 created.
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = 'sets'"
        )
        assert {row[0] for row in columns} == set(SETS_ROWS[0])
        names = list(SETS_ROWS[0])
        insert = (
            f"INSERT INTO sets ({', '.join(names)}) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, len(names) + 1))})"
        )
        await conn.executemany(insert, [[row[n] for n in names] for row in SETS_ROWS])
        before = [dict(r) for r in await conn.fetch("SELECT * FROM sets ORDER BY id")]
    finally:
        await conn.close()
    assert before == SETS_ROWS  # the values went in exactly (instants for the datetimes)

    _upgraded(output_of(aerich(url, "upgrade")), files[1:])
    assert output_of(aerich(url, "heads")) == ["No available heads."]

    conn = await connect(url)
    try:
        after = [dict(r) for r in await conn.fetch("SELECT * FROM sets ORDER BY id")]
        text = await conn.fetch("SELECT purchase_price::text, tags::text FROM sets ORDER BY id")
    finally:
        await conn.close()
    assert after == before
    # Equality of Decimals ignores the scale: the stored text shows it is still cents.
    assert [tuple(r) for r in text] == [
        ("99999999.99", "{ucs,falcon,display,ucs}"),
        ("629.99", "{}"),
    ]


# --- 5. Downgrades -------------------------------------------------------------------------


async def _insert_a_set_with_images(url: str) -> None:
    conn = await connect(url)
    try:
        set_id = await conn.fetchval(
            "INSERT INTO sets (user_id, title, tags, purchase_price)"
            " VALUES ('u1', 'Falcon', '{b,a}', 12.34) RETURNING id"
        )
        await conn.execute(
            "INSERT INTO set_images (set_id, image_url, position)"
            " VALUES ($1, 'https://x/1.jpg', 0), ($1, 'https://x/2.jpg', 1)",
            set_id,
        )
    finally:
        await conn.close()


async def _rows(url: str, query: str) -> list[dict[str, Any]]:
    conn = await connect(url)
    try:
        return [dict(row) for row in await conn.fetch(query)]
    finally:
        await conn.close()


async def test_downgrade_one_step_drops_only_set_images(
    empty_database: EmptyDatabase, tmp_path: Path
) -> None:
    """Undoing migration 1 drops set_images and nothing else: sets, its indexes and its rows
    stay, and the schema is exactly the one migration 0 alone builds."""
    url, reference = await empty_database(), await empty_database()
    files = _files()
    at_one = copy_project(tmp_path / "at-1", upto=2)
    at_zero = copy_project(tmp_path / "at-0", upto=1)
    _upgraded(output_of(aerich_in(at_zero, reference, "upgrade")), files[:1])
    _upgraded(output_of(aerich_in(at_one, url, "upgrade")), files[:2])
    await _insert_a_set_with_images(url)
    before = await schema_snapshot(url)
    sets_before = await _rows(url, "SELECT * FROM sets ORDER BY id")
    assert before["relations"] != _without(before, "set_images")["relations"]

    _downgraded(output_of(aerich_in(at_one, url, "downgrade", "--yes")), files[1:2])

    after = await schema_snapshot(url)
    assert after == _without(before, "set_images")
    assert after == await schema_snapshot(reference)
    assert await _rows(url, "SELECT * FROM sets ORDER BY id") == sets_before
    assert await _applied_versions(url) == files[:1]
    assert output_of(aerich_in(at_one, url, "heads")) == files[1:2]


async def test_downgrade_to_zero_leaves_no_trace_and_up_down_up_is_identical(
    empty_database: EmptyDatabase,
) -> None:
    url = await empty_database()
    files = _files()
    pristine = await schema_snapshot(url)
    assert pristine["relations"] == []
    assert pristine["types"] == []

    _upgraded(output_of(aerich(url, "upgrade")), files)
    first_up = await schema_snapshot(url)
    await _insert_a_set_with_images(url)  # rolling back must cope with rows in place

    _downgraded(output_of(aerich(url, "downgrade", "-v", "0", "--yes")), files[::-1])
    # No table, no index, no sequence, no type, no comment: not even aerich's own table.
    assert await schema_snapshot(url) == pristine

    _upgraded(output_of(aerich(url, "upgrade")), files)
    assert await schema_snapshot(url) == first_up
    assert output_of(aerich(url, "heads")) == ["No available heads."]
    assert await _applied_versions(url) == files


async def test_each_downgrade_steps_back_one_migration(empty_database: EmptyDatabase) -> None:
    """From head, ``aerich downgrade`` (no -v) undoes one migration at a time down to empty."""
    url = await empty_database()
    files = _files()
    pristine = await schema_snapshot(url)
    _upgraded(output_of(aerich(url, "upgrade")), files)
    for applied in range(len(files), 0, -1):
        _downgraded(output_of(aerich(url, "downgrade", "--yes")), [files[applied - 1]])
        if applied > 1:
            assert await _applied_versions(url) == files[: applied - 1]
    assert await schema_snapshot(url) == pristine


@pytest.mark.parametrize(
    ("migration", "first"),
    [
        ("heavy_collector_indexes", ["CREATE EXTENSION IF NOT EXISTS pg_trgm"]),
        ("title_prefix_index", []),
        ("scale_indexes", []),
    ],
)
async def test_index_migrations_build_concurrently(migration: str, first: list[str]) -> None:
    module = load_migration(migration_named(migration))
    assert module.RUN_IN_TRANSACTION is False
    recorder = RecordingConnection()
    await module.upgrade(recorder)
    assert recorder.statements == [
        *first,
        *(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" {definition}'
            for name, definition in module.INDEXES.items()
        ),
    ]
