"""The stats summary (migration 8) stays equal to aggregating ``sets`` afresh, whatever
writes it: the services, plain SQL from another client (as the table owner or as the
application role under row-level security), COPY, TRUNCATE, rolled-back transactions,
multi-row statements across owners and themes, concurrent writers of one owner; the
migration backfills what was there, and ``collection_stats`` answers exactly what it
answered when it aggregated ``sets`` itself."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sets_db import services
from sets_db.config import settings as sets_db_settings
from sets_db.services import collection
from sets_db.services.transfer import BATCH_ROWS
from tests.factories import ALICE, BOB, FULL_SET, small_collection
from tests.pg import (
    APP_ROLE,
    act_as_app,
    aerich_in,
    connect,
    copy_project,
    migration_named,
    output_of,
    schema_snapshot,
    version_number,
)

EmptyDatabase = Callable[[], Awaitable[str]]
T = TypeVar("T")
EXAMPLES = 300 if os.environ.get("CI") else 60

SUMMARY = """
SELECT user_id, theme, set_count, total_quantity, total_pieces, built_count, money_spent
FROM set_collection_stats ORDER BY 1, 2
"""
# The summary's figures aggregated from sets directly, per owner and theme.
FRESH = """
SELECT user_id, theme, count(*) AS set_count, sum(quantity) AS total_quantity,
       sum(COALESCE(piece_count, 0)::bigint * quantity) AS total_pieces,
       count(*) FILTER (WHERE is_built) AS built_count,
       sum(COALESCE(purchase_price, 0) + COALESCE(tax, 0) + COALESCE(shipping, 0))
           AS money_spent
FROM sets GROUP BY 1, 2 ORDER BY 1, 2
"""
# collection_stats' statement before the summary, verbatim: its answers are the reference.
REFERENCE_STATS_SQL = """
SELECT GROUPING(theme) AS is_total,
       theme,
       count(*) AS set_count,
       COALESCE(sum(quantity), 0) AS total_quantity,
       COALESCE(sum(COALESCE(piece_count, 0)::bigint * quantity), 0) AS total_pieces,
       count(*) FILTER (WHERE is_built) AS built_count,
       round(COALESCE(sum(COALESCE(purchase_price, 0) + COALESCE(tax, 0)
                          + COALESCE(shipping, 0)), 0), 2) AS money_spent
