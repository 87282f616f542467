"""The tag-count summary (migration 7) stays equal to counting the tags afresh, whatever
writes ``sets``: the services, plain SQL from another client (as the table owner or as the
application role under row-level security), COPY, TRUNCATE, concurrent writers; and the
migration backfills what was there before it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sets_db import services
from sets_db.services.collection import TAGS_SQL
from tests.factories import ALICE, BOB
from tests.pg import (
    act_as_app,
    aerich_in,
    connect,
    copy_project,
    migration_named,
    output_of,
    version_number,
)

EmptyDatabase = Callable[[], Awaitable[str]]

SUMMARY = "SELECT user_id, tag, count FROM set_tag_counts ORDER BY 1, 2"
# What list_tags returned before the summary: every tag of every set, counted afresh.
FRESH = """
SELECT user_id, tag, count(*) AS count
FROM (SELECT user_id, unnest(tags) AS tag FROM sets) t
WHERE tag IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
"""
FRESH_FOR_OWNER = """
SELECT tag AS name, count(*) AS count
FROM (SELECT unnest(tags) AS tag FROM sets WHERE user_id = $1) t
WHERE tag IS NOT NULL GROUP BY tag ORDER BY count DESC, tag
"""


async def _assert_consistent(conn: Any) -> None:
    assert [tuple(r) for r in await conn.fetch(SUMMARY)] == [
        tuple(r) for r in await conn.fetch(FRESH)
    ]


async def _assert_list_tags_fresh(conn: Any, *owners: str) -> None:
    for owner in owners:
        fresh = [(r["name"], r["count"]) for r in await conn.fetch(FRESH_FOR_OWNER, owner)]
        listed = [(t.name, t.count) for t in await services.list_tags(user_id=owner)]
        assert listed == fresh, owner


async def test_plain_sql_writes_keep_the_summary_exact(raw: Any) -> None:
    """Every kind of statement another client could send, each checked on its own."""
    steps = [
        "INSERT INTO sets (user_id, title, tags) VALUES"
        " ('alice', 'a', '{ucs,display,ucs}'), ('alice', 'b', '{display}'),"
        " ('bob', 'c', '{display,gift}'), ('bob', 'd', '{}'), ('bob', 'e', NULL)",
        "UPDATE sets SET tags = '{gift,sealed}' WHERE title = 'a'",
        "UPDATE sets SET title = 'renamed' WHERE title = 'b'",  # tags untouched
        "UPDATE sets SET user_id = 'bob' WHERE title = 'renamed'",  # moves its tags
        "UPDATE sets SET tags = array_append(tags, 'new') WHERE user_id = 'bob'",
        "UPDATE sets SET tags = NULL WHERE title = 'c'",
        "DELETE FROM sets WHERE title = 'd'",
        "INSERT INTO sets (user_id, title, tags)"
        " SELECT 'carol', 'g' || g, ARRAY['t' || g % 3, 'all'] FROM generate_series(1, 300) g",
        "DELETE FROM sets WHERE user_id = 'carol' AND title LIKE 'g1%'",
        "DELETE FROM sets WHERE user_id = 'bob'",
    ]
    for step in steps:
        await raw.execute(step)
        await _assert_consistent(raw)
    await _assert_list_tags_fresh(raw, "alice", "bob", "carol")
    assert await raw.fetchval("SELECT count(*) FROM set_tag_counts WHERE count <= 0") == 0


async def test_copy_and_a_rolled_back_write_keep_it_exact(raw: Any) -> None:
    await raw.copy_records_to_table(
        "sets",
        records=[(ALICE, f"set {n}", [f"tag{n % 4}", "shared"]) for n in range(1000)],
        columns=["user_id", "title", "tags"],
    )
    await _assert_consistent(raw)
    # Deleted, then the same transaction fails: the summary's change goes with it.
    failing = "DELETE FROM sets WHERE title LIKE 'set 1%'; UPDATE sets SET quantity = 0"
    with pytest.raises(asyncpg.CheckViolationError):
        await raw.execute(failing)  # a simple-query script runs as one transaction
    assert await raw.fetchval("SELECT count(*) FROM sets") == 1000
    await _assert_consistent(raw)
    await raw.execute("TRUNCATE sets CASCADE")
    assert await raw.fetchval("SELECT count(*) FROM set_tag_counts") == 0


async def test_the_app_role_keeps_it_exact_and_reads_only_its_owner(raw: Any) -> None:
    """Under row-level security, with no privilege to write the summary itself."""
    await raw.execute("INSERT INTO sets (user_id, title, tags) VALUES ($1, 'b', '{bobs}')", BOB)
    async with raw.transaction():
        await act_as_app(raw, ALICE)
        await raw.execute(
            "INSERT INTO sets (user_id, title, tags) VALUES ($1, 'x', '{a,b}'), ($1, 'y', '{b}')",
            ALICE,
        )
        await raw.execute("UPDATE sets SET tags = '{c}' WHERE title = 'y'")
        await raw.execute("DELETE FROM sets WHERE title = 'x'")
        visible = await raw.fetch("SELECT user_id, tag, count FROM set_tag_counts")
        assert [tuple(r) for r in visible] == [(ALICE, "c", 1)]
    await _assert_consistent(raw)
    assert len(await raw.fetch(SUMMARY)) == 2
    for write in ("UPDATE set_tag_counts SET count = 99", "DELETE FROM set_tag_counts"):
        async with raw.transaction():
            await act_as_app(raw, ALICE)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await raw.execute(write)


async def test_services_and_concurrent_writers_keep_it_exact(db: str, raw: Any) -> None:
    """Writers of one owner sharing tags, at once: each upsert waits for the other."""
    created = await asyncio.gather(
        *(
            services.create_set(
                user_id=ALICE, data={"title": f"s{n}", "tags": ["shared", f"t{n % 5}"]}
            )
            for n in range(40)
        )
    )
    await _assert_consistent(raw)
    await asyncio.gather(
        *(
            services.update_set(user_id=ALICE, set_id=item.id, changes={"tags": ["other"]})
            for item in created[:20]
        ),
        *(services.delete_set(user_id=ALICE, set_id=item.id) for item in created[20:]),
        services.import_sets(user_id=ALICE, rows=[{"title": "i", "tags": ["shared"]}] * 500),
    )
    await _assert_consistent(raw)
    await _assert_list_tags_fresh(raw, ALICE)
    assert [(t.name, t.count) for t in await services.list_tags(user_id=ALICE)] == [
        ("shared", 500),
        ("other", 20),
    ]


async def test_list_tags_reads_the_summary(raw: Any) -> None:
    await raw.execute("INSERT INTO sets (user_id, title, tags) VALUES ($1, 'x', '{a}')", ALICE)
    await raw.execute("DELETE FROM set_tag_counts")  # only to show where the answer comes from
    assert await raw.fetch(TAGS_SQL, ALICE) == []
    assert await services.list_tags(user_id=ALICE) == []


async def test_the_migration_backfills_existing_sets(
    empty_database: EmptyDatabase, tmp_path: Path
) -> None:
    number = version_number(migration_named("tag_counts"))
    url = await empty_database()
    output_of(aerich_in(copy_project(tmp_path / "before", upto=number), url, "upgrade"))
    conn = await connect(url)
    try:
        await conn.execute(
            "INSERT INTO sets (user_id, title, tags)"
            " SELECT 'owner-' || g % 7, 's' || g, ARRAY['t' || g % 11, 't' || g % 3, 'x']"
            " FROM generate_series(1, 2000) g"
        )
        output_of(aerich_in(copy_project(tmp_path / "at", upto=number + 1), url, "upgrade"))
        await _assert_consistent(conn)
        assert len(await conn.fetch(SUMMARY)) > 7
        await conn.execute("UPDATE sets SET tags = '{y}' WHERE user_id = 'owner-1'")
        await _assert_consistent(conn)
    finally:
        await conn.close()
