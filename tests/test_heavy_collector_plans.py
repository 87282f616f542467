"""Migrations 5, 6, 8 and 9: their indexes and the stats summary serve the heavy collector's
calls, and cost no legal row its place.

The data set: one owner with 6,000 sets (a collection big enough for PostgreSQL to prefer an
index over reading and sorting all of it) and 300 ordinary owners with 20 each, made on the
server in one statement, VACUUMed (the visibility map an index-only scan needs, as
autovacuum keeps it) and ANALYZEd. Each statement is EXPLAINed with its real parameters and
as the generic plan a prepared statement switches to after five calls.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sets_db.migrator import load_migration
from sets_db.schemas import SetQuery, SortKey
from sets_db.services import collection
from sets_db.services.listing import TITLE_PREFIX_CHARS, build_page_sql
from tests.pg import cursor_after, loaded_database, migration_named, plan_nodes

HEAVY = "heavy-collector"

LOAD_SQL = f"""
INSERT INTO sets (user_id, title, set_number, theme, tags, piece_count, release_date,
                  purchase_date, purchase_price, tax, shipping, is_built, quantity, created_at)
SELECT CASE WHEN g <= 6000 THEN '{HEAVY}' ELSE 'owner-' || g % 300 END,
       CASE WHEN g % 400 = 0 THEN 'Star Wars Advent Calendar ' || g
            ELSE (ARRAY['Imperial', 'Modular', 'Police', 'Medieval'])[1 + g % 4] || ' '
                 || (ARRAY['Castle', 'Station', 'Train', 'Harbor', 'Temple'])[1 + g % 5]
                 || ' ' || g END,
       (10000 + g)::text || '-1',
       (ARRAY['Gear', 'Star Wars', 'City', 'Technic', 'Books', NULL])[1 + g % 6],
       (ARRAY['sealed', 'display', 'gift', 'retired', 'used'])[1 + g % 3:2 + g % 4],
       NULLIF(g % 5000, 0), timestamptz '1970-01-01' + g * interval '3 days',
       timestamptz '2000-01-01' + g * interval '1 day',
       (g % 85000) / 100.0, (g % 7000) / 100.0, NULL, g % 2 = 0, 1,
       timestamptz '2021-01-01' + g * interval '13 minutes'
FROM generate_series(1, 12000) AS g;
"""


@pytest.fixture(scope="module")
async def heavy_db(server_url: str) -> AsyncIterator[Any]:
    async with loaded_database(server_url, "heavy", LOAD_SQL) as conn:
        yield conn


async def _index_scans(conn: Any, sql: str, values: list[Any], *, generic: bool) -> set[str]:
    """(node type, index) of every index the plan reads ``sets`` through."""
    mode = "force_generic_plan" if generic else "force_custom_plan"
    async with conn.transaction():
        await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
        raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *values)
    plan = json.loads(raw)[0]["Plan"]
    return {f"{n['Node Type']} {n['Index Name']}" for n in plan_nodes(plan) if "Index Name" in n}


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_search_uses_the_trigram_index(heavy_db: Any, generic: bool) -> None:
    sql, values = build_page_sql(SetQuery(search="star wars"), HEAVY)
    scans = await _index_scans(heavy_db, sql, values, generic=generic)
    assert "Bitmap Index Scan sets_search_trgm_idx" in scans, scans


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize(
    ("sort", "index"),
    [
        ("total_cost", "sets_user_total_cost_idx"),
        ("piece_count", "sets_user_piece_count_idx"),
        ("release_date", "sets_user_release_date_idx"),
        ("purchase_date", "sets_user_purchase_date_idx"),
    ],
)
@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
async def test_a_sorted_first_page_walks_its_index(
    heavy_db: Any, sort: SortKey, index: str, descending: bool, generic: bool
) -> None:
    """Both directions: NULL keys come last in each, so a descending page of a nullable key
    is not the ascending index read backward (that puts the NULLs first)."""
    sql, values = build_page_sql(SetQuery(sort=sort, descending=descending), HEAVY)
    scans = await _index_scans(heavy_db, sql, values, generic=generic)
    of_sets = {scan for scan in scans if "set_images" not in scan}
    assert of_sets <= {f"Index Scan {index}", f"Index Scan Backward {index}"}, scans
    assert of_sets, scans


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
@pytest.mark.parametrize("depth", [0, 3000], ids=["first", "deep"])
async def test_a_title_page_walks_the_prefix_index(
    heavy_db: Any, depth: int, descending: bool, generic: bool
) -> None:
    """Only the prefix is indexed: the plan walks it and sorts within equal prefixes."""
    query = SetQuery(sort="title", descending=descending)
    if depth:
        query = SetQuery(
            sort="title",
            descending=descending,
            cursor=await cursor_after(heavy_db, HEAVY, query, depth),
        )
    sql, values = build_page_sql(query, HEAVY)
    scans = await _index_scans(heavy_db, sql, values, generic=generic)
    assert "Index Scan sets_user_title_prefix_idx" in scans, scans


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("depth", [0, 600], ids=["first", "deep"])
async def test_a_themes_page_walks_the_theme_index(
    heavy_db: Any, depth: int, generic: bool
) -> None:
    """The heavy owner's largest theme (1,000 sets): the generic plan, which guesses a
    theme's share from the average, read all of them and sorted them without this index."""
    query = SetQuery(themes=["Gear"])
    if depth:
        query = SetQuery(themes=["Gear"], cursor=await cursor_after(heavy_db, HEAVY, query, depth))
    sql, values = build_page_sql(query, HEAVY)
    scans = await _index_scans(heavy_db, sql, values, generic=generic)
    assert "Index Scan sets_user_theme_created_idx" in scans, scans


