"""Migration 2 (``scale_indexes``): built CONCURRENTLY on a table that already has data,
valid, and rolled back cleanly.

The aerich runs happen in project copies whose history stops right after migration 2, so
these tests keep testing this migration when later ones are added.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from sets_db.migrator import load_migration
from tests.pg import (
    aerich_in,
    copy_project,
    execute,
    fetch,
    migration_named,
    output_of,
    schema_snapshot,
    version_number,
)

EmptyDatabase = Callable[[], Awaitable[str]]
MIGRATION = "scale_indexes"

NEW_INDEXES = {
    "sets_user_created_idx": (
        "CREATE INDEX sets_user_created_idx ON public.sets USING btree (user_id, created_at, id)"
    ),
    "sets_user_set_number_idx": (
        "CREATE INDEX sets_user_set_number_idx ON public.sets USING btree (user_id, set_number)"
    ),
    "sets_tags_gin_idx": "CREATE INDEX sets_tags_gin_idx ON public.sets USING gin (tags)",
}
STORY_INDEXES = {"sets_user_id_idx", "sets_set_number_idx", "sets_theme_idx"}

INDEX_STATE = """
SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisready
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'sets'::regclass
"""

# Every value of every row, in one stable text: "intact" means this string is unchanged.
ALL_DATA = """
SELECT (SELECT string_agg(s::text, '|' ORDER BY s.id) FROM sets s) AS sets,
       (SELECT string_agg(i::text, '|' ORDER BY i.id) FROM set_images i) AS images
"""

SEED = """
INSERT INTO sets (user_id, title, set_number, store, source_url, piece_count, release_date,
                  theme, tags, notes, is_built, quantity, purchase_price, tax, shipping,
                  purchase_date, wishlist_item_id)
SELECT 'user-' || (g % 37), 'Set ' || g, (10000 + g % 300)::text, 'Store', 'https://x.test/' || g,
       g % 4000, now() - g * interval '1 day', (ARRAY['City', 'Technic', NULL])[1 + g % 3],
       ARRAY['tag' || (g % 7), 'shared'], 'notes ' || g, g % 2 = 0, 1 + g % 3,
       (g % 900) + 0.99, 1.25, 4.50, now() - g * interval '1 hour', gen_random_uuid()
FROM generate_series(1, 3000) AS g;
INSERT INTO set_images (set_id, image_url, thumbnail_url, position)
SELECT id, 'https://img.test/' || id || '/' || p, NULL, p
FROM sets, generate_series(0, 2) AS p;
"""


def _project(tmp_path: Path, name: str, *, upto: int) -> Path:
    return copy_project(tmp_path / name, upto=upto)


async def _index_state(url: str) -> dict[str, tuple[str, bool, bool]]:
    return {row[0]: (row[1], row[2], row[3]) for row in await fetch(url, INDEX_STATE)}


async def _database_before_migration_2(
    empty_database: EmptyDatabase, tmp_path: Path
) -> tuple[str, Path]:
    """A database at migration 1 holding data, and a project whose history ends at 2."""
    number = version_number(migration_named(MIGRATION))
    url = await empty_database()
    output_of(aerich_in(_project(tmp_path, "before", upto=number), url, "upgrade"))
    await execute(url, SEED)
    return url, _project(tmp_path, "with_indexes", upto=number + 1)


def test_migration_adds_the_new_indexes() -> None:
    # How it builds them: test_migrations.py::test_index_migrations_build_concurrently.
    assert set(load_migration(migration_named(MIGRATION)).INDEXES) == set(NEW_INDEXES)


async def test_upgrade_with_data_builds_valid_indexes_and_keeps_every_row(
    empty_database: EmptyDatabase, tmp_path: Path
) -> None:
    url, project = await _database_before_migration_2(empty_database, tmp_path)
    data_before = await fetch(url, ALL_DATA)

    lines = output_of(aerich_in(project, url, "upgrade"))

    assert lines == [f"Success upgrading to {migration_named(MIGRATION).name}"]
    state = await _index_state(url)
    for name, definition in NEW_INDEXES.items():
        assert state[name] == (definition, True, True), name
    assert set(state) >= STORY_INDEXES
    assert await fetch(url, ALL_DATA) == data_before
    assert (await fetch(url, "SELECT count(*) FROM set_images"))[0][0] == 9000


async def test_downgrade_drops_only_the_new_indexes_and_upgrade_rebuilds_them(
    empty_database: EmptyDatabase, tmp_path: Path
) -> None:
    url, project = await _database_before_migration_2(empty_database, tmp_path)
    data = await fetch(url, ALL_DATA)
    before = await schema_snapshot(url)
    output_of(aerich_in(project, url, "upgrade"))
    after = await schema_snapshot(url)
    number = version_number(migration_named(MIGRATION))

    lines = output_of(aerich_in(project, url, "downgrade", "-v", str(number), "--yes"))

    assert lines == [f"Success downgrading to {migration_named(MIGRATION).name}"]
    assert await schema_snapshot(url) == before
    assert not set(NEW_INDEXES) & set(await _index_state(url))
    assert await fetch(url, ALL_DATA) == data
    output_of(aerich_in(project, url, "upgrade"))
    assert await schema_snapshot(url) == after
    assert await fetch(url, ALL_DATA) == data


async def test_upgrade_replaces_an_invalid_index_left_by_a_failed_build(
    empty_database: EmptyDatabase, tmp_path: Path
) -> None:
    """A failed CONCURRENTLY build leaves an INVALID index; IF NOT EXISTS alone would keep it."""
    url, project = await _database_before_migration_2(empty_database, tmp_path)
    await execute(
        url,
        "CREATE INDEX sets_user_created_idx ON sets (user_id);"
        " UPDATE pg_index SET indisvalid = false"
        " WHERE indexrelid = 'sets_user_created_idx'::regclass;",
    )

    output_of(aerich_in(project, url, "upgrade"))

    state = await _index_state(url)
    assert state["sets_user_created_idx"] == (NEW_INDEXES["sets_user_created_idx"], True, True)


async def test_sets_db_migrate_applied_the_indexes(database_url: str) -> None:
    """The run's database is built by ``sets_db.migrate()``: the indexes are there, valid."""
    state = await _index_state(database_url)
    for name, definition in NEW_INDEXES.items():
        assert state[name] == (definition, True, True), name
