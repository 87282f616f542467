"""A synthetic, reproducible LEGO collection: fixed seed in, the same rows out."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sets_db.services import copy_binary

THEMES = [
    ("Star Wars", 18),
    ("City", 12),
    ("Technic", 10),
    ("Icons", 7),
    ("Creator 3in1", 6),
    ("Ideas", 5),
    ("Harry Potter", 5),
    ("Ninjago", 5),
    ("Friends", 4),
    ("Marvel Super Heroes", 4),
    ("Speed Champions", 4),
    ("Architecture", 3),
    ("Botanical Collection", 3),
    ("Minecraft", 3),
    ("Disney", 3),
    ("Jurassic World", 2),
    ("Art", 2),
    ("Duplo", 2),
]
TAGS = [
    "sealed",
    "built",
    "display",
    "gift",
    "retired",
    "used",
    "boxed",
    "minifigs",
    "moc",
    "sale",
    "exclusive",
    "ucs",
    "modular",
    "kids",
    "investment",
]
ADJECTIVES = [
    "Millennium",
    "Imperial",
    "Rebel",
    "Ancient",
    "Modular",
    "Police",
    "Fire",
    "Space",
    "Medieval",
    "Ultimate",
    "Classic",
    "Mighty",
    "Hidden",
    "Golden",
    "Arctic",
    "Jungle",
    "Downtown",
    "Royal",
    "Secret",
    "Turbo",
]
NOUNS = [
    "Falcon",
    "Castle",
    "Station",
    "Cruiser",
    "Train",
    "Harbor",
    "Temple",
    "Garage",
    "Rover",
    "Dragon",
    "Bookshop",
    "Lighthouse",
    "Observatory",
    "Excavator",
    "Shuttle",
    "Market",
    "Academy",
    "Bonsai Tree",
    "Orchid",
    "Crane",
]
EPOCH = datetime(2021, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 5 * 365 * 24 * 3600


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low, high)).scaleb(-2)


def set_row(rng: random.Random, numbers: list[str]) -> dict[str, Any]:
    """One set as a caller would pass it to ``create_set`` / ``import_sets``."""
    price = _money(rng, 499, 84999) if rng.random() < 0.85 else None
    released = EPOCH - timedelta(days=rng.randint(0, 20 * 365))
    row: dict[str, Any] = {
        "title": f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}",
        "set_number": rng.choice(numbers) if rng.random() < 0.95 else None,
        "store": rng.choice(["LEGO Store", "Amazon", "Target", "BrickLink", "eBay", None]),
        "source_url": f"https://www.lego.com/product/{rng.randint(1, 10**6)}"
        if rng.random() < 0.5
        else None,
        "piece_count": rng.randint(30, 9000) if rng.random() < 0.9 else None,
        "release_date": released,
        "theme": rng.choices([t for t, _ in THEMES], [w for _, w in THEMES])[0]
        if rng.random() < 0.95
        else None,
        "tags": rng.sample(TAGS, rng.randint(0, 4)),
        "notes": "Bought for the minifigures." if rng.random() < 0.2 else None,
        "is_built": rng.random() < 0.6,
        "quantity": 1 if rng.random() < 0.9 else rng.randint(2, 4),
        "purchase_price": price,
        "tax": (price * Decimal("0.08")).quantize(Decimal("0.01")) if price else None,
        "shipping": _money(rng, 0, 1999) if price and rng.random() < 0.4 else None,
        "purchase_date": released + timedelta(days=rng.randint(0, 2000)),
        "images": [
            {
                "image_url": f"https://img.example.com/{rng.getrandbits(64):016x}/{k}.jpg",
                "thumbnail_url": f"https://img.example.com/{rng.getrandbits(64):016x}/{k}-t.jpg"
                if rng.random() < 0.5
                else None,
            }
            for k in range(rng.randint(0, 5))
        ],
    }
    return row


def set_numbers(rng: random.Random, count: int = 6000) -> list[str]:
    return [
        f"{rng.randint(10000, 79999)}" + ("-1" if rng.random() < 0.3 else "") for _ in range(count)
    ]


def user_ids(users: int) -> list[str]:
    return [f"cognito-sub-{n:06d}" for n in range(users)]


def owners(rng: random.Random, users: list[str], sets: int) -> list[str]:
    """Who owns each set: a few collectors own a fifth of everything (deep pages exist)."""
    power = users[: max(1, len(users) // 200)]
    return [rng.choice(power) if rng.random() < 0.2 else rng.choice(users) for _ in range(sets)]


# import_sets' columns plus the creation times, which the synthetic data spreads out.
SET_COLUMNS = (*copy_binary.SET_COLUMNS, "created_at", "updated_at")
IMAGE_COLUMNS = (*copy_binary.IMAGE_COLUMNS, "created_at")


def copy_records(
    rng: random.Random, rows: list[dict[str, Any]], owner_ids: list[str]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The same rows as COPY records, with ids and creation times spread over five years."""
    sets: list[tuple[Any, ...]] = []
    images: list[tuple[Any, ...]] = []
    for row, user_id in zip(rows, owner_ids, strict=True):
        set_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        created = EPOCH + timedelta(seconds=rng.randint(0, SPAN_SECONDS))
        # By name: import_sets' column order is its own business.
        values = [row.get(column) for column in copy_binary.SET_COLUMNS[2:]]
        sets.append((set_id, user_id, *values, created, created))
        images.extend(
            (set_id, image["image_url"], image["thumbnail_url"], position, created)
            for position, image in enumerate(row["images"])
        )
    return sets, images
