"""Creating, reading, updating and deleting one set (sets_db.services.sets)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from sets_db import services
from sets_db.errors import InvalidInputError, SetNotFoundError, SetsDbError
from sets_db.schemas import SetCreate, SetUpdate
from sets_db.services import sets as services_sets
from tests.factories import ALICE, FULL_SET, IMAGES, snapshot


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
