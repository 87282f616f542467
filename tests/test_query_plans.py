"""Every owner-scoped service query is an index lookup, never a sequential scan of ``sets``.

The data set: 200,000 sets over 2,000 typical owners (~80 sets each) plus 10 collectors with
4,000 sets each, 0-2 images per set, made by one INSERT ... SELECT in a database of this
module's own, then ANALYZEd. The claim is for 1M sets; a test has to stay fast, and at
this size the planner makes the same choices as at 1M (checked by hand with the same
statements on 1,000,000 sets / 1,000 typical owners + 50 collectors: the same index for
every query below). A typical owner's rows are a tiny fraction of the table at either
size, so the choice does not flip between them; the collectors check the skewed case.

Each statement is EXPLAINed twice: with its real parameters (a custom plan), and with
``plan_cache_mode = force_generic_plan``, which is the plan a prepared statement (asyncpg
caches them) switches to after five calls. ``enable_seqscan`` is never touched.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sets_db.schemas import SetQuery, SortKey
from sets_db.services import collection, images, listing, rows, transfer
from sets_db.services import sets as sets_service
from sets_db.services.listing import build_page_sql
from sets_db.services.owned import owned_images, owned_sets
from sets_db.services.rows import FETCH_SET_SQL
from tests.pg import cursor_after, loaded_database, plan_nodes

SETS = 200_000
TYPICAL_OWNERS = 2_000
COLLECTORS = 10


def load_sql(sets: int, typical_owners: int, collectors: int) -> str:
    """The data set, made on the server in one statement per table (seconds, not minutes)."""
    return f"""
INSERT INTO sets (user_id, title, set_number, theme, tags, piece_count, purchase_price, tax,
                  shipping, is_built, quantity, created_at, updated_at)
SELECT CASE WHEN g % 5 = 0 THEN 'collector-' || (g / 5) % {collectors}
            ELSE 'owner-' || abs(hashtext(g::text)) % {typical_owners} END,
       (ARRAY['Millennium', 'Imperial', 'Modular', 'Police', 'Medieval'])[1 + g % 5]
           || ' ' || (ARRAY['Falcon', 'Castle', 'Station', 'Train', 'Harbor', 'Temple'])[1 + g % 6]
           || ' ' || g,
       (10000 + (g::bigint * 7919) % 6000)::text,
       (ARRAY['Star Wars', 'City', 'Technic', 'Icons', 'Ideas', 'Harry Potter', 'Ninjago',
              'Friends', 'Architecture', NULL])[1 + g % 10],
       (ARRAY['sealed', 'display', 'gift', 'retired', 'used', 'boxed', 'minifigs', 'moc',
              'sale', 'ucs'])[1 + 2 * (g % 5):2 * (g % 5) + g % 3],
       g % 9000, (g % 85000) / 100.0, (g % 7000) / 100.0, CASE WHEN g % 3 = 0 THEN 4.99 END,
       g % 5 < 3, 1 + (g % 10 = 0)::int,
       timestamptz '2021-01-01' + g * interval '13 minutes',
       timestamptz '2021-01-01' + g * interval '13 minutes'