FROM public.sets
WHERE user_id = $1
GROUP BY ROLLUP (theme)
ORDER BY is_total DESC, theme NULLS LAST
"""


def _typed(rows: list[Any]) -> list[list[tuple[str, str, str]]]:
    """Column names, Python types and text of every value: Decimal("1.0") == Decimal("1.00"),
    but a different scale is a different answer."""
    return [[(key, type(value).__name__, str(value)) for key, value in row.items()] for row in rows]


async def _assert_consistent(conn: Any) -> None:
    summary = [tuple(r) for r in await conn.fetch(SUMMARY)]
    assert summary == [tuple(r) for r in await conn.fetch(FRESH)]
    assert all(row[2] > 0 for row in summary), "a group with no sets was kept"


async def _assert_stats_identical(conn: Any, *owners: str) -> None:
    """The statement and the service answer exactly what they answered before the summary."""
    for owner in owners:
        now = _typed(await conn.fetch(collection.STATS_SQL, owner))
        assert now == _typed(await conn.fetch(REFERENCE_STATS_SQL, owner)), owner
        served = await services.collection_stats(user_id=owner)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(collection, "STATS_SQL", REFERENCE_STATS_SQL)
            reference = await services.collection_stats(user_id=owner)
        assert repr(served) == repr(reference), owner


async def test_plain_sql_writes_keep_the_summary_exact(raw: Any) -> None:
    """Every kind of statement another client could send, each checked on its own."""
    steps = [
        "INSERT INTO sets (user_id, title, theme, quantity, piece_count, purchase_price, tax,"
        " shipping, is_built) VALUES"
        " ('alice', 'a', 'City', 2, 100, 10.10, 1.01, NULL, true),"
        " ('alice', 'b', NULL, 1, NULL, NULL, NULL, NULL, false),"
        " ('alice', 'c', '', 3, 7, 0.10, NULL, 0.01, true),"
        " ('bob', 'd', 'City', 1, 50, 5.00, 0.50, 0.25, false),"
        " ('bob', 'e', NULL, 4, 2147483647, 99999999.99, 99999999.99, 99999999.99, true)",
        "UPDATE sets SET theme = 'Technic' WHERE title = 'a'",
        "UPDATE sets SET theme = NULL WHERE title = 'c'",  # '' and NULL are two groups
        "UPDATE sets SET quantity = quantity + 1, piece_count = NULL WHERE user_id = 'bob'",
        "UPDATE sets SET purchase_price = 1.99, tax = NULL WHERE theme IS NULL",
        "UPDATE sets SET is_built = NOT is_built",
        "UPDATE sets SET title = 'renamed' WHERE title = 'b'",  # no figure changes
        "UPDATE sets SET user_id = 'bob' WHERE title = 'renamed'",  # moves to bob's NULL group
        "UPDATE sets SET user_id = 'carol', theme = 'City' WHERE user_id = 'bob'",
        "DELETE FROM sets WHERE title = 'd'",
        "INSERT INTO sets (user_id, title, theme, quantity, piece_count, purchase_price)"
        " SELECT 'owner-' || g % 4, 'g' || g, (ARRAY['City', 'Technic', NULL])[1 + g % 3],"
        " 1 + g % 3, NULLIF(g % 7, 0) * 100, (g % 5) * 1.25 FROM generate_series(1, 300) g",
        "UPDATE sets SET theme = 'Star Wars' WHERE title LIKE 'g1%'",  # several owners at once
        "DELETE FROM sets WHERE user_id = 'owner-1' AND theme IS NULL",
        "DELETE FROM sets WHERE user_id IN ('owner-2', 'carol')",
    ]
    for step in steps:
        await raw.execute(step)
        await _assert_consistent(raw)
    await _assert_stats_identical(raw, "alice", "bob", "carol", "owner-0", "owner-1", "owner-3")


async def test_copy_truncate_and_a_rolled_back_write_keep_it_exact(raw: Any) -> None:
    await raw.copy_records_to_table(
        "sets",
        records=[
            (ALICE if n % 3 else BOB, f"set {n}", ("City", "Technic", None)[n % 3], 1 + n % 4)
            for n in range(1000)
        ],
        columns=["user_id", "title", "theme", "quantity"],
    )
    await _assert_consistent(raw)
    # Deleted, then the same transaction fails: the summary's change goes with it.
    failing = "DELETE FROM sets WHERE title LIKE 'set 1%'; UPDATE sets SET quantity = 0"
    with pytest.raises(asyncpg.CheckViolationError):
        await raw.execute(failing)  # a simple-query script runs as one transaction
    assert await raw.fetchval("SELECT count(*) FROM sets") == 1000
    await _assert_consistent(raw)
    await _assert_stats_identical(raw, ALICE, BOB)
    await raw.execute("TRUNCATE sets CASCADE")
    assert await raw.fetchval("SELECT count(*) FROM set_collection_stats") == 0


async def test_the_app_role_keeps_it_exact_and_reads_only_its_owner(raw: Any) -> None:
    """Under row-level security, with no privilege to write the summary itself."""
    await raw.execute("INSERT INTO sets (user_id, title, theme) VALUES ($1, 'b', 'City')", BOB)
    async with raw.transaction():
        await act_as_app(raw, ALICE)
        await raw.execute(
            "INSERT INTO sets (user_id, title, theme, purchase_price)"
            " VALUES ($1, 'x', 'City', 1.50), ($1, 'y', NULL, 2.25)",
            ALICE,
        )
        await raw.execute("UPDATE sets SET theme = 'Technic', quantity = 3 WHERE title = 'y'")
        await raw.execute("DELETE FROM sets WHERE title = 'x'")
        visible = await raw.fetch("SELECT user_id, theme, set_count FROM set_collection_stats")
        assert [tuple(r) for r in visible] == [(ALICE, "Technic", 1)]
        stats = _typed(await raw.fetch(collection.STATS_SQL, ALICE))
        assert stats == _typed(await raw.fetch(REFERENCE_STATS_SQL, ALICE))
    await _assert_consistent(raw)
    assert len(await raw.fetch(SUMMARY)) == 2
    for write in (
        "UPDATE set_collection_stats SET set_count = 99",
        "DELETE FROM set_collection_stats",
        "INSERT INTO set_collection_stats VALUES ('alice', 'x', 1, 1, 1, 1, 1)",
    ):
        async with raw.transaction():
            await act_as_app(raw, ALICE)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await raw.execute(write)


async def test_service_writes_keep_it_exact(db: str, raw: Any) -> None:
    await small_collection()
    full = await services.create_set(user_id=ALICE, data=FULL_SET)
    await _assert_consistent(raw)
    await _assert_stats_identical(raw, ALICE, BOB)
    changes: list[dict[str, Any]] = [
        {"theme": "City"},
        {"theme": None},
        {"quantity": 5},
        {"piece_count": None},
        {"piece_count": 12},
        {"purchase_price": "0.05", "tax": None, "shipping": "1.10"},
        {"is_built": False},
        {"title": "only the title"},
    ]
    for change in changes:
        await services.update_set(user_id=ALICE, set_id=full.id, changes=change)
        await _assert_consistent(raw)
        await _assert_stats_identical(raw, ALICE)
    rows = [{"title": f"i{n}", "theme": ("City", None, "Icons")[n % 3]} for n in range(50)]
    await services.import_sets(user_id=BOB, rows=rows)
    await services.delete_set(user_id=ALICE, set_id=full.id)
    await _assert_consistent(raw)
    await _assert_stats_identical(raw, ALICE, BOB)


@pytest.fixture
def rls_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SETS_DB_RLS_ROLE", APP_ROLE)
    sets_db_settings.cache_clear()


async def test_rls_mode_writes_and_stats(raw: Any, rls_mode: None) -> None:
    await services.create_set(user_id=BOB, data={"title": "bob's", "theme": "City"})
    created = await services.create_set(user_id=ALICE, data=FULL_SET)
    await services.import_sets(user_id=ALICE, rows=[{"title": "i", "theme": "City"}] * 3)
    await services.update_set(user_id=ALICE, set_id=created.id, changes={"theme": "City"})
    await _assert_consistent(raw)
    stats = await services.collection_stats(user_id=ALICE)
    assert [(t.theme, t.set_count) for t in stats.themes] == [("City", 4)]
    await _assert_stats_identical(raw, ALICE, BOB)
    await services.delete_set(user_id=ALICE, set_id=created.id)
    await _assert_consistent(raw)


async def test_concurrent_writers_of_one_owner_never_deadlock(db: str, raw: Any) -> None:
    """Imports of several batches that reach the same themes and tags in different orders,
    beside single creates, updates and deletes of the same owner: no deadlock, and the
    summary is exact. The summaries' row locks are taken under one lock per owner, before
    the tag summary's too (a batch's tags are its theme's: a tag shared by every batch would
    make the imports queue at the tag summary's first row instead)."""

    def batches(*themes: str | None) -> list[dict[str, Any]]:
        return [
            {"title": f"{theme} {n}", "theme": theme, "tags": [f"tag {theme}"]}
            for theme in themes
            for n in range(BATCH_ROWS)
        ]

    existing = [
        await services.create_set(user_id=ALICE, data={"title": f"e{n}", "theme": theme})
        for n, theme in enumerate(("A", "B", None, "C"))
    ]
    await asyncio.gather(
        services.import_sets(user_id=ALICE, rows=batches("A", "B", "C")),
        services.import_sets(user_id=ALICE, rows=batches("B", "C", "A")),
        services.import_sets(user_id=ALICE, rows=batches("C", "A", "B")),
        services.import_sets(user_id=ALICE, rows=batches(None, "A")),
        *(
            services.create_set(
                user_id=ALICE,
                data={"title": f"c{n}", "theme": "ABC"[n % 3], "tags": [f"tag {'ABC'[n % 3]}"]},
            )
            for n in range(6)
        ),
        services.update_set(user_id=ALICE, set_id=existing[0].id, changes={"theme": "B"}),
        services.update_set(user_id=ALICE, set_id=existing[1].id, changes={"quantity": 2}),
        services.delete_set(user_id=ALICE, set_id=existing[2].id),
    )
    await _assert_consistent(raw)
    stats = await services.collection_stats(user_id=ALICE)
    assert stats.set_count == 11 * BATCH_ROWS + 6 + 3
    await _assert_stats_identical(raw, ALICE)


