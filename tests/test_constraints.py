"""The CHECK constraints of migration 4: every client keeps what the services rely on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sets_db.errors import SetsDbError
from sets_db.migrator import applied_versions, migrate, migration_versions
from sets_db.schema_check import catalog_of, expected_schema
from tests.pg import aerich, aerich_in, connect, copy_project, output_of

MakeDatabase = Callable[[], Awaitable[str]]

FORBIDDEN = [
    ("sets_tags_one_dimensional", "tags", "'{{a,b},{c,d}}'::text[]"),
    ("sets_tags_no_null_element", "tags", "ARRAY['a', NULL]"),
    ("sets_quantity_at_least_one", "quantity", "0"),
    ("sets_piece_count_not_negative", "piece_count", "-1"),
    ("sets_purchase_price_not_negative", "purchase_price", "-0.01"),
    ("sets_tax_not_negative", "tax", "-1"),
    ("sets_shipping_not_negative", "shipping", "-5"),
    ("sets_title_not_blank", "title", "'   '"),
]
CHECK_NAMES = [name for name, *_ in FORBIDDEN] + ["set_images_position_not_negative"]


@pytest.mark.parametrize(("constraint", "column", "value"), FORBIDDEN)
async def test_a_plain_sql_insert_of_a_forbidden_value_fails(
    raw: Any, constraint: str, column: str, value: str
) -> None:
    columns = {"user_id": "'u1'", "title": "'T'", column: value}
    sql = f"INSERT INTO sets ({', '.join(columns)}) VALUES ({', '.join(columns.values())})"
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await raw.execute(sql)
    assert caught.value.constraint_name == constraint


async def test_a_negative_image_position_fails(raw: Any) -> None:
    set_id = await raw.fetchval("INSERT INTO sets (user_id, title) VALUES ('u1', 'T') RETURNING id")
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await raw.execute(
            "INSERT INTO set_images (set_id, image_url, position) VALUES ($1, 'x', -1)", set_id
        )
    assert caught.value.constraint_name == "set_images_position_not_negative"


async def test_the_allowed_edge_values_are_stored(raw: Any) -> None:
    for tags in ("NULL", "'{}'", "ARRAY['a']"):
        await raw.execute(
            "INSERT INTO sets (user_id, title, tags, quantity, piece_count, purchase_price) "
            f"VALUES ('u1', ' x ', {tags}, 1, 0, 0)"
        )
    assert await raw.fetchval("SELECT count(*) FROM sets") == 3


async def _at_migration_3(url: str, tmp_path: Path) -> None:
    output_of(aerich_in(copy_project(tmp_path / "at-3", upto=4), url, "upgrade"))


async def test_violating_rows_fail_the_migration_naming_the_constraint(
    empty_database: MakeDatabase, tmp_path: Path
) -> None:
    url = await empty_database()
    await _at_migration_3(url, tmp_path)
    conn = await connect(url)
    try:
        await conn.execute(
            "INSERT INTO sets (user_id, title, quantity, tags) VALUES "
            "('u1', 'T', 0, NULL), ('u1', 'T', 0, '{}'), ('u1', '', 1, ARRAY['a', NULL])"
        )
    finally:
        await conn.close()
    with pytest.raises(SetsDbError, match="violate constraint") as caught:
        await migrate(url)
    message = str(caught.value)
    assert "sets_quantity_at_least_one (2 rows)" in message
    assert "sets_title_not_blank (1 rows)" in message
    assert "sets_tags_no_null_element (1 rows)" in message
    # Nothing half-applied: no constraint of migration 4, not recorded as applied.
    found = await catalog_of(url)
    assert not [key for key in found if any(key.endswith(f".{name}") for name in CHECK_NAMES)]
    assert migration_versions()[4] not in await applied_versions(url)


async def test_downgrade_then_upgrade_again(empty_database: MakeDatabase) -> None:
    url = await empty_database()
    await migrate(url)
    head = await catalog_of(url)
    assert head == expected_schema()
    output_of(aerich(url, "downgrade", "-v", "4", "--yes"))  # migration 4 and all after it
    down = await catalog_of(url)
    assert not [key for key in down if any(key.endswith(f".{name}") for name in CHECK_NAMES)]
    assert await migrate(url) == migration_versions()[4:]
    assert await catalog_of(url) == head