FROM generate_series(1, {sets}) AS g;
INSERT INTO set_images (set_id, image_url, position)
SELECT s.id, 'https://img.test/' || s.id || '/' || p, p
FROM sets s, generate_series(0, 1) AS p
WHERE p < abs(hashtext(s.id::text)) % 3;
"""


TYPICAL = "owner-77"
COLLECTOR = "collector-3"


@pytest.fixture(scope="module")
async def plans_db(server_url: str) -> AsyncIterator[Any]:
    load = load_sql(SETS, TYPICAL_OWNERS, COLLECTORS)
    async with loaded_database(server_url, "plans", load, ("sets", "set_images")) as conn:
        yield conn


# The tables an owner's statements read by user_id: sets, and the summaries kept from it.
OWNER_TABLES = {"sets", "set_tag_counts", "set_collection_stats"}


async def _plan(conn: Any, sql: str, values: list[Any], *, generic: bool) -> dict[str, Any]:
    mode = "force_generic_plan" if generic else "auto"
    async with conn.transaction():
        await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
        raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *values)
    plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
    return plan


async def _assert_indexed(conn: Any, sql: str, values: list[Any]) -> None:
    for generic in (False, True):
        plan = await _plan(conn, sql, values, generic=generic)
        nodes = list(plan_nodes(plan))
        seq_scans = [n for n in nodes if n["Node Type"] == "Seq Scan"]
        assert not seq_scans, f"sequential scan (generic={generic}):\n{json.dumps(plan, indent=1)}"
        on_sets = [
            n for n in nodes if n.get("Relation Name") in OWNER_TABLES and "Scan" in n["Node Type"]
        ]
        assert on_sets or "public.set_images" in sql, plan
        assert all(
            n["Node Type"] in {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"} for n in on_sets
        ), json.dumps(plan, indent=1)


OWNERS = [TYPICAL, COLLECTOR]


@pytest.mark.parametrize("user_id", OWNERS)
async def test_default_page(plans_db: Any, user_id: str) -> None:
    await _assert_indexed(plans_db, *build_page_sql(SetQuery(), user_id))


async def test_deep_page_with_a_cursor(plans_db: Any) -> None:
    cursor = await cursor_after(plans_db, COLLECTOR, SetQuery(), depth=1000)  # 20 pages of 50
    await _assert_indexed(plans_db, *build_page_sql(SetQuery(cursor=cursor), COLLECTOR))


@pytest.mark.parametrize("user_id", OWNERS)
@pytest.mark.parametrize(
    "filters",
    [
        {"themes": ["City"], "tags": ["gift"], "search": "castle"},
        {"themes": ["Star Wars", "Technic"]},
        {"tags": ["sealed"]},
        {"search": "10%_x"},
        {"set_number": "10042", "is_built": True},
    ],
)
async def test_filtered_page(plans_db: Any, user_id: str, filters: dict[str, Any]) -> None:
    await _assert_indexed(plans_db, *build_page_sql(SetQuery(**filters), user_id))


@pytest.mark.parametrize("user_id", OWNERS)
@pytest.mark.parametrize(
    "sort", ["title", "piece_count", "release_date", "purchase_date", "total_cost"]
)
async def test_other_sort_orders(plans_db: Any, user_id: str, sort: SortKey) -> None:
    await _assert_indexed(plans_db, *build_page_sql(SetQuery(sort=sort), user_id))


@pytest.mark.parametrize("user_id", OWNERS)
@pytest.mark.parametrize(
    "sql",
    [
        collection.STATS_SQL,
        collection.THEMES_SQL,
        collection.TAGS_SQL,
        collection.DUPLICATE_GROUPS_SQL,
    ],
    ids=["collection_stats", "list_themes", "list_tags", "list_duplicate_groups"],
)
async def test_whole_collection_views(plans_db: Any, user_id: str, sql: str) -> None:
    await _assert_indexed(plans_db, sql, [user_id])


@pytest.mark.parametrize("user_id", OWNERS)
async def test_find_duplicates(plans_db: Any, user_id: str) -> None:
    number = await plans_db.fetchval(
        "SELECT set_number FROM sets WHERE user_id = $1 LIMIT 1", user_id
    )
    await _assert_indexed(plans_db, collection.DUPLICATES_SQL, [user_id, number])


async def test_get_set(plans_db: Any) -> None:
    set_id = await plans_db.fetchval("SELECT id FROM sets WHERE user_id = $1 LIMIT 1", TYPICAL)
    await _assert_indexed(plans_db, FETCH_SET_SQL, [set_id, TYPICAL])


async def test_the_data_set_is_what_the_docstring_says(plans_db: Any) -> None:
    counts = await plans_db.fetchrow(
        "SELECT count(*) AS sets, count(DISTINCT user_id) AS owners,"
        " (SELECT count(*) FROM sets WHERE user_id = $1) AS collector,"
        " (SELECT count(*) FROM set_images) AS images FROM sets",
        COLLECTOR,
    )
    assert (counts["sets"], counts["owners"], counts["collector"]) == (
        SETS,
        TYPICAL_OWNERS + COLLECTORS,
        SETS // 5 // COLLECTORS,
    )
    assert counts["images"] > SETS // 2


# --- Every statement the services send, enumerated -------------------------------------------

# Statements that are built per call (list pages, updates) are covered above or below by
# name; every module-level ``*_SQL`` constant of the services must appear in STATEMENTS.
STATEMENT_MODULES = (rows, sets_service, images, collection, transfer, listing)


def _service_statements() -> dict[str, str]:
    found: dict[str, str] = {}
    for module in STATEMENT_MODULES:
        for name, value in vars(module).items():
            # An imported constant is the same object: named once, where it is defined.
            if name.endswith("_SQL") and isinstance(value, str) and value not in found.values():
                found[f"{module.__name__.rsplit('.', 1)[-1]}.{name}"] = value
    return found


async def _ids(conn: Any) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT s.id AS set_id, i.id AS image_id FROM sets s JOIN set_images i ON i.set_id = s.id"
        " WHERE s.user_id = $1 LIMIT 1",
        TYPICAL,
    )
    return dict(row)


# name -> the arguments it is EXPLAINed with (from a typical owner's set and image).
STATEMENTS: dict[str, Any] = {
    "rows.FETCH_SET_SQL": lambda ids: [ids["set_id"], TYPICAL],
    "images.APPEND_IMAGE_SQL": lambda ids: [ids["set_id"], "https://i/x", None],
    "images.INSERT_IMAGE_SQL": lambda ids: [ids["set_id"], "https://i/x", None, 0],
    "images.SET_IMAGES_SQL": lambda ids: [ids["set_id"]],
    "images.REORDER_SQL": lambda ids: [ids["set_id"], [ids["image_id"]]],
    "images.DELETE_IMAGE_SQL": lambda ids: [ids["image_id"]],
    "images.CLOSE_GAP_SQL": lambda ids: [ids["set_id"], 0],
    "collection.STATS_SQL": lambda ids: [TYPICAL],
    "collection.THEMES_SQL": lambda ids: [TYPICAL],
    "collection.TAGS_SQL": lambda ids: [TYPICAL],
    "collection.DUPLICATES_SQL": lambda ids: [TYPICAL, "10042"],
    "collection.DUPLICATE_GROUPS_SQL": lambda ids: [TYPICAL],
    "transfer.EXPORT_SQL": lambda ids: [TYPICAL],
}


def test_every_service_statement_is_enumerated() -> None:
    assert set(_service_statements()) == set(STATEMENTS)


@pytest.mark.parametrize("name", sorted(STATEMENTS))
async def test_every_service_statement_is_indexed(plans_db: Any, name: str) -> None:
    ids = await _ids(plans_db)
    await _assert_indexed(plans_db, _service_statements()[name], STATEMENTS[name](ids))


async def test_update_statement_is_indexed(plans_db: Any) -> None:
    ids = await _ids(plans_db)
    sql = sets_service.update_sql(["title", "notes"])
    await _assert_indexed(plans_db, sql, [ids["set_id"], TYPICAL, "t", "n"])


async def test_orm_statements_are_indexed(plans_db: Any, database_url: str) -> None:
    """The query-API paths (lock_set, delete_set, delete_image), as Tortoise renders them."""
    ids = await _ids(plans_db)
    set_id, image_id = ids["set_id"], ids["image_id"]
    statements = [
        (owned_sets(TYPICAL).filter(id=set_id).select_for_update().only("id"), [TYPICAL, set_id]),
        (owned_sets(TYPICAL).filter(id=set_id).delete(), [TYPICAL, set_id]),
        (
            owned_images(TYPICAL).filter(set_id=set_id).values("image_url", "thumbnail_url"),
            [TYPICAL, set_id],
        ),
        (owned_images(TYPICAL).filter(id=image_id).values_list("set_id", flat=True), None),
    ]
    for query, values in statements:
        sql = query.sql()
        args = values if values is not None else [TYPICAL, image_id]
        if "$" not in sql:
            args = []
        await _assert_indexed_any(plans_db, sql, args)


async def _assert_indexed_any(conn: Any, sql: str, values: list[Any]) -> None:
    """No sequential scan of either table (the ORM's statements also touch set_images)."""
    for generic in (False, True):
        plan = await _plan(conn, sql, values, generic=generic)
        scans = [n for n in plan_nodes(plan) if n["Node Type"] == "Seq Scan"]
        assert not scans, json.dumps(plan, indent=1)
