"""Inputs are strict where lax parsing would change their meaning: one row per rule.

Each case is refused by the DTO the services validate with; the accepted table shows the
forms that stay allowed, so the rules do not creep into refusing honest input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from sets_db.schemas import ImageAdd, ImageOrder, SetCreate, SetQuery, SetUpdate

MINIMAL = {"title": "Set"}

# (rule, model, field, value)
REFUSED: list[tuple[str, type[pydantic.BaseModel], str, Any]] = [
    ("no bool for an int", SetCreate, "quantity", True),
    ("no bool for an int", SetCreate, "piece_count", False),
    ("no bool for an int", ImageAdd, "position", True),
    ("no bool for the page size", SetQuery, "limit", True),
    ("no underscores in numbers", SetCreate, "quantity", "1_000"),
    ("no underscores in numbers", SetCreate, "purchase_price", "1_000.00"),
    ("no blanks around numbers", SetCreate, "piece_count", " 7 "),
    ("no floats for ints", SetCreate, "piece_count", 3.0),
    ("only true/false for a flag", SetCreate, "is_built", "yes"),
    ("only true/false for a flag", SetCreate, "is_built", 1),
    ("only true/false for a flag", SetQuery, "is_built", "false"),
    ("no bytes for text", SetCreate, "title", b"bytes"),
    ("no bytes for text", SetCreate, "notes", bytearray(b"x")),
    ("no bytes for a UUID", SetCreate, "wishlist_item_id", bytes(range(16))),
    ("no numbers for a UUID", SetCreate, "wishlist_item_id", 123),
    ("no numbers for dates", SetCreate, "release_date", 0),
    ("no numbers for dates", SetCreate, "purchase_date", 1.7e9),
    ("no floats for money", SetCreate, "purchase_price", 9.99),
    ("no floats for money", SetCreate, "tax", 1.0),
    ("no bool for money", SetCreate, "shipping", True),
    ("no unordered tags", SetCreate, "tags", {"a", "b"}),
    ("no unordered tags", SetUpdate, "tags", frozenset({"a"})),
    ("no unordered images", SetCreate, "images", {}),
    ("no unordered image ids", ImageOrder, "image_ids", {uuid.uuid4(), uuid.uuid4()}),
    ("no unordered filters", SetQuery, "tags", {"a"}),
    ("text must be visible", SetCreate, "title", "\u200b"),
    ("text must be visible", SetCreate, "title", "\u0301"),
    ("text must be visible", SetCreate, "title", "\u200b\u200d\ufeff"),
    ("text must be visible", SetCreate, "theme", "\u2060"),
    ("text must be visible", SetCreate, "tags", ["\u200b"]),
    ("no control characters in a line", SetCreate, "title", "bell\x07"),
    ("no control characters in a line", SetCreate, "title", "CR\rinside"),
    ("no control characters in a line", SetCreate, "title", "escape \x1b[31mred"),
    ("no control characters in a line", SetCreate, "title", "C1 \x85 next line"),
    ("no control characters in a line", SetCreate, "store", "a\nb"),
    ("no control characters in a line", SetCreate, "tags", ["a\tb"]),
    ("notes: only tab and line breaks", SetCreate, "notes", "escape \x1b[2J"),
    ("notes: only tab and line breaks", SetCreate, "notes", "vertical\x0btab"),
]


@pytest.mark.parametrize(("rule", "model", "field", "value"), REFUSED)
def test_refused(rule: str, model: type[pydantic.BaseModel], field: str, value: Any) -> None:
    data = {**MINIMAL, field: value} if model in {SetCreate} else {field: value}
    if model is ImageAdd:
        data = {"image_url": "https://i.test/1.jpg", field: value}
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(data)
    assert {str(error["loc"][0]) for error in caught.value.errors()} == {field}, rule


ACCEPTED: list[tuple[str, Any, Any]] = [
    ("quantity", 3, 3),
    ("quantity", "12", 12),
    ("piece_count", "+7", 7),
    ("is_built", True, True),
    ("purchase_price", "12.30", Decimal("12.30")),
    ("purchase_price", Decimal("1.5"), Decimal("1.5")),
    ("purchase_price", 12, Decimal("12")),
    ("release_date", "2020-01-02T03:04:05+00:00", datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("wishlist_item_id", str(uuid.UUID(int=5)), uuid.UUID(int=5)),
    ("tags", ("b", "a", "b"), ["b", "a"]),
    ("title", "  \u00e9t\u00e9 \U0001f9f1 ", "\u00e9t\u00e9 \U0001f9f1"),
    ("title", "e\u0301", "e\u0301"),
    ("title", "\ue000", "\ue000"),
    ("notes", "a\r\nb\rc\td", "a\r\nb\rc\td"),
    ("set_number", "", ""),
]


@pytest.mark.parametrize(("field", "value", "expected"), ACCEPTED)
def test_accepted(field: str, value: Any, expected: Any) -> None:
    assert getattr(SetCreate.model_validate({**MINIMAL, field: value}), field) == expected
