"""Every row the database accepts reads back as a DTO, also one another client wrote
(sets_db.services.rows)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pydantic
import pytest

from sets_db import services
from sets_db.config import tortoise_config
from sets_db.errors import SetsDbError
from sets_db.pool import init_connection
from sets_db.schemas import SetOut
from sets_db.services.rows import FETCH_SET_SQL, to_set
from tests.factories import ALICE, FULL_SET, IMAGES
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


async def test_dtos_built_from_rows_equal_validated_ones(db: str) -> None:
    """Rows become DTOs without pydantic validating each field: the result must be what
    validating the same values gives, in every way a caller can see."""
    created = await services.create_set(user_id=ALICE, data={**FULL_SET, "images": IMAGES})
    page = await services.list_sets(user_id=ALICE)
    (item,) = page.items
    validated = SetOut.model_validate(item.model_dump())
    assert item == validated == created
    assert item.model_fields_set == validated.model_fields_set
    assert item.images[0].model_fields_set == validated.images[0].model_fields_set
    assert item.model_dump_json() == validated.model_dump_json()
    assert pickle.loads(pickle.dumps(item)) == validated
    assert copy.deepcopy(item) == validated
    changed = item.model_copy(update={"title": "changed"})
    assert changed.title == "changed"
    assert item.title == validated.title
    # The fields set is shared by every built DTO: a copy never changes it in place.
    assert item.model_fields_set == set(SetOut.model_fields)
    with pytest.raises(pydantic.ValidationError):
        item.title = "frozen"  # type: ignore[misc]


DRIFTED_COLUMNS = {
    "set column": (
        "ALTER TABLE sets ALTER COLUMN store TYPE integer USING length(store)",
        "store is int",
    ),
    "image column": (
        "ALTER TABLE set_images ALTER COLUMN created_at TYPE date",
        "created_at is date",
    ),
    "NULL in a required column": (
        "ALTER TABLE sets ALTER COLUMN title DROP NOT NULL; UPDATE sets SET title = NULL",
        "title is NoneType",
    ),
}


@pytest.mark.parametrize("change", DRIFTED_COLUMNS.values(), ids=DRIFTED_COLUMNS)
async def test_a_drifted_column_is_a_sets_db_error(
    db: str, raw: Any, change: tuple[str, str]
) -> None:
    """Another client altering a column's type is caught when its rows are read: the types
    of every result are checked on its first row."""
    ddl, problem = change
    created = await services.create_set(user_id=ALICE, data={**FULL_SET, "images": IMAGES})
    drift = raw.transaction()
    await drift.start()
    try:
        await raw.execute(ddl)
        row = await raw.fetchrow(FETCH_SET_SQL, created.id, ALICE)
    finally:
        await drift.rollback()
    with pytest.raises(SetsDbError, match=f"does not fit the schema.*{problem}"):
        to_set(row)
