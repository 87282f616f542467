"""Listing one owner's sets: filters, search, sort orders and keyset pages
(sets_db.services.listing)."""

from __future__ import annotations

import base64
import json
from contextlib import AsyncExitStack
from typing import Any

import pytest

from sets_db import services
from sets_db.config import settings
from sets_db.errors import InvalidInputError
from sets_db.schemas import SetQuery, SortKey
from sets_db.services import listing
from sets_db.services.listing import build_page_sql
from sets_db.sessions import owner_read
from tests.factories import ALICE, IMAGES, small_collection


@pytest.mark.parametrize("user_id", ["", "   ", None, 42, "x" * 256, "a\x00b"])
async def test_user_id_is_required(db: str, user_id: Any) -> None:
    with pytest.raises(InvalidInputError):
        await services.list_sets(user_id=user_id)


async def _titles(**query: Any) -> list[str]:
    titles: list[str] = []
    cursor = None
    while True:
        page = await services.list_sets(user_id=ALICE, cursor=cursor, **query)
        titles += [item.title for item in page.items]
        if page.next_cursor is None:
            return titles
        cursor = page.next_cursor


async def test_list_filters(db: str) -> None:
    await small_collection()
    assert sorted(await _titles(themes="City")) == ["A 100%", "B under_score"]
    assert sorted(await _titles(themes=["City", "Icons"])) == [
        "A 100%",
        "B under_score",
        "E 10294-1",
    ]
    assert sorted(await _titles(tags=["a", "b"])) == ["A 100%", "E 10294-1"]
    assert sorted(await _titles(is_built=True)) == ["A 100%", "D plain"]
    assert await _titles(set_number="3", sort="title") == ["C O'Brien", "D plain"]
    assert await _titles(search="10294") == ["E 10294-1"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("%", ["A 100%"]), ("_", ["B under_score"]), ("'", ["C O'Brien"]), ("o'b", ["C O'Brien"])],
)
async def test_search_is_literal_and_case_insensitive(
    db: str, text: str, expected: list[str]
) -> None:
    await small_collection()
    assert await _titles(search=text) == expected


@pytest.mark.parametrize(
    ("sort", "descending", "expected"),
    [
        ("created_at", None, ["E", "D", "C", "B", "A"]),
        ("created_at", False, ["A", "B", "C", "D", "E"]),
        ("title", None, ["A", "B", "C", "D", "E"]),
        ("title", True, ["E", "D", "C", "B", "A"]),
        ("piece_count", None, ["D", "A", "E", "C", "B"]),
        ("piece_count", True, ["C", "E", "A", "D", "B"]),
        ("total_cost", None, ["B", "E", "C", "A", "D"]),
        ("release_date", None, ["A", "B", "C", "D", "E"]),
    ],
)
async def test_sort_orders_with_nulls_last_across_pages(
    db: str, sort: SortKey, descending: bool | None, expected: list[str]
) -> None:
    await small_collection()
    for limit in (1, 2, 50):
        titles = await _titles(sort=sort, descending=descending, limit=limit)
        # release_date is NULL everywhere: the id breaks ties, so only membership is fixed.
        if sort == "release_date":
            assert sorted(title[0] for title in titles) == expected
        else:
            assert [title[0] for title in titles] == expected, (sort, limit)


async def test_keyset_pages_are_stable_under_inserts(db: str) -> None:
    for n in range(6):
        await services.create_set(user_id=ALICE, data={"title": f"old {n}"})
    first = await services.list_sets(user_id=ALICE, limit=3)
    for n in range(3):
        await services.create_set(user_id=ALICE, data={"title": f"new {n}"})
    second = await services.list_sets(user_id=ALICE, limit=3, cursor=first.next_cursor)
    assert [i.title for i in first.items] == ["old 5", "old 4", "old 3"]
    assert [i.title for i in second.items] == ["old 2", "old 1", "old 0"]
    assert second.next_cursor is None


