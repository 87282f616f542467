"""A corpus of hostile and broken inputs against every public service function.

Each input is either rejected with a typed ``sets_db.errors`` error, leaving every row of
the database exactly as it was, or accepted and stored exactly (emoji, quotes, SQL
metacharacters are data, never code).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import sets_db.services as services
from sets_db.errors import (
    ImageNotFoundError,
    InvalidInputError,
    SetNotFoundError,
    SetsDbError,
)
from sets_db.schemas import MAX_IMAGES, MAX_TAG, MAX_TAGS, MAX_TITLE
from tests.factories import ALICE, BOB, snapshot

HUGE = "x" * 5_000_000
NAIVE = datetime(2020, 1, 1, 12, 0)
Seed = dict[str, Any]
Call = Callable[[Seed], Awaitable[object]]


@dataclass(frozen=True)
class Case:
    id: str
    function: str
    call: Call
    error: type[SetsDbError] = InvalidInputError


def _create(**data: Any) -> Call:
    return lambda seed: services.create_set(user_id=ALICE, data={"title": "T", **data})


def _create_raw(data: Any) -> Call:
    return lambda seed: services.create_set(user_id=ALICE, data=data)


def _as(function: str, user_id: Any, **kwargs: Any) -> Call:
    async def call(seed: Seed) -> object:
        target = getattr(services, function)
        if function == "export_sets":
            return [item async for item in target(user_id=user_id, **kwargs)]
        return await target(user_id=user_id, **kwargs)

    return call


def _reorder(order: Callable[[Seed], Any]) -> Call:
    return lambda seed: services.reorder_images(
        user_id=ALICE, set_id=seed["set"], image_ids=order(seed)
    )


def untyped(value: object) -> Any:
    """``value`` where the signature forbids it, as an untyped caller (JSON, a form) passes it."""
    return value


def _list(query: Mapping[str, Any]) -> Call:
    return lambda seed: services.list_sets(user_id=ALICE, **query)


async def _export(seed: Seed, **kwargs: Any) -> object:
    return [item async for item in services.export_sets(user_id=ALICE, **kwargs)]


def _cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


BAD_USER_IDS = {
    "empty": "",
    "whitespace": " \t\n",
    "none": None,
    "int": 42,
    "nul": "ali\x00ce",
    "huge": "u" * 256,
    "list": [ALICE],
}
USER_ONLY = ("collection_stats", "list_duplicate_groups", "list_tags", "list_themes")

BAD_QUERIES: dict[str, dict[str, Any]] = {
    "limit-zero": {"limit": 0},
    "limit-negative": {"limit": -1},
    "limit-huge": {"limit": 10**6},
    "sort-injection": {"sort": "title; DROP TABLE sets"},
    "sort-unknown": {"sort": "user_id"},
    "cursor-garbage": {"cursor": "!!not base64!!"},
    "cursor-tampered": {"cursor": _cursor(["0" * 16, "x", "not-a-uuid"])},
    "cursor-not-a-list": {"cursor": _cursor({"a": 1})},
    "cursor-short": {"cursor": base64.urlsafe_b64encode(b"0" * 20).decode()},
    "cursor-unmarked-key": {"cursor": base64.urlsafe_b64encode(b"0" * 60).decode()},
    "cursor-not-utf8": {"cursor": base64.urlsafe_b64encode(b"\xff" * 60).decode()},
    "cursor-huge": {"cursor": "A" * 100_000},
    "search-nul": {"search": "\x00"},
    "search-huge": {"search": HUGE},
    "themes-none-item": {"themes": [None]},
    "tags-nul": {"tags": ["a\x00"]},
    "is-built-text": {"is_built": "maybe"},
    "descending-text": {"descending": "sideways"},
}

CASES: list[Case] = [
    # --- create_set: wrong shapes and types
    Case("create-none", "create_set", _create_raw(None)),
    Case("create-string", "create_set", _create_raw("title=Falcon")),
    Case("create-list", "create_set", _create_raw([("title", "Falcon")])),
    Case("create-no-title", "create_set", _create_raw({"theme": "Star Wars"})),
    Case("title-int", "create_set", _create(title=123)),
    Case("title-empty", "create_set", _create(title="")),
    Case("title-whitespace", "create_set", _create(title=" \t\n ")),
    Case("title-too-long", "create_set", _create(title="x" * (MAX_TITLE + 1))),
    Case("title-huge", "create_set", _create(title=HUGE)),
    Case("title-nul", "create_set", _create(title="Falcon\x00")),
    Case("notes-nul", "create_set", _create(notes="a\x00b")),
    Case("notes-huge", "create_set", _create(notes=HUGE)),
    Case("store-huge", "create_set", _create(store=HUGE)),
    Case("unknown-field", "create_set", _create(colour="red")),
    Case("smuggled-owner", "create_set", _create(user_id=BOB)),
    Case("smuggled-id", "create_set", _create(id=str(uuid.uuid4()))),
    Case("smuggled-created-at", "create_set", _create(created_at="2020-01-01T00:00:00Z")),
    # money
    Case("price-negative", "create_set", _create(purchase_price=Decimal("-0.01"))),
    Case("price-nan", "create_set", _create(purchase_price=Decimal("NaN"))),
    Case("price-snan", "create_set", _create(purchase_price="sNaN")),
    Case("price-float-nan", "create_set", _create(purchase_price=float("nan"))),
    Case("price-infinity", "create_set", _create(tax="Infinity")),
    Case("price-over-precise", "create_set", _create(shipping=Decimal("1.005"))),
    Case("price-too-big", "create_set", _create(purchase_price=Decimal("100000000.00"))),
    Case("price-exponent", "create_set", _create(purchase_price="1e400")),
    Case("price-text", "create_set", _create(purchase_price="ten dollars")),
    Case("price-sql", "create_set", _create(purchase_price="0; DROP TABLE sets")),
    # numbers
    Case("quantity-zero", "create_set", _create(quantity=0)),
    Case("quantity-negative", "create_set", _create(quantity=-5)),
    Case("quantity-text", "create_set", _create(quantity="lots")),
    Case("quantity-float", "create_set", _create(quantity=1.5)),
    Case("pieces-negative", "create_set", _create(piece_count=-1)),
    Case("pieces-int64", "create_set", _create(piece_count=2**63)),
    # dates
    Case("date-naive", "create_set", _create(release_date=NAIVE)),
    Case("date-naive-text", "create_set", _create(purchase_date="2020-01-01T12:00:00")),
    Case("date-year-1", "create_set", _create(release_date=datetime(1, 1, 1, tzinfo=UTC))),
    Case("date-year-9999", "create_set", _create(purchase_date="9999-12-31T00:00:00+00:00")),
    Case("date-garbage", "create_set", _create(release_date="yesterday")),
    Case("date-feb-30", "create_set", _create(release_date="2021-02-30T00:00:00Z")),
    # urls and images
    Case("url-javascript", "create_set", _create(source_url="javascript:alert(1)")),
    Case("url-file", "create_set", _create(images=[{"image_url": "file:///etc/passwd"}])),
    Case("url-no-host", "create_set", _create(source_url="https://")),
    Case("url-nul", "create_set", _create(images=[{"image_url": "https://x/\x00.jpg"}])),
    Case(
        "images-too-many",
        "create_set",
        _create(images=[{"image_url": "https://x/i"}] * (MAX_IMAGES + 1)),
    ),
    Case("images-not-a-list", "create_set", _create(images="https://x/1.jpg")),
    Case("images-extra-field", "create_set", _create(images=[{"image_url": "https://x", "x": 1}])),
    # tags
    Case("tag-empty", "create_set", _create(tags=[""])),
    Case("tag-whitespace", "create_set", _create(tags=["  "])),
    Case("tag-too-long", "create_set", _create(tags=["t" * (MAX_TAG + 1)])),
    Case("tags-too-many", "create_set", _create(tags=[f"t{n}" for n in range(MAX_TAGS + 1)])),
    Case("tags-string", "create_set", _create(tags="lego")),
    Case("tag-nul", "create_set", _create(tags=["a\x00"])),
    Case("tag-none", "create_set", _create(tags=[None])),
    Case("wishlist-not-uuid", "create_set", _create(wishlist_item_id="not-a-uuid")),
    # --- ids
    Case("get-not-uuid", "get_set", lambda s: services.get_set(user_id=ALICE, set_id="nope")),
    Case("get-int-id", "get_set", lambda s: services.get_set(user_id=ALICE, set_id=untyped(12345))),
    Case("get-none-id", "get_set", lambda s: services.get_set(user_id=ALICE, set_id=untyped(None))),
    Case(
        "get-sql-id",
        "get_set",
        lambda s: services.get_set(user_id=ALICE, set_id="'; DROP TABLE sets; --"),
    ),
    Case(
        "get-missing",
        "get_set",
        lambda s: services.get_set(user_id=ALICE, set_id=uuid.uuid4()),
        SetNotFoundError,
    ),
    Case(
        "get-others",
        "get_set",
        lambda s: services.get_set(user_id=ALICE, set_id=s["bob_set"]),
        SetNotFoundError,
    ),
    Case(
        "get-or-none-bad-id",
        "get_set_or_none",
        lambda s: services.get_set_or_none(user_id=ALICE, set_id="1 OR 1=1"),
    ),
    # --- update_set
    Case(
        "update-clear-title",
        "update_set",
        lambda s: services.update_set(user_id=ALICE, set_id=s["set"], changes={"title": None}),
    ),
    Case(
        "update-clear-quantity",
        "update_set",
        lambda s: services.update_set(user_id=ALICE, set_id=s["set"], changes={"quantity": None}),
    ),
    Case(
        "update-owner",
        "update_set",
        lambda s: services.update_set(user_id=ALICE, set_id=s["set"], changes={"user_id": BOB}),
    ),
    Case(
        "update-column-injection",
        "update_set",
        lambda s: services.update_set(
            user_id=ALICE, set_id=s["set"], changes={"title\" = 'x', \"user_id": "bob"}
        ),
    ),
    Case(
        "update-bad-price",
        "update_set",
        lambda s: services.update_set(
            user_id=ALICE, set_id=s["set"], changes={"tax": Decimal("0.001")}
        ),
    ),
    Case(
        "update-not-a-mapping",
        "update_set",
        lambda s: services.update_set(user_id=ALICE, set_id=s["set"], changes=untyped("title=x")),
    ),
    Case(
        "update-others",
        "update_set",
        lambda s: services.update_set(user_id=ALICE, set_id=s["bob_set"], changes={"title": "x"}),
        SetNotFoundError,
    ),
    # --- delete_set
    Case("delete-empty-id", "delete_set", lambda s: services.delete_set(user_id=ALICE, set_id="")),
    Case(
        "delete-others",
        "delete_set",
        lambda s: services.delete_set(user_id=ALICE, set_id=s["bob_set"]),
        SetNotFoundError,
    ),
    # --- add_image
    Case(
        "image-not-url",
        "add_image",
        lambda s: services.add_image(user_id=ALICE, set_id=s["set"], image_url="not a url"),
    ),
    Case(
        "image-empty-url",
        "add_image",
        lambda s: services.add_image(user_id=ALICE, set_id=s["set"], image_url=""),
    ),
    Case(
        "image-data-thumbnail",
        "add_image",
        lambda s: services.add_image(
            user_id=ALICE, set_id=s["set"], image_url="https://x/1", thumbnail_url="data:,x"
        ),
    ),
    Case(
        "image-negative-position",
        "add_image",
        lambda s: services.add_image(
            user_id=ALICE, set_id=s["set"], image_url="https://x/1", position=-1
        ),
    ),
    Case(
        "image-text-position",
        "add_image",
        lambda s: services.add_image(
            user_id=ALICE, set_id=s["set"], image_url="https://x/1", position=untyped("first")
        ),
    ),
    Case(
        "image-huge-url",
        "add_image",
        lambda s: services.add_image(user_id=ALICE, set_id=s["set"], image_url="https://x/" + HUGE),
    ),
    Case(
        "image-others-set",
        "add_image",
        lambda s: services.add_image(user_id=ALICE, set_id=s["bob_set"], image_url="https://x/1"),
        SetNotFoundError,
    ),
    # --- reorder_images
    *(
        Case(
            f"reorder-{name}",
            "reorder_images",
            _reorder(order),
        )
        for name, order in {
            "empty": lambda s: [],
            "duplicate": lambda s: [s["images"][0], *s["images"][:-1]],
            "missing-one": lambda s: s["images"][:-1],
            "extra-one": lambda s: [*s["images"], uuid.uuid4()],
            "foreign-image": lambda s: [*s["images"][:-1], s["bob_image"]],
            "not-uuids": lambda s: ["a", "b", "c"],
            "a-string": lambda s: "abc",
            "none": lambda s: None,
            "too-many": lambda s: [uuid.uuid4() for _ in range(MAX_IMAGES * 10 + 1)],
        }.items()
    ),
    Case(
        "reorder-others-set",
        "reorder_images",
        lambda s: services.reorder_images(
            user_id=ALICE, set_id=s["bob_set"], image_ids=[s["bob_image"]]
        ),
        SetNotFoundError,
    ),
    # --- delete_image
    Case(
        "delete-image-not-uuid",
        "delete_image",
        lambda s: services.delete_image(user_id=ALICE, image_id="x"),
    ),
    Case(
        "delete-image-others",
        "delete_image",
        lambda s: services.delete_image(user_id=ALICE, image_id=s["bob_image"]),
        ImageNotFoundError,
    ),
    # --- list_sets
    *(
        Case(
            f"list-{name}",
            "list_sets",
            _list(kw),
        )
        for name, kw in BAD_QUERIES.items()
    ),
    # --- find_duplicates
    Case(
        "duplicates-none",
        "find_duplicates",
        lambda s: services.find_duplicates(user_id=ALICE, set_number=untyped(None)),
    ),
    Case(
        "duplicates-nul",
        "find_duplicates",
        lambda s: services.find_duplicates(user_id=ALICE, set_number="75\x00192"),
    ),
    Case(
        "duplicates-huge",
        "find_duplicates",
        lambda s: services.find_duplicates(user_id=ALICE, set_number=HUGE),
    ),
    # --- import_sets: one bad row rejects all, and nothing is written
    Case(
        "import-one-bad-row",
        "import_sets",
        lambda s: services.import_sets(
            user_id=ALICE, rows=[{"title": "fine"}, {"title": "x", "purchase_price": "-1"}]
        ),
    ),
    Case(
        "import-empty-title",
        "import_sets",
        lambda s: services.import_sets(user_id=ALICE, rows=[{"title": ""}]),
    ),
    Case(
        "import-owner-smuggled",
        "import_sets",
        lambda s: services.import_sets(user_id=ALICE, rows=[{"title": "x", "user_id": BOB}]),
    ),
    Case(
        "import-rows-none",
        "import_sets",
        lambda s: services.import_sets(user_id=ALICE, rows=untyped(None)),
    ),
    Case(
        "import-rows-string",
        "import_sets",
        lambda s: services.import_sets(user_id=ALICE, rows=untyped("title")),
    ),
    # --- export_sets
    Case("export-batch-zero", "export_sets", lambda s: _export(s, batch_size=0)),
    Case("export-batch-text", "export_sets", lambda s: _export(s, batch_size="10")),
    Case("export-batch-bool", "export_sets", lambda s: _export(s, batch_size=True)),
    # --- bad user ids, for every function that takes only the owner, and some others
    *(
        Case(f"{function}-user-{name}", function, _as(function, bad))
        for function in (*USER_ONLY, "export_sets")
        for name, bad in BAD_USER_IDS.items()
    ),
    *(
        Case(
            f"create-user-{name}",
            "create_set",
            _as("create_set", bad, data={"title": "x"}),
        )
        for name, bad in BAD_USER_IDS.items()
    ),
    Case("list-user-empty", "list_sets", _as("list_sets", "")),
    Case("import-user-none", "import_sets", _as("import_sets", None, rows=[{"title": "x"}])),
]


@pytest.fixture
async def seed(raw: Any) -> Seed:
    mine = await services.create_set(
        user_id=ALICE,
        data={
            "title": "Mine",
            "set_number": "75192",
            "tags": ["ucs"],
            "images": [{"image_url": f"https://x/a{n}"} for n in range(3)],
        },
    )
    theirs = await services.create_set(
        user_id=BOB, data={"title": "Theirs", "images": [{"image_url": "https://x/b"}]}
    )
    return {
        "set": mine.id,
        "images": [image.id for image in mine.images],
        "bob_set": theirs.id,
        "bob_image": theirs.images[0].id,
    }


def test_the_corpus_covers_every_public_function() -> None:
    assert len(CASES) >= 50
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.function for case in CASES} == set(services.__all__)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hostile_input_is_rejected_and_nothing_changes(
    case: Case, seed: Seed, raw: Any
) -> None:
    before = await snapshot(raw)
    with pytest.raises(SetsDbError) as caught:
        await case.call(seed)
    assert type(caught.value) is case.error, caught.value
    assert await snapshot(raw) == before


# --- Accepted, and stored exactly ---------------------------------------------------------------

EXACT_TEXTS = [
    "🧱 Millennium Falcon 🚀",
    "Robert'); DROP TABLE sets;--",
    "\"double\" and 'single' quotes",
    "100% off_the_shelf \\ backslash",
    "e\u0301 combining, \u200b zero width, \u202e right-to-left",
    "x" * MAX_TITLE,
]


@pytest.mark.parametrize("text", EXACT_TEXTS, ids=range(len(EXACT_TEXTS)))
async def test_odd_but_valid_text_is_stored_exactly(text: str, raw: Any, db: str) -> None:
    created = await services.create_set(
        user_id=ALICE, data={"title": text, "notes": text, "tags": [text[:MAX_TAG]]}
    )
    row = await raw.fetchrow("SELECT title, notes, tags FROM sets WHERE id = $1", created.id)
    assert tuple(row) == (text, text, [text[:MAX_TAG]])
    assert (await services.get_set(user_id=ALICE, set_id=created.id)).title == text


async def test_sql_and_like_metacharacters_search_literally(raw: Any, db: str) -> None:
    titles = ["100% LEGO", "100 LEGO", "a_b", "axb", "it's", "its", "back\\slash", "backslash"]
    for title in titles:
        await services.create_set(user_id=ALICE, data={"title": title, "tags": [title]})
    for needle, expected in {
        "%": ["100% LEGO"],
        "_": ["a_b"],
        "'": ["it's"],
        "\\": ["back\\slash"],
        "' OR '1'='1": [],
    }.items():
        page = await services.list_sets(user_id=ALICE, search=needle, sort="title")
        assert [item.title for item in page.items] == expected, needle
    for tag in ("100% LEGO", "a_b", "it's", "back\\slash"):
        page = await services.list_sets(user_id=ALICE, tags=[tag])
        assert [item.title for item in page.items] == [tag]
    assert [
        item.title for item in (await services.list_sets(user_id=ALICE, tags=["%"])).items
    ] == []


async def test_money_and_dates_at_their_bounds_are_stored_exactly(raw: Any, db: str) -> None:
    moment = datetime(2021, 6, 1, 23, 30, tzinfo=timezone(timedelta(hours=-7)))
    created = await services.create_set(
        user_id=ALICE,
        data={
            "title": "Bounds",
            "purchase_price": Decimal("99999999.99"),
            "tax": Decimal("0.10"),
            "shipping": "0",
            "release_date": moment,
            "purchase_date": "1900-01-01T00:00:00Z",
        },
    )
    row = await raw.fetchrow(
        "SELECT purchase_price, tax, shipping, release_date, purchase_date FROM sets WHERE id = $1",
        created.id,
    )
    assert tuple(row) == (
        Decimal("99999999.99"),
        Decimal("0.10"),
        Decimal("0.00"),
        moment,
        datetime(1900, 1, 1, tzinfo=UTC),
    )