async def test_the_title_index_holds_the_prefix_the_sort_uses(heavy_db: Any) -> None:
    definition = await heavy_db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'sets_user_title_prefix_idx'"
    )
    assert definition.endswith(f'(user_id, "left"(title, {TITLE_PREFIX_CHARS}))'), definition


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("sql", ["STATS_SQL", "THEMES_SQL"])
async def test_stats_and_themes_read_only_the_owners_summary_rows(
    heavy_db: Any, sql: str, generic: bool
) -> None:
    scans = await _index_scans(heavy_db, getattr(collection, sql), [HEAVY], generic=generic)
    # An index scan or, on a summary not yet analyzed, a bitmap one: either way its key only.
    assert {scan.rsplit(" ", 1)[1] for scan in scans} == {"set_collection_stats_owner_theme_key"}, (
        scans
    )


async def test_the_largest_legal_row_still_fits_every_index(heavy_db: Any) -> None:
    """Four-byte characters at every length limit: no index entry outgrows a btree page."""
    wide = "\U0001f9f1"  # one brick, four bytes in UTF-8
    row = await heavy_db.fetchrow(
        "INSERT INTO sets (user_id, title, set_number, theme, tags) VALUES ($1, $2, $3, $3, $4)"
        " RETURNING octet_length(user_id) + octet_length(title) AS bytes",
        wide * 255,
        "".join(chr(0x1F000 + n) for n in range(500)),  # incompressible
        "".join(chr(0x1F600 + n) for n in range(200)),
        ["".join(chr(0x1F300 + k * 50 + n) for n in range(50)) for k in range(50)],
    )
    assert row["bytes"] == 4 * (255 + 500)


@pytest.mark.parametrize(
    "migration", ["heavy_collector_indexes", "title_prefix_index", "theme_created_index"]
)
async def test_downgrade_sql_names_every_index(heavy_db: Any, migration: str) -> None:
    path = migration_named(migration)
    module = load_migration(path)
    downgrade = await module.downgrade(None)
    present = {
        row["indexname"]
        for row in await heavy_db.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'sets'")
    }
    # Migration 9 replaces one of migration 5's indexes: gone at head.
    replaced = {load_migration(migration_named("theme_created_index")).REPLACED[0]}
    assert not replaced & present
    assert set(module.INDEXES) - replaced <= present
    for name in module.INDEXES:
        assert f'DROP INDEX IF EXISTS "{name}";' in downgrade
