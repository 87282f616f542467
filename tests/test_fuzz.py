"""Hypothesis fuzz of the DTO layer (no database): whatever a caller sends, ``validate``
returns a DTO that respects every bound, or raises InvalidInputError; nothing else."""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sets_db.errors import InvalidInputError
from sets_db.schemas import (
    EARLIEST,
    LATEST,
    MAX_IMAGES,
    MAX_NOTES,
    MAX_PAGE_SIZE,
    MAX_SHORT_TEXT,
    MAX_TAG,
    MAX_TAGS,
    MAX_TITLE,
    MAX_URL,
    ImageAdd,
    SetCreate,
    SetQuery,
    SetUpdate,
)
from sets_db.schemas import validated as validate

# 2000 examples per DTO in CI (CI=true), 200 locally: the fuzz was a quarter of the suite.
EXAMPLES = 2000 if os.environ.get("CI") else 200
# What pydantic strips (Unicode White_Space); Python's str.strip() also strips \x1c-\x1f.
WHITESPACE = "".join(
    c for c in map(chr, range(0x3001)) if c.isspace() and c not in "\x1c\x1d\x1e\x1f"
)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text that hits the edges: NUL, whitespace only, emoji, quotes, long runs.
edgy_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "a\x00b", "🧱", "'; DROP TABLE sets;--", "%_\\", "\t\n"]),
    st.integers(0, 3).map(lambda n: "x" * (MAX_TITLE - 1 + n)),
    st.integers(0, 3).map(lambda n: "y" * (MAX_SHORT_TEXT - 1 + n)),
)
urls = st.one_of(
    st.sampled_from(
        ["https://x/1.jpg", "http://h", "javascript:alert(1)", "ftp://h/x", "https://", "//x"]
    ),
    st.builds(lambda path: f"https://img.example/{path}", st.text(max_size=20)),
    st.integers(0, 3).map(lambda n: "https://x/" + "p" * (MAX_URL - 11 + n)),
)
money = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-1, max_value=10**9, places=3),
    st.sampled_from([Decimal("99999999.99"), Decimal("100000000"), Decimal("0.001"), "1e400"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**12), 10**12),
    st.text(max_size=8),
)
moments = st.one_of(
    st.datetimes(timezones=st.timezones()),
    st.datetimes(),  # naive
    st.sampled_from(["2020-01-01T00:00:00Z", "2020-01-01T00:00:00", "9999-12-31", "yesterday"]),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), edgy_text, st.uuids()
)
tag_lists = st.one_of(
    st.lists(edgy_text, max_size=MAX_TAGS + 3),
    st.lists(st.sampled_from(["a", "a ", " a", "b"]), max_size=6),
    scalars,
)
images = st.one_of(
    st.lists(
        st.fixed_dictionaries({"image_url": urls}, optional={"thumbnail_url": urls, "x": scalars}),
        max_size=4,
    ),
    st.integers(MAX_IMAGES - 1, MAX_IMAGES + 1).map(lambda n: [{"image_url": "https://x/i"}] * n),
    scalars,
)

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "title": st.one_of(edgy_text, scalars),
    "set_number": st.one_of(edgy_text, scalars),
    "store": edgy_text,
    "source_url": st.one_of(urls, scalars),
    "piece_count": st.one_of(st.integers(-5, 10**8), scalars),
    "release_date": moments,
    "theme": edgy_text,
    "notes": st.one_of(edgy_text, st.just("n" * (MAX_NOTES + 1))),
    "purchase_price": money,
    "tax": money,
    "shipping": money,
    "purchase_date": moments,
    "wishlist_item_id": st.one_of(st.uuids(), st.uuids().map(str), edgy_text),
    "tags": tag_lists,
    "is_built": scalars,
    "quantity": st.one_of(st.integers(-3, 2_000_000), scalars),
    "images": images,
}
EXTRA = st.dictionaries(st.sampled_from(["user_id", "id", "colour", "created_at"]), scalars)