WAITING_FOR_THE_OWNER = """
SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND datname = current_database()
"""


async def test_only_writes_that_change_a_figure_wait_for_the_owner(db: str, raw: Any) -> None:
    """A rename goes through while another transaction of the owner is open; a theme change
    waits for its commit (for the owner's lock, not for a summary row)."""
    one, two = [
        await services.create_set(user_id=ALICE, data={"title": title, "theme": "City"})
        for title in ("one", "two")
    ]
    async with raw.transaction():
        await raw.execute("INSERT INTO sets (user_id, title) VALUES ($1, 'open')", ALICE)
        renamed = services.update_set(user_id=ALICE, set_id=one.id, changes={"title": "new"})
        assert (await asyncio.wait_for(renamed, timeout=10)).title == "new"
        moved = asyncio.ensure_future(
            services.update_set(user_id=ALICE, set_id=two.id, changes={"theme": "Technic"})
        )
        for _ in range(300):
            if await raw.fetchval(WAITING_FOR_THE_OWNER) or moved.done():
                break
            await asyncio.sleep(0.01)
        assert not moved.done()
        assert await raw.fetchval(WAITING_FOR_THE_OWNER) == 1
    assert (await asyncio.wait_for(moved, timeout=30)).theme == "Technic"
    await _assert_consistent(raw)


