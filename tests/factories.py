"""Inputs for service tests: the test users, one fully filled set, a small collection, and a
snapshot of the rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from sets_db import services

# The owners every test acts as: two, so that each can try to reach the other's rows.
ALICE = "alice"
BOB = "bob"

FULL_SET: dict[str, Any] = {
    "title": "Millennium Falcon",
    "set_number": "75192",
    "store": "LEGO Store",
    "source_url": "https://www.lego.com/75192",
    "piece_count": 7541,
    "release_date": datetime(2017, 10, 1, tzinfo=UTC),
    "theme": "Star Wars",
    "tags": ["ucs", "display", "star wars"],
    "notes": "Bought on May the 4th",
    "is_built": True,
    "quantity": 2,
    "purchase_price": Decimal("849.99"),
    "tax": Decimal("70.12"),
    "shipping": Decimal("0.01"),
    "purchase_date": datetime(2023, 5, 4, 18, 30, tzinfo=timezone(timedelta(hours=2))),
    "wishlist_item_id": UUID("12345678-1234-5678-1234-567812345678"),
}


IMAGES = [{"image_url": f"https://img.example/{n}.jpg"} for n in range(3)]


async def small_collection() -> None:
    """Five sets of Alice's that differ in every listed field (and one of Bob's)."""
    rows = [
        ("A 100%", "City", ["a", "b"], True, 100, "10.00", "1"),
        ("B under_score", "City", ["b"], False, None, None, "2"),
        ("C O'Brien", "Technic", ["a"], False, 300, "5.50", "3"),
        ("D plain", None, [], True, 50, "20.00", "3"),
        ("E 10294-1", "Icons", ["a", "b", "c"], False, 200, "1.00", "10294-1"),
    ]
    for title, theme, tags, built, pieces, price, number in rows:
        await services.create_set(
            user_id=ALICE,
            data={
                "title": title,
                "theme": theme,
                "tags": tags,
                "is_built": built,
                "piece_count": pieces,
                "purchase_price": price,
                "set_number": number,
            },
        )
    await services.create_set(user_id=BOB, data={"title": "A bob", "theme": "City", "tags": ["a"]})


# Every row of both tables (or only those of one owner), as text, in a stable order.
SNAPSHOT = """
    SELECT 'sets' AS t, row_to_json(s)::text AS r FROM sets s
    WHERE $1::text IS NULL OR s.user_id = $1
    UNION ALL
    SELECT 'set_images', row_to_json(i)::text FROM set_images i LEFT JOIN sets s ON s.id = i.set_id
    WHERE $1::text IS NULL OR s.user_id = $1
    ORDER BY 1, 2"""


async def snapshot(raw: Any, owner: str | None = None) -> list[str]:
    """Every row of both tables, or only ``owner``'s, as text: equal snapshots mean
    byte-for-byte equal data."""
    return [f"{row['t']}:{row['r']}" for row in await raw.fetch(SNAPSHOT, owner)]
