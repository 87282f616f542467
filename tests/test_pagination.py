"""Keyset pages over ties: equal sort keys (and equal created_at) must neither repeat nor
drop a row, in every order and page size. The id breaks each tie."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from sets_db import services
from sets_db.schemas import SortKey
from sets_db.services.listing import TITLE_PREFIX_CHARS, total_cost
from tests.factories import ALICE

SORTS = ["created_at", "title", "piece_count", "release_date", "purchase_date", "total_cost"]


def _rows() -> list[dict[str, Any]]:
    # import_sets writes them in one transaction: every created_at is the same instant.
    rows = []
    for n in range(24):
        rows.append(
            {
                "title": ["Castle", "Falcon", "Castle", "Station"][n % 4],
                # Half in each theme, each half with keys and NULLs of every sort.
                "theme": ["City", "Technic"][n // 2 % 2],
                "piece_count": [None, 100, 100, 250][n % 4],
                "release_date": [None, datetime(2020, 1, 1, tzinfo=UTC)][n % 2],
                "purchase_date": [datetime(2021, 5, 4, tzinfo=UTC), None, None][n % 3],
                "purchase_price": [None, Decimal("10.00"), Decimal("5.00")][n % 3],
                "tax": [Decimal("5.00"), None][n % 2],
            }
        )
    return rows


def _expected(items: list[Any], sort: str, descending: bool) -> list[UUID]:
    def key(item: Any) -> tuple[Any, ...]:
        value = total_cost(item) if sort == "total_cost" else getattr(item, sort)
        return (value is None, value if value is not None else 0, item.id)

    present = sorted((i for i in items if key(i)[0] is False), key=key, reverse=descending)
    missing = sorted((i for i in items if key(i)[0] is True), key=key, reverse=descending)
    return [i.id for i in [*present, *missing]]  # NULL keys last in both directions


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("themes", [None, "City"], ids=["all", "one-theme"])
async def test_every_row_once_in_key_then_id_order(
    db: str, sort: SortKey, descending: bool, themes: str | None
) -> None:
    """Unfiltered, a nullable key's page is two walks (keys, then NULLs); filtered by a
    theme, one sort: both are checked across the boundary."""
    await services.import_sets(user_id=ALICE, rows=_rows())
    everything = (await services.list_sets(user_id=ALICE, limit=200)).items
    assert len(everything) == 24
    assert len({item.created_at for item in everything}) == 1
    matching = [item for item in everything if themes in (None, item.theme)]
    expected = _expected(matching, sort, descending)
    for limit in (1, 2, 5, 7):
        seen: list[UUID] = []
        cursor = None
        while True:
            page = await services.list_sets(
                user_id=ALICE,
                themes=themes,
                sort=sort,
                descending=descending,
                limit=limit,
                cursor=cursor,
            )
            seen += [item.id for item in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == expected, (sort, descending, themes, limit)


def _long_titles() -> list[str]:
    """Titles around the indexed prefix: equal prefixes, one title the prefix of another."""
    prefix = "m" * TITLE_PREFIX_CHARS
    return [
        prefix,
        prefix + "b",
        prefix + "a",
        prefix + "a" * (500 - TITLE_PREFIX_CHARS),
        "m" * (TITLE_PREFIX_CHARS - 1) + "n" + "a",
        "m" * (TITLE_PREFIX_CHARS - 1) + "l" + "z" * 50,
        "m" * (TITLE_PREFIX_CHARS - 1),
        "castle",
        "z" + prefix,
    ]


@pytest.mark.parametrize("descending", [False, True])
async def test_titles_past_the_indexed_prefix_page_once_each(db: str, descending: bool) -> None:
    """The title order is (first 400 characters, whole title, id); each title twice, so the
    id breaks ties between equal titles too."""
    await services.import_sets(user_id=ALICE, rows=[{"title": t} for t in _long_titles() * 2])
    everything = (await services.list_sets(user_id=ALICE, limit=200)).items
    expected = [
        item.id
        for item in sorted(
            everything,
            key=lambda i: (i.title[:TITLE_PREFIX_CHARS], i.title, i.id),
            reverse=descending,
        )
    ]
    for limit in (1, 2, 3):
        seen: list[UUID] = []
        cursor = None
        while True:
            page = await services.list_sets(
                user_id=ALICE, sort="title", descending=descending, limit=limit, cursor=cursor
            )
            seen += [item.id for item in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == expected, (descending, limit)
