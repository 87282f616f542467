"""A temporary table named ``sets`` on a pooled connection cannot shadow the real tables:
every statement sets-db sends names them schema-qualified (or finds them before pg_temp)."""

from __future__ import annotations

from typing import Any

from tortoise.connection import get_connection

from sets_db import services
from tests.factories import ALICE


async def test_a_temp_table_named_sets_on_every_pooled_connection_changes_nothing(
    db: str, raw: Any
) -> None:
    created = await services.create_set(user_id=ALICE, data={"title": "real", "images": []})
    pool = get_connection("default")._pool
    # Hold every pooled connection at once, so each gets its own shadowing tables.
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    for conn in held:
        await conn.execute(
            "CREATE TEMPORARY TABLE sets (LIKE public.sets INCLUDING ALL);"
            "CREATE TEMPORARY TABLE set_images (LIKE public.set_images INCLUDING ALL)"
        )
        await conn.execute("INSERT INTO pg_temp.sets (user_id, title) VALUES ($1, 'fake')", ALICE)
    for conn in held:
        await pool.release(conn)

    assert (await services.get_set(user_id=ALICE, set_id=created.id)).title == "real"
    added = await services.add_image(user_id=ALICE, set_id=created.id, image_url="https://i/1")
    updated = await services.update_set(
        user_id=ALICE, set_id=created.id, changes={"title": "still real"}
    )
    assert [image.id for image in updated.images] == [added.id]
    other = await services.create_set(user_id=ALICE, data={"title": "second"})
    await services.import_sets(user_id=ALICE, rows=[{"title": "imported"}])
    titles = sorted(item.title for item in (await services.list_sets(user_id=ALICE)).items)
    assert titles == ["imported", "second", "still real"]
    await services.delete_image(user_id=ALICE, image_id=added.id)
    await services.delete_set(user_id=ALICE, set_id=other.id)
    assert await raw.fetchval("SELECT count(*) FROM public.sets WHERE user_id = $1", ALICE) == 2
    assert await raw.fetchval("SELECT count(*) FROM public.set_images") == 0
    assert (await services.collection_stats(user_id=ALICE)).set_count == 2
    # Drop the shadows so the connections are clean for the next test.
    for conn in [await pool.acquire() for _ in range(pool.get_max_size())]:
        await conn.execute("DROP TABLE IF EXISTS pg_temp.sets, pg_temp.set_images")
        await pool.release(conn)