async def test_collection_stats_reads_the_summary(raw: Any) -> None:
    await raw.execute("INSERT INTO sets (user_id, title, theme) VALUES ($1, 'x', 'City')", ALICE)
    await raw.execute("DELETE FROM set_collection_stats")  # only to show where stats come from
    stats = await services.collection_stats(user_id=ALICE)
    assert (stats.set_count, stats.themes) == (0, [])


# --- Random writes: the property ---------------------------------------------------------

OWNERS = ("o1", "o2", "o3")
THEMES = (None, "", "City", "Star Wars")
MONEY = st.none() | st.decimals(
    min_value=0, max_value=Decimal("99999999.99"), places=2, allow_nan=False, allow_infinity=False
)
PIECES = st.none() | st.integers(0, 10_000) | st.just(2**31 - 1)
QUANTITY = st.integers(1, 4) | st.just(2**31 - 1)
ROW = st.tuples(
    st.sampled_from(OWNERS),
    st.sampled_from(THEMES),
    QUANTITY,
    PIECES,
    MONEY,
    MONEY,
    MONEY,
    st.booleans(),
)
ROW_COLUMNS = (
    "user_id",
    "theme",
    "quantity",
    "piece_count",
    "purchase_price",
    "tax",
    "shipping",
    "is_built",
)
# Which rows an UPDATE or DELETE touches: one owner, one theme, some rows of every owner.
WHERE = st.one_of(
    st.sampled_from(OWNERS).map(lambda o: ("user_id = $1", o)),
    st.sampled_from(THEMES).map(lambda t: ("theme IS NOT DISTINCT FROM $1", t)),
    st.integers(1, 3).map(lambda q: ("quantity > $1", q)),
    st.just(("piece_count IS NULL AND $1::int IS NULL", None)),
)
NEW_VALUE = st.one_of(
    st.tuples(st.just("theme"), st.sampled_from(THEMES)),
    st.tuples(st.just("user_id"), st.sampled_from(OWNERS)),
    st.tuples(st.just("quantity"), QUANTITY),
    st.tuples(st.just("piece_count"), PIECES),
    st.tuples(st.sampled_from(("purchase_price", "tax", "shipping")), MONEY),
    st.tuples(st.just("is_built"), st.booleans()),
    st.tuples(st.just("title"), st.just("retitled")),
)
OPERATION = st.one_of(
    st.tuples(st.just("insert"), st.lists(ROW, min_size=1, max_size=6)),
    st.tuples(st.just("copy"), st.lists(ROW, min_size=1, max_size=6)),
    st.tuples(st.just("update"), NEW_VALUE, WHERE),
    st.tuples(st.just("delete"), WHERE),
    st.tuples(st.just("rolled back"), WHERE),
    st.tuples(st.just("truncate")),
    st.tuples(st.just("create"), ROW),
    st.tuples(st.just("import"), st.lists(ROW, min_size=1, max_size=6)),
    st.tuples(st.just("service update"), NEW_VALUE, st.integers(0, 100)),
    st.tuples(st.just("service delete"), st.integers(0, 100)),
)

INSERT_ROWS = f"""
INSERT INTO sets (title, {", ".join(ROW_COLUMNS)})
SELECT 'inserted', * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[],
                                 $5::numeric[], $6::numeric[], $7::numeric[], $8::bool[])
"""


# What the services accept of a random row: no empty theme, quantity and pieces within the
# DTOs' bounds (plain SQL may store up to the column maxima).
def _for_services(column: str, value: Any) -> Any:
    if column == "theme":
        return value or None
    bound = {"quantity": 1_000_000, "piece_count": 10_000_000}.get(column)
    return value if bound is None or value is None else min(value, bound)


def _service_data(row: tuple[Any, ...]) -> dict[str, Any]:
    fields = zip(ROW_COLUMNS[1:], row[1:], strict=True)
    return {"title": "service", **{column: _for_services(column, v) for column, v in fields}}


async def _nth_set(conn: Any, n: int) -> tuple[str, Any] | None:
    found = await conn.fetch("SELECT user_id, id FROM sets ORDER BY id")
    return None if not found else tuple(found[n % len(found)])