async def test_page_size_bounds_and_cursor_checks(db: str) -> None:
    await services.create_set(user_id=ALICE, data={"title": "x"})
    await services.create_set(user_id=ALICE, data={"title": "y"})
    page = await services.list_sets(user_id=ALICE, limit=1)
    assert len(page.items) == 1
    assert page.next_cursor
    for bad in ({"limit": 0}, {"limit": 201}, {"cursor": "garbage"}, {"sort": "notes"}):
        with pytest.raises(InvalidInputError):
            await services.list_sets(user_id=ALICE, **bad)
    # A cursor only continues the listing it came from.
    with pytest.raises(InvalidInputError):
        await services.list_sets(user_id=ALICE, sort="title", cursor=page.next_cursor)
    assert (await services.list_sets(user_id=ALICE)).next_cursor is None


async def test_list_items_carry_images_in_order(db: str) -> None:
    created = await services.create_set(user_id=ALICE, data={"title": "x", "images": IMAGES})
    [item] = (await services.list_sets(user_id=ALICE)).items
    assert item == created


def _forged(page_cursor: str, value: Any) -> str:
    """The page's cursor with another sort key (the fingerprint and id kept)."""
    text = base64.urlsafe_b64decode(page_cursor).decode()
    return base64.urlsafe_b64encode(f"{text[:52]}~{value}".encode()).decode()


def _as_json(page_cursor: str, *value: Any) -> str:
    """The same cursor in the JSON form earlier releases handed out (or with ``value`` as
    its sort key)."""
    text = base64.urlsafe_b64decode(page_cursor).decode()
    key = value[0] if value else text[53:] if len(text) > 52 else None
    return base64.urlsafe_b64encode(json.dumps([text[:16], key, text[16:52]]).encode()).decode()


async def test_a_cursor_of_an_earlier_release_still_continues(db: str) -> None:
    for n in range(3):
        await services.create_set(user_id=ALICE, data={"title": f"t{n}"})
    first = await services.list_sets(user_id=ALICE, sort="title", limit=1)
    assert first.next_cursor
    current = await services.list_sets(
        user_id=ALICE, sort="title", limit=1, cursor=first.next_cursor
    )
    earlier = await services.list_sets(
        user_id=ALICE, sort="title", limit=1, cursor=_as_json(first.next_cursor)
    )
    assert [item.title for item in earlier.items] == [item.title for item in current.items]
    assert [item.title for item in current.items] == ["t1"]
    for key in (42, ["t0"], {"t": 0}):
        with pytest.raises(InvalidInputError):
            await services.list_sets(
                user_id=ALICE, sort="title", limit=1, cursor=_as_json(first.next_cursor, key)
            )


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        ("piece_count", "99999999999"),
        ("total_cost", "1e1000000"),
        ("total_cost", "NaN"),
        ("created_at", "0001-01-01T00:00:00+14:00"),
        ("created_at", "2020-01-01T00:00:00"),
        ("title", "\x00"),
    ],
)
async def test_forged_cursors_are_invalid_input(db: str, sort: SortKey, value: Any) -> None:
    for n in range(3):
        await services.create_set(user_id=ALICE, data={"title": f"t{n}", "piece_count": n})
    page = await services.list_sets(user_id=ALICE, sort=sort, limit=1)
    assert page.next_cursor
    with pytest.raises(InvalidInputError):
        await services.list_sets(
            user_id=ALICE, sort=sort, limit=1, cursor=_forged(page.next_cursor, value)
        )


async def test_a_cursor_cut_or_respliced_is_invalid_input(db: str) -> None:
    for n in range(3):
        await services.create_set(user_id=ALICE, data={"title": f"t{n}"})
    page = await services.list_sets(user_id=ALICE, sort="title", limit=1)
    assert page.next_cursor
    text = base64.urlsafe_b64decode(page.next_cursor).decode()
    # The fingerprint kept, what follows cut, unmarked, or not an id.
    for forged in (text[:40], f"{text[:52]}t0", f"{text[:16]}{'z' * 36}~t0", text[:16]):
        cursor = base64.urlsafe_b64encode(forged.encode()).decode()
        with pytest.raises(InvalidInputError):
            await services.list_sets(user_id=ALICE, sort="title", limit=1, cursor=cursor)


