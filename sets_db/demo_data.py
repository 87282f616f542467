"""The sample collection ``sets-db demo`` loads: well-known LEGO sets for two demo users.

Loading is idempotent: for every sample set number, only the copies a user is still missing
are created (looked up with ``find_duplicates``), so running the demo twice adds nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sets_db.schemas import SetCreate
from sets_db.services import create_set, find_duplicates

USER_A = "demo-user-a"
USER_B = "demo-user-b"
# User A owns two Bonsai Trees, so the duplicate lookup has something to find.
DUPLICATE_SET_NUMBER = "10281"


def _images(number: str) -> list[dict[str, str]]:
    return [
        {
            "image_url": f"https://images.brickset.com/sets/images/{number}-1.jpg",
            "thumbnail_url": f"https://images.brickset.com/sets/small/{number}-1.jpg",
        }
    ]


def _set(
    number: str,
    title: str,
    theme: str,
    pieces: int,
    released: tuple[int, int, int],
    price: str,
    tags: list[str],
    **extra: Any,
) -> SetCreate:
    return SetCreate.model_validate(
        {
            "set_number": number,
            "title": title,
            "theme": theme,
            "piece_count": pieces,
            "release_date": datetime(*released, tzinfo=UTC),
            "purchase_price": Decimal(price),
            "tags": tags,
            "store": "LEGO Store",
            "source_url": f"https://www.lego.com/en-us/product/{number}",
            "images": _images(number),
            **extra,
        }
    )


SAMPLE_A: list[SetCreate] = [
    _set("75192", "Millennium Falcon", "Star Wars", 7541, (2017, 10, 1), "799.99",
         ["UCS", "display"], tax="64.00", shipping="0.00", is_built=True),
    _set("10294", "Titanic", "Icons", 9090, (2021, 11, 8), "629.99", ["display", "ship"],
         tax="50.40"),
    _set("42143", "Ferrari Daytona SP3", "Technic", 3778, (2022, 6, 1), "399.99",
         ["car", "Ultimate"], is_built=True),
    _set("21318", "Tree House", "Ideas", 3036, (2019, 8, 1), "199.99", ["botanical"],
         is_built=True),
    _set("10276", "Colosseum", "Icons", 9036, (2020, 11, 27), "549.99",
         ["display", "architecture"]),
    _set("71043", "Hogwarts Castle", "Harry Potter", 6020, (2018, 9, 1), "469.99",
         ["castle", "display"], shipping="9.99"),
    _set("10497", "Galaxy Explorer", "Icons", 1254, (2022, 1, 1), "99.99", ["space", "classic"],
         is_built=True),
    _set("21327", "Typewriter", "Ideas", 2079, (2021, 6, 1), "249.99", ["retro"]),
    _set("42115", "Lamborghini Sián FKP 37", "Technic", 3696, (2020, 6, 1), "379.99",
         ["car", "Ultimate"], notes="Still sealed: keeping it for later."),
    _set("10281", "Bonsai Tree", "Icons", 878, (2021, 1, 1), "49.99", ["botanical"],
         is_built=True),
    _set("10281", "Bonsai Tree", "Icons", 878, (2021, 1, 1), "44.99", ["botanical", "gift"],
         notes="A second one, bought on sale as a gift."),
    _set("75313", "AT-AT", "Star Wars", 6785, (2021, 11, 26), "799.99", ["UCS", "walker"]),
    _set("21330", "Home Alone", "Ideas", 3955, (2021, 11, 1), "299.99", ["house", "movie"],
         quantity=1),
]  # fmt: skip

SAMPLE_B: list[SetCreate] = [
    _set("75192", "Millennium Falcon", "Star Wars", 7541, (2017, 10, 1), "849.99", ["UCS"]),
    _set("10300", "Back to the Future Time Machine", "Icons", 1872, (2022, 4, 1), "169.99",
         ["car", "movie"], is_built=True),
]  # fmt: skip


async def load_sample(user_id: str, sample: list[SetCreate]) -> int:
    """Create whatever of ``sample`` the user does not have yet; how many sets were created."""
    wanted = Counter(item.set_number for item in sample)
    created = 0
    for number, count in wanted.items():
        assert number is not None
        have = len(await find_duplicates(user_id=user_id, set_number=number))
        missing = [item for item in sample if item.set_number == number][have:count]
        for item in missing:
            await create_set(user_id=user_id, data=item)
            created += 1
    return created


async def load_demo_collections() -> dict[str, int]:
    """Both demo users' collections; the number of sets each one gained."""
    return {
        USER_A: await load_sample(USER_A, SAMPLE_A),
        USER_B: await load_sample(USER_B, SAMPLE_B),
    }
