"""Behaviour of each service function against the real database."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from sets_db import services
from sets_db.errors import (
    ImageNotFoundError,
    InvalidInputError,
    SetNotFoundError,
    SetsDbError,
)
from sets_db.schemas import SetCreate, SetUpdate
from sets_db.services import sets as services_sets
from tests.factories import ALICE, BOB, FULL_SET, snapshot

IMAGES = [{"image_url": f"https://img.example/{n}.jpg"} for n in range(3)]


async def test_create_and_get_round_trip_every_field(db: str) -> None:
    created = await services.create_set(user_id=ALICE, data={**FULL_SET, "images": IMAGES})
    for name, value in FULL_SET.items():
        assert getattr(created, name) == value, name
    assert [i.position for i in created.images] == [0, 1, 2]
    assert [i.image_url for i in created.images] == [i["image_url"] for i in IMAGES]
    assert await services.get_set(user_id=ALICE, set_id=created.id) == created
    assert await services.get_set(user_id=ALICE, set_id=str(created.id)) == created


async def test_create_applies_defaults_and_trims(db: str) -> None:
    created = await services.create_set(user_id=ALICE, data={"title": "  Tower Bridge  "})
    assert created.title == "Tower Bridge"
    assert (created.tags, created.is_built, created.quantity) == ([], False, 1)
    assert created.created_at == created.updated_at
    assert created.created_at.tzinfo is not None


async def test_create_is_one_transaction(db: str, raw: Any) -> None:
    # A trigger makes the database itself refuse the third image, after the set row and
    # the first images were written in the same transaction: all of it must roll back.
    await raw.execute(
        """
        CREATE FUNCTION refuse_image() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.image_url = 'https://img.example/2.jpg' THEN
                RAISE EXCEPTION 'refused by test trigger';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_image BEFORE INSERT ON set_images
            FOR EACH ROW EXECUTE FUNCTION refuse_image();
        """
    )
    try:
        with pytest.raises(SetsDbError, match="refused by test trigger"):
            await services.create_set(user_id=ALICE, data={"title": "x", "images": IMAGES})
        assert await snapshot(raw) == []
    finally:
        await raw.execute("DROP TRIGGER refuse_image ON set_images; DROP FUNCTION refuse_image()")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x", "quantity": 0}, "quantity"),
        ({"title": "x", "piece_count": -1}, "piece_count"),
        ({"title": "x", "purchase_price": "1.001"}, "purchase_price"),
        ({"title": "x", "tax": "-0.01"}, "tax"),
        ({"title": "x", "shipping": "NaN"}, "shipping"),
        ({"title": "x", "purchase_price": "100000000.00"}, "purchase_price"),
        ({"title": "x", "source_url": "javascript:alert(1)"}, "source_url"),
        ({"title": "x", "tags": [" "]}, "tags.0"),
        ({"title": "x", "notes": "a\x00b"}, "notes"),
        ({"title": "x", "release_date": "2020-01-01T00:00:00"}, "release_date"),
        ({"title": "x", "colour": "red"}, "colour"),
    ],
)
async def test_create_rejects_bad_input_with_field_errors(
    db: str, raw: Any, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await services.create_set(user_id=ALICE, data=data)
    assert field in {error.field for error in caught.value.errors}
    assert await snapshot(raw) == []


async def test_tags_are_trimmed_and_deduplicated(db: str) -> None:
    created = await services.create_set(
        user_id=ALICE, data={"title": "x", "tags": [" b ", "a", "b", "a "]}
    )
    assert created.tags == ["b", "a"]


@pytest.mark.parametrize("user_id", ["", "   ", None, 42, "x" * 256, "a\x00b"])
async def test_user_id_is_required(db: str, user_id: Any) -> None:
    with pytest.raises(InvalidInputError):
        await services.list_sets(user_id=user_id)


async def test_update_is_partial_clears_on_null_and_moves_updated_at(db: str) -> None:
    created = await services.create_set(user_id=ALICE, data=FULL_SET)
    updated = await services.update_set(
        user_id=ALICE, set_id=created.id, changes={"notes": None, "quantity": 3}
    )
    assert updated.notes is None
    assert updated.quantity == 3
    assert updated.title == created.title
    assert updated.tax == created.tax
    assert updated.updated_at > created.updated_at
    again = await services.update_set(user_id=ALICE, set_id=created.id, changes={"quantity": 4})
    assert again.updated_at > updated.updated_at
    assert again.created_at == created.created_at


@pytest.mark.parametrize(
    "changes", [{"title": None}, {"quantity": None}, {"unknown": 1}, {"title": ""}]
)
async def test_update_rejects_bad_changes(db: str, raw: Any, changes: dict[str, Any]) -> None:
    created = await services.create_set(user_id=ALICE, data={"title": "x"})
    before = await snapshot(raw)
    with pytest.raises(InvalidInputError):
        await services.update_set(user_id=ALICE, set_id=created.id, changes=changes)
    assert await snapshot(raw) == before


async def test_delete_returns_file_urls_and_cascades(db: str, raw: Any) -> None:
    images = [{"image_url": "https://i/1.jpg", "thumbnail_url": "https://i/1t.jpg"}, IMAGES[0]]
    created = await services.create_set(user_id=ALICE, data={"title": "x", "images": images})
    deleted = await services.delete_set(user_id=ALICE, set_id=created.id)
    assert deleted.image_urls == ["https://i/1.jpg", IMAGES[0]["image_url"]]
    assert deleted.thumbnail_urls == ["https://i/1t.jpg"]
    assert await snapshot(raw) == []
    with pytest.raises(SetNotFoundError):
        await services.delete_set(user_id=ALICE, set_id=created.id)


async def test_get_or_none(db: str) -> None:
    assert await services.get_set_or_none(user_id=ALICE, set_id=uuid4()) is None
    with pytest.raises(InvalidInputError):
        await services.get_set(user_id=ALICE, set_id="not-a-uuid")


async def _titles(**query: Any) -> list[str]:
    titles: list[str] = []
    cursor = None
    while True:
        page = await services.list_sets(user_id=ALICE, cursor=cursor, **query)
        titles += [item.title for item in page.items]
        if page.next_cursor is None:
            return titles
        cursor = page.next_cursor


async def _collection() -> None:
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


async def test_list_filters(db: str) -> None:
    await _collection()
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
    await _collection()
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
    db: str, sort: str, descending: bool | None, expected: list[str]
) -> None:
    await _collection()
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


async def test_stats_themes_tags(db: str) -> None:
    await _collection()
    stats = await services.collection_stats(user_id=ALICE)
    assert (stats.set_count, stats.total_quantity, stats.built_count) == (5, 5, 2)
    assert stats.not_built_count == 3
    assert stats.total_pieces == 100 + 300 + 50 + 200
    assert stats.money_spent == Decimal("36.50")
    by_theme = {theme.theme: theme for theme in stats.themes}
    assert by_theme["City"].set_count == 2
    assert by_theme["City"].money_spent == Decimal("10.00")
    assert by_theme[None].set_count == 1
    themes = await services.list_themes(user_id=ALICE)
    assert [(t.name, t.count) for t in themes] == [("City", 2), ("Icons", 1), ("Technic", 1)]
    tags = await services.list_tags(user_id=ALICE)
    assert [(t.name, t.count) for t in tags] == [("a", 3), ("b", 3), ("c", 1)]


async def test_stats_count_quantity_and_all_money(db: str) -> None:
    await services.create_set(user_id=ALICE, data=FULL_SET)
    stats = await services.collection_stats(user_id=ALICE)
    assert stats.total_quantity == 2
    assert stats.total_pieces == 7541 * 2
    assert stats.money_spent == Decimal("849.99") + Decimal("70.12") + Decimal("0.01")
    empty = await services.collection_stats(user_id=BOB)
    assert (empty.set_count, empty.money_spent, empty.themes) == (0, Decimal("0.00"), [])


async def test_duplicates(db: str) -> None:
    await _collection()
    dupes = await services.find_duplicates(user_id=ALICE, set_number="3")
    assert [d.title for d in dupes] == ["C O'Brien", "D plain"]
    assert await services.find_duplicates(user_id=ALICE, set_number="75192") == []
    groups = await services.list_duplicate_groups(user_id=ALICE)
    assert [(g.set_number, len(g.set_ids)) for g in groups] == [("3", 2)]


async def test_images_add_insert_reorder_delete(db: str) -> None:
    created = await services.create_set(user_id=ALICE, data={"title": "x", "images": IMAGES})
    front = await services.add_image(
        user_id=ALICE, set_id=created.id, image_url="https://i/front.jpg", position=0
    )
    end = await services.add_image(
        user_id=ALICE, set_id=created.id, image_url="https://i/end.jpg", position=99
    )
    assert (front.position, end.position) == (0, 4)
    images = (await services.get_set(user_id=ALICE, set_id=created.id)).images
    assert [i.position for i in images] == [0, 1, 2, 3, 4]
    assert images[0].id == front.id
    assert images[1].image_url == IMAGES[0]["image_url"]

    order = [images[n].id for n in (4, 2, 0, 3, 1)]
    reordered = await services.reorder_images(user_id=ALICE, set_id=created.id, image_ids=order)
    assert [i.id for i in reordered] == order
    assert [i.position for i in reordered] == [0, 1, 2, 3, 4]

    removed = await services.delete_image(user_id=ALICE, image_id=order[1])
    assert removed.id == order[1]
    after = (await services.get_set(user_id=ALICE, set_id=created.id)).images
    assert [i.id for i in after] == [order[0], *order[2:]]
    assert [i.position for i in after] == [0, 1, 2, 3]
    with pytest.raises(ImageNotFoundError):
        await services.delete_image(user_id=ALICE, image_id=order[1])


@pytest.mark.parametrize(
    "pick",
    [
        lambda ids: ids[:-1],  # missing one
        lambda ids: [*ids, ids[0]],  # duplicate
        lambda ids: [*ids[:-1], uuid4()],  # foreign id
        lambda ids: [],
    ],
)
async def test_reorder_requires_exactly_the_sets_images(db: str, raw: Any, pick: Any) -> None:
    created = await services.create_set(user_id=ALICE, data={"title": "x", "images": IMAGES})
    before = await snapshot(raw)
    with pytest.raises(InvalidInputError):
        await services.reorder_images(
            user_id=ALICE, set_id=created.id, image_ids=pick([i.id for i in created.images])
        )
    assert await snapshot(raw) == before


async def test_concurrent_image_writes_keep_positions_dense(db: str) -> None:
    created = await services.create_set(user_id=ALICE, data={"title": "x"})
    added = await asyncio.gather(
        *(
            services.add_image(user_id=ALICE, set_id=created.id, image_url=f"https://i/{n}.jpg")
            for n in range(20)
        )
    )
    assert sorted(image.position for image in added) == list(range(20))
    images = (await services.get_set(user_id=ALICE, set_id=created.id)).images
    assert [i.position for i in images] == list(range(20))
    # Deletes and front inserts racing each other still leave 0..n-1.
    await asyncio.gather(
        *(services.delete_image(user_id=ALICE, image_id=i.id) for i in images[::2]),
        *(
            services.add_image(
                user_id=ALICE, set_id=created.id, image_url=f"https://i/f{n}.jpg", position=0
            )
            for n in range(5)
        ),
    )
    images = (await services.get_set(user_id=ALICE, set_id=created.id)).images
    assert [i.position for i in images] == list(range(15))


async def test_every_error_is_a_sets_db_error() -> None:
    for error in (SetNotFoundError, ImageNotFoundError, InvalidInputError):
        assert issubclass(error, SetsDbError)


@pytest.fixture
async def without_checks(raw: Any) -> AsyncIterator[None]:
    """The run database without its CHECK constraints, as a database another client
    manages may be; restored (with the odd rows gone) afterwards."""
    checks = await raw.fetch(
        "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def"
        " FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
    )
    for check in checks:
        await raw.execute(f'ALTER TABLE {check["tbl"]} DROP CONSTRAINT "{check["conname"]}"')
    yield
    await raw.execute("TRUNCATE sets, set_images CASCADE")
    for check in checks:
        await raw.execute(
            f'ALTER TABLE {check["tbl"]} ADD CONSTRAINT "{check["conname"]}" {check["def"]}'
        )


ODD_ROWS = [
    ("ARRAY['a', NULL]::text[]", ["a"]),
    ("ARRAY[['a', 'b'], ['c', NULL]]::text[]", ["a", "b", "c"]),
    ("NULL::text[]", []),
]


async def test_every_row_the_database_accepts_reads_back(
    db: str, raw: Any, without_checks: None
) -> None:
    # What another client may legally write without sets-db's CHECK constraints.
    for tags, _ in ODD_ROWS:
        await raw.execute(
            "INSERT INTO sets (user_id, title, tags, quantity, purchase_price)"
            f" VALUES ($1, ' ', {tags}, 0, -1)",
            ALICE,
        )
    page = await services.list_sets(user_id=ALICE, sort="title")
    assert sorted(item.tags for item in page.items) == sorted(tags for _, tags in ODD_ROWS)
    exported = [item async for item in services.export_sets(user_id=ALICE)]
    assert len(exported) == len(ODD_ROWS)
    for item in exported:
        assert (await services.get_set(user_id=ALICE, set_id=item.id)) == item
    assert (await services.collection_stats(user_id=ALICE)).set_count == len(ODD_ROWS)


async def test_update_that_cannot_read_back_writes_nothing(
    db: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await services.create_set(user_id=ALICE, data={"title": "x"})
    before = await snapshot(raw)

    def unreadable(row: Any) -> Any:
        raise SetsDbError("stored data does not fit the schema (SetOut): injected")

    monkeypatch.setattr(services_sets, "to_set", unreadable)
    with pytest.raises(SetsDbError, match="injected"):
        await services.update_set(user_id=ALICE, set_id=created.id, changes={"notes": "n"})
    assert await snapshot(raw) == before


async def test_dto_instances_are_checked_again(db: str, raw: Any) -> None:
    # model_copy(update=...) and model_construct() skip pydantic's checks; the services don't.
    created = await services.create_set(user_id=ALICE, data={"title": "x"})
    before = await snapshot(raw)
    sneaky = SetUpdate().model_copy(update={"tax": Decimal("NaN"), "source_url": "javascript:x"})
    with pytest.raises(InvalidInputError):
        await services.update_set(user_id=ALICE, set_id=created.id, changes=sneaky)
    with pytest.raises(InvalidInputError):
        await services.create_set(user_id=ALICE, data=SetCreate.model_construct(title=""))
    with pytest.raises(InvalidInputError):
        await services.import_sets(
            user_id=ALICE, rows=[SetCreate.model_construct(title="x", quantity=0)]
        )
    assert await snapshot(raw) == before


@pytest.mark.parametrize(
    "call",
    [
        lambda sid: services.add_image(
            user_id=ALICE, set_id=sid, image_url="https://i/x.jpg", position=2**31
        ),
        lambda sid: services.add_image(user_id=ALICE, set_id=sid, image_url="http://:@"),
        lambda sid: services.add_image(user_id=ALICE, set_id=sid, image_url="http://a\x7f\x01b"),
        lambda sid: services.update_set(user_id=ALICE, set_id=sid, changes={"title": "\ud800"}),
        lambda sid: services.get_set(user_id="\ud800", set_id=sid),
        lambda sid: services.get_set(user_id="a\x00b", set_id=sid),
    ],
)
async def test_values_postgres_cannot_take_are_invalid_input(db: str, raw: Any, call: Any) -> None:
    created = await services.create_set(user_id=ALICE, data={"title": "x"})
    before = await snapshot(raw)
    with pytest.raises(InvalidInputError):
        await call(created.id)
    assert await snapshot(raw) == before


def _forged(page_cursor: str, value: Any) -> str:
    fingerprint, _, last_id = json.loads(base64.urlsafe_b64decode(page_cursor))
    return base64.urlsafe_b64encode(json.dumps([fingerprint, value, last_id]).encode()).decode()


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        ("piece_count", "99999999999"),
        ("total_cost", "1e1000000"),
        ("total_cost", "NaN"),
        ("created_at", "0001-01-01T00:00:00+14:00"),
        ("created_at", "2020-01-01T00:00:00"),
        ("title", 42),
    ],
)
async def test_forged_cursors_are_invalid_input(db: str, sort: str, value: Any) -> None:
    for n in range(3):
        await services.create_set(user_id=ALICE, data={"title": f"t{n}", "piece_count": n})
    page = await services.list_sets(user_id=ALICE, sort=sort, limit=1)
    assert page.next_cursor
    with pytest.raises(InvalidInputError):
        await services.list_sets(
            user_id=ALICE, sort=sort, limit=1, cursor=_forged(page.next_cursor, value)
        )


async def test_cursor_survives_spelling_out_the_default_direction(db: str) -> None:
    for n in range(3):
        await services.create_set(user_id=ALICE, data={"title": f"t{n}"})
    page = await services.list_sets(user_id=ALICE, limit=2)
    rest = await services.list_sets(
        user_id=ALICE, limit=2, descending=True, cursor=page.next_cursor
    )
    assert [i.title for i in [*page.items, *rest.items]] == ["t2", "t1", "t0"]


async def test_stats_of_a_huge_collection_do_not_overflow(db: str) -> None:
    top = Decimal("99999999.99")
    rows = [{"title": "gold", "purchase_price": top, "tax": top, "shipping": top}] * 3400
    await services.import_sets(user_id=ALICE, rows=rows)
    stats = await services.collection_stats(user_id=ALICE)
    assert stats.money_spent == top * 3 * 3400
    assert stats.money_spent.as_tuple().exponent == -2  # cents, as stored