@pytest.mark.parametrize(
    "arguments",
    [
        (None, None, None, None, None, "created_at", None, 50),
        ("City", None, True, "60198-1", "it's 100%", "title", False, 1),
        (["City", "Space"], ["a"], None, None, None, "total_cost", True, 200),
    ],
)
@pytest.mark.parametrize("cursor", [None, "", "c", "c" * 1000, "é"])
def test_a_page_query_is_the_validated_one_whatever_its_cursor(
    arguments: tuple[Any, ...], cursor: str | None
) -> None:
    # Memoised without its cursor where the arguments allow: the same query otherwise, down
    # to the fields set, the same cursor, and that query's own fingerprint.
    query, its_cursor, fingerprint = listing._query(*arguments, cursor)
    validated = listing._validated_query((*arguments, cursor))
    assert query.model_dump(exclude={"cursor"}) == validated.model_dump(exclude={"cursor"})
    assert query.model_fields_set == validated.model_fields_set
    assert (its_cursor, fingerprint) == (validated.cursor, listing._fingerprint(validated))


@pytest.mark.parametrize("cursor", ["c" * 1001, b"c", 7, ["c"], "\ud800"])
def test_a_cursor_its_field_refuses_is_invalid_input(cursor: Any) -> None:
    with pytest.raises(InvalidInputError) as error:
        listing._query(None, None, None, None, None, "created_at", None, 50, cursor)
    assert [problem.field for problem in error.value.errors] == ["cursor"]


async def test_cursor_survives_spelling_out_the_default_direction(db: str) -> None:
    for n in range(3):
        await services.create_set(user_id=ALICE, data={"title": f"t{n}"})
    page = await services.list_sets(user_id=ALICE, limit=2)
    rest = await services.list_sets(
        user_id=ALICE, limit=2, descending=True, cursor=page.next_cursor
    )
    assert [i.title for i in [*page.items, *rest.items]] == ["t2", "t1", "t0"]


@pytest.mark.parametrize(
    ("accepted", "refused"),
    [
        ({"is_built": True}, {"is_built": 1}),
        ({"limit": 1}, {"limit": True}),
        ({"descending": False}, {"descending": 0}),
        ({"search": "1"}, {"search": 1}),
    ],
)
async def test_an_equal_argument_of_another_type_is_still_refused(
    db: str, accepted: dict[str, Any], refused: dict[str, Any]
) -> None:
    # A page's query is validated once per argument list: True == 1 must not let the
    # integer reuse the boolean's validated query (or the reverse).
    await small_collection()
    for _ in range(2):
        await services.list_sets(user_id=ALICE, **accepted)
        with pytest.raises(InvalidInputError):
            await services.list_sets(user_id=ALICE, **refused)


async def _generic_plans(sql: str) -> int:
    """How many generic plans the prepared statements of ``sql`` made, on every pooled
    connection (each held at once, so each is asked)."""
    async with AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(owner_read(ALICE)) for _ in range(settings().pool_size)
        ]
        return sum(
            [
                await session.raw.fetchval(
                    "SELECT coalesce(sum(generic_plans), 0) FROM pg_prepared_statements"
                    " WHERE statement = $1",
                    sql,
                )
                for session in sessions
            ]
        )


async def test_a_theme_or_tag_page_by_title_or_cost_is_planned_for_its_values(db: str) -> None:
    """A generic plan reads the whole theme or tag and sorts it: these pages are never run
    on one (a prepared statement switches to it after five calls)."""
    await small_collection()
    planned: list[dict[str, Any]] = [
        {"themes": ["City"], "sort": "title"},
        {"tags": ["b"], "sort": "total_cost", "descending": True},
    ]
    for query in planned:
        for _ in range(8):
            await services.list_sets(user_id=ALICE, **query)
        sql, _ = build_page_sql(SetQuery.model_validate(query), ALICE)
        assert await _generic_plans(sql) == 0, query
    # The check can see a generic plan: the default order of a theme runs on one.
    for _ in range(8):
        await services.list_sets(user_id=ALICE, themes="City")
    sql, _ = build_page_sql(SetQuery(themes=["City"]), ALICE)
    generic = await _generic_plans(sql)
    assert generic == 0 if settings().behind_pooler else generic > 0
