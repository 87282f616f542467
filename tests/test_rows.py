"""Every row the database accepts reads back as a DTO, also one another client wrote
(sets_db.services.rows)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from sets_db import services
from sets_db.config import tortoise_config
from sets_db.pool import init_connection
from sets_db.services.rows import FETCH_SET_SQL, to_set
from tests.factories import ALICE
from tests.pg import connect, service_url


@pytest.fixture
async def without_checks(raw: Any) -> AsyncIterator[None]:
    """The run database without its CHECK constraints, as a database another client
    manages may be; restored (with the odd rows gone) afterwards."""
    checks = await raw.fetch(
        "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def"
        " FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
    )
    for check in checks:
        await raw.execute(f'ALTER TABLE {check["tbl"]} DROP CONSTRAINT "{check["conname"]}"')
    yield
    await raw.execute("TRUNCATE sets, set_images CASCADE")
    for check in checks:
        await raw.execute(
            f'ALTER TABLE {check["tbl"]} ADD CONSTRAINT "{check["conname"]}" {check["def"]}'
        )


ODD_ROWS = [
    ("ARRAY['a', NULL]::text[]", ["a"]),
    ("ARRAY[['a', 'b'], ['c', NULL]]::text[]", ["a", "b", "c"]),
    ("NULL::text[]", []),
]


async def test_every_row_the_database_accepts_reads_back(
    db: str, raw: Any, without_checks: None
) -> None:
    # What another client may legally write without sets-db's CHECK constraints.
    for tags, _ in ODD_ROWS:
        await raw.execute(
            "INSERT INTO sets (user_id, title, tags, quantity, purchase_price)"
            f" VALUES ($1, ' ', {tags}, 0, -1)",
            ALICE,
        )
    page = await services.list_sets(user_id=ALICE, sort="title")
    assert sorted(item.tags for item in page.items) == sorted(tags for _, tags in ODD_ROWS)
    exported = [item async for item in services.export_sets(user_id=ALICE)]
    assert len(exported) == len(ODD_ROWS)
    for item in exported:
        assert (await services.get_set(user_id=ALICE, set_id=item.id)) == item
    assert (await services.collection_stats(user_id=ALICE)).set_count == len(ODD_ROWS)
    # The tag summary counts what the sets read back with: no NULL, every dimension.
    counted = [(tag.name, tag.count) for tag in await services.list_tags(user_id=ALICE)]
    assert counted == [("a", 2), ("b", 1), ("c", 1)]
    await raw.execute("UPDATE sets SET tags = ARRAY[NULL, 'a'] WHERE tags IS NULL")
    await raw.execute("DELETE FROM sets WHERE tags @> ARRAY['b']")
    counted = [(tag.name, tag.count) for tag in await services.list_tags(user_id=ALICE)]
    assert counted == [("a", 2)]


async def test_a_new_connection_reads_image_rows_without_type_introspection(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's connections know the ``record[]`` codec from the start: asyncpg never
    has to look it up (a catalog query on every new connection)."""
    created = await services.create_set(
        user_id=ALICE, data={"title": "x", "images": [{"image_url": "https://i.test/1.jpg"}]}
    )
    assert tortoise_config(db)["connections"]["default"]["credentials"]["init"] is init_connection

    async def refuse(*args: Any) -> Any:
        raise AssertionError("asyncpg introspected a type")

    monkeypatch.setattr(asyncpg.Connection, "_introspect_types", refuse)
    conn = await connect(service_url(db))
    try:
        await init_connection(conn)
        row = await conn.fetchrow(FETCH_SET_SQL, created.id, ALICE)
    finally:
        await conn.close()
    assert to_set(row) == created