async def _apply(conn: Any, operation: tuple[Any, ...]) -> None:
    kind, *arguments = operation
    if kind == "insert":
        await conn.execute(
            INSERT_ROWS, *(list(column) for column in zip(*arguments[0], strict=True))
        )
    elif kind == "copy":
        records = [("copied", *row) for row in arguments[0]]
        await conn.copy_records_to_table("sets", records=records, columns=("title", *ROW_COLUMNS))
    elif kind == "update":
        (column, value), (where, bound) = arguments
        await conn.execute(f"UPDATE sets SET {column} = $2 WHERE {where}", bound, value)
    elif kind == "delete":
        await conn.execute(f"DELETE FROM sets WHERE {arguments[0][0]}", arguments[0][1])
    elif kind == "rolled back":
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(f"DELETE FROM sets WHERE {arguments[0][0]}", arguments[0][1])
            await conn.execute("UPDATE sets SET theme = 'rolled back', quantity = 7")
            await _assert_consistent(conn)  # inside the transaction too
        finally:
            await transaction.rollback()
    elif kind == "truncate":
        await conn.execute("TRUNCATE sets CASCADE")
    else:
        await _apply_service(conn, kind, arguments)


async def _apply_service(conn: Any, kind: str, arguments: list[Any]) -> None:
    if kind == "create":
        row = arguments[0]
        await services.create_set(user_id=row[0], data=_service_data(row))
    elif kind == "import":
        for owner in sorted({row[0] for row in arguments[0]}):
            rows = [_service_data(row) for row in arguments[0] if row[0] == owner]
            await services.import_sets(user_id=owner, rows=rows)
    elif (target := await _nth_set(conn, arguments[-1])) is None:
        return
    elif kind == "service update":
        column, value = arguments[0]
        if column == "user_id":  # not a field update_set takes
            column, value = "is_built", True
        changes = {column: _for_services(column, value)}
        await services.update_set(user_id=target[0], set_id=target[1], changes=changes)
    else:
        await services.delete_set(user_id=target[0], set_id=target[1])


@pytest.fixture(scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    """The loop Tortoise's pool lives on; the sync property test drives it directly."""
    return asyncio.get_running_loop()


def test_random_writes_keep_the_summary_equal_to_aggregating_afresh(
    db: str, session_loop: asyncio.AbstractEventLoop
) -> None:
    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return session_loop.run_until_complete(coroutine)

    conn = run(connect(db))

    async def check(operations: list[tuple[Any, ...]]) -> None:
        await conn.execute("TRUNCATE sets CASCADE")
        for operation in operations:
            await _apply(conn, operation)
            await _assert_consistent(conn)
        await _assert_stats_identical(conn, *OWNERS)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(operations=st.lists(OPERATION, max_size=8))
    def random_writes(operations: list[tuple[Any, ...]]) -> None:
        run(check(operations))

    try:
        random_writes()
    finally:
        run(conn.close())


# --- The migration -------------------------------------------------------------------------


async def test_the_migration_backfills_and_its_downgrade_restores_migration_7(
    empty_database: EmptyDatabase, tmp_path: Path
) -> None:
    number = version_number(migration_named("collection_stats"))
    url, reference = await empty_database(), await empty_database()
    before = copy_project(tmp_path / "before", upto=number)
    output_of(aerich_in(before, reference, "upgrade"))
    output_of(aerich_in(before, url, "upgrade"))
    conn = await connect(url)
    try:
        await conn.execute(
            "INSERT INTO sets (user_id, title, theme, quantity, piece_count, purchase_price,"
            " tax, is_built)"
            " SELECT 'owner-' || g % 7, 's' || g, (ARRAY['City', NULL, 'Technic', ''])[1 + g % 4],"
            " 1 + g % 3, NULLIF(g % 11, 0) * 10, (g % 13) * 0.99, (g % 2) * 0.05, g % 5 = 0"
            " FROM generate_series(1, 2000) g"
        )
        at = copy_project(tmp_path / "at", upto=number + 1)
        output_of(aerich_in(at, url, "upgrade"))
        await _assert_consistent(conn)
        assert len(await conn.fetch(SUMMARY)) == 7 * 4
        await conn.execute("UPDATE sets SET theme = 'Star Wars' WHERE user_id = 'owner-1'")
        await _assert_consistent(conn)
        sets_before = [tuple(r) for r in await conn.fetch("SELECT * FROM sets ORDER BY id")]
        output_of(aerich_in(at, url, "downgrade", "--yes"))
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM sets ORDER BY id")] == (
            sets_before
        )
    finally:
        await conn.close()
    assert await schema_snapshot(url) == await schema_snapshot(reference)