def payloads(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of the fields, sometimes with keys the DTO does not know."""
    return st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional=fields),
        st.one_of(st.just({}), EXTRA),
    )


def _checked(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return validate(model, data)
    except InvalidInputError as error:
        problems = error.errors
    assert problems  # a rejection names what was wrong
    return None


def _text_ok(value: str | None, longest: int, *, required: bool = False) -> None:
    if value is None:
        assert not required
        return
    assert "\x00" not in value
    assert value == value.strip(WHITESPACE)
    assert len(value) <= longest
    assert value or not required


def _url_ok(value: str | None) -> None:
    if value is not None:
        assert urlsplit(value).scheme in {"http", "https"}
        assert urlsplit(value).netloc
        _text_ok(value, MAX_URL, required=True)


def _money_ok(value: Decimal | None) -> None:
    if value is not None:
        assert value.is_finite()
        assert Decimal(0) <= value <= Decimal("99999999.99")
        # numeric(10,2) holds it exactly: storing it never rounds (1.500 is 1.50).
        assert value == value.quantize(Decimal("0.01"))


def _moment_ok(value: datetime | None) -> None:
    if value is not None:
        assert value.utcoffset() is not None
        assert EARLIEST <= value < LATEST


def _set_fields_ok(dto: Any) -> None:
    for name in ("set_number", "store", "theme"):
        _text_ok(getattr(dto, name), MAX_SHORT_TEXT)
    _text_ok(dto.notes, MAX_NOTES)
    _url_ok(dto.source_url)
    for name in ("purchase_price", "tax", "shipping"):
        _money_ok(getattr(dto, name))
    _moment_ok(dto.release_date)
    _moment_ok(dto.purchase_date)
    if dto.piece_count is not None:
        assert 0 <= dto.piece_count <= 10_000_000
    if dto.quantity is not None:
        assert 1 <= dto.quantity <= 1_000_000
    if dto.title is not None:
        _text_ok(dto.title, MAX_TITLE, required=True)
    if dto.tags is not None:
        assert len(dto.tags) <= MAX_TAGS
        assert len(set(dto.tags)) == len(dto.tags)
        for tag in dto.tags:
            _text_ok(tag, MAX_TAG, required=True)


@FUZZ
@given(payloads(FIELDS))
def test_set_create(data: dict[str, Any]) -> None:
    dto = _checked(SetCreate, data)
    if dto is not None:
        _set_fields_ok(dto)
        assert dto.title
        assert len(dto.images) <= MAX_IMAGES
        for image in dto.images:
            _url_ok(image.image_url)
            _url_ok(image.thumbnail_url)


@FUZZ
@given(payloads({k: v for k, v in FIELDS.items() if k != "images"}))
def test_set_update(data: dict[str, Any]) -> None:
    dto = _checked(SetUpdate, data)
    if dto is not None:
        _set_fields_ok(dto)
        changes = dto.changes()
        assert set(changes) == set(data)  # exactly what was sent, nothing invented
        for name in ("title", "tags", "is_built", "quantity"):
            assert changes.get(name, "absent") is not None


@FUZZ
@given(
    payloads(
        {
            "image_url": st.one_of(urls, scalars),
            "thumbnail_url": st.one_of(urls, scalars),
            "position": st.one_of(st.integers(-3, 10**6), scalars),
        }
    )
)
def test_image_add(data: dict[str, Any]) -> None:
    dto = _checked(ImageAdd, data)
    if dto is not None:
        _url_ok(dto.image_url)
        _url_ok(dto.thumbnail_url)
        assert dto.position is None or dto.position >= 0


@FUZZ
@given(
    payloads(
        {
            "themes": st.one_of(st.lists(st.one_of(edgy_text, scalars), max_size=4), scalars),
            "tags": tag_lists,
            "is_built": scalars,
            "set_number": edgy_text,
            "search": st.one_of(edgy_text, scalars),
            "sort": st.one_of(
                st.sampled_from(["created_at", "title", "total_cost", "user_id", "id; --"]),
                scalars,
            ),
            "descending": scalars,
            "limit": st.one_of(st.integers(-2, MAX_PAGE_SIZE + 2), scalars),
            "cursor": st.one_of(edgy_text, st.just("c" * 1001), scalars),
        }
    )
)
def test_set_query(data: dict[str, Any]) -> None:
    dto = _checked(SetQuery, data)
    if dto is not None:
        assert 1 <= dto.limit <= MAX_PAGE_SIZE
        assert dto.sort in {
            "created_at",
            "title",
            "piece_count",
            "release_date",
            "purchase_date",
            "total_cost",
        }
        _text_ok(dto.search, MAX_SHORT_TEXT)
        _text_ok(dto.set_number, MAX_SHORT_TEXT)
        for theme in dto.themes or []:
            _text_ok(theme, MAX_SHORT_TEXT)
        assert dto.cursor is None or len(dto.cursor) <= 1000
