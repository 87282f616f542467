"""A set's images: add, insert, reorder, delete, positions always 0..n-1
(sets_db.services.images)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest

from sets_db import services
from sets_db.errors import ImageNotFoundError, InvalidInputError
from tests.factories import ALICE, IMAGES, snapshot


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
