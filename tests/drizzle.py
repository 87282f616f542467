"""A database made the way the story's Drizzle app makes and fills it, for the adopt tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from tests.pg import connect, create_database
from tests.test_schema_contract import DRIZZLE_REFERENCE_SQL

TIMESTAMPS = {
    "sets": ("release_date", "purchase_date", "created_at", "updated_at"),
    "set_images": ("created_at",),
}


async def drizzle_database(server_url: str, zone: str) -> str:
    """drizzle-kit's DDL on a new database whose sessions run in ``zone`` (server setting)."""
    url = await create_database(server_url, "drizzle")
    conn = await connect(url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = '{zone}'")
        await conn.execute(DRIZZLE_REFERENCE_SQL)
    finally:
        await conn.close()
    return url


async def fill_like_drizzle(url: str, sets: int = 40) -> None:
    """Rows as the Drizzle app writes them: explicit dates as naive wall times, created_at and
    updated_at from ``defaultNow()`` in the session's zone, NULL / empty / real tags, images."""
    conn = await connect(url)
    try:
        base = datetime(2024, 3, 31, 0, 30)  # near a DST change in many zones
        for n in range(sets):
            set_id = uuid.uuid4()
            explicit = base + timedelta(hours=7 * n, microseconds=n)
            await conn.execute(
                "INSERT INTO sets (id, user_id, title, set_number, piece_count, release_date,"
                " purchase_date, tags, quantity, purchase_price, tax, shipping, notes,"
                " is_built) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                set_id,
                f"user-{n % 3}",
                f"Set {n} \u2014 'quoted'",
                f"{10000 + n}-1",
                n * 10 if n % 4 else None,
                explicit if n % 5 else None,
                explicit - timedelta(days=3) if n % 2 else None,
                None if n % 3 == 0 else ([] if n % 3 == 1 else ["a", f"tag {n}"]),
                1 + n % 3,
                Decimal(f"{n}.99") if n % 2 else None,
                Decimal("0.00"),
                None,
                "note" if n % 2 else None,
                n % 2 == 0,
            )
            for position in range(n % 3):
                await conn.execute(
                    "INSERT INTO set_images (set_id, image_url, position) VALUES ($1, $2, $3)",
                    set_id,
                    f"https://img/{n}/{position}.jpg",
                    position,
                )
    finally:
        await conn.close()


async def rows(url: str, table: str) -> dict[Any, dict[str, Any]]:
    conn = await connect(url)
    try:
        return {row["id"]: dict(row) for row in await conn.fetch(f"SELECT * FROM {table}")}
    finally:
        await conn.close()


def as_instants(source: dict[Any, dict[str, Any]], table: str, zone: str) -> dict[Any, Any]:
    """The source rows with every naive timestamp read as a wall time in ``zone``."""
    tz = ZoneInfo(zone)
    converted = {}
    for key, row in source.items():
        row = dict(row)
        for column in TIMESTAMPS[table]:
            if row[column] is not None:
                row[column] = row[column].replace(tzinfo=tz)
        converted[key] = row
    return converted
