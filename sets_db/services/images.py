"""Images of a set: add, reorder, delete, keeping positions exactly 0..n-1.

Every write first locks the owning set's row (``lock_set``), so concurrent writers to one
set take turns and never compute the same position twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast
from uuid import UUID

import asyncpg

from sets_db.errors import ImageNotFoundError, InvalidInputError, SetNotFoundError
from sets_db.schemas import (
    ImageAdd,
    ImageOrder,
    ImageOut,
    checked_user_id,
    checked_uuid,
    validated,
)
from sets_db.services.owned import lock_set, owned_images
from sets_db.services.rows import IMAGE_COLUMNS, IMAGES, image_order, to_dto, to_dtos
from sets_db.sessions import owner_transaction

# One statement after the lock. Appending: the position is the current count.
APPEND_IMAGE_SQL = f"""
INSERT INTO {IMAGES} (set_id, image_url, thumbnail_url, position)
SELECT $1, $2, $3, count(*) FROM {IMAGES} WHERE set_id = $1
RETURNING {IMAGE_COLUMNS}
"""
# Inserting at $4: make room from $4 on and insert at min($4, count). Both parts see the
# same snapshot, so the count is the one before the shift.
INSERT_IMAGE_SQL = f"""
WITH shifted AS (
    UPDATE {IMAGES} SET position = position + 1 WHERE set_id = $1 AND position >= $4
)
INSERT INTO {IMAGES} (set_id, image_url, thumbnail_url, position)
SELECT $1, $2, $3, LEAST($4, count(*)) FROM {IMAGES} i WHERE set_id = $1
RETURNING {IMAGE_COLUMNS}
"""
SET_IMAGES_SQL = (
    f"SELECT {IMAGE_COLUMNS} FROM {IMAGES} i WHERE set_id = $1 ORDER BY {image_order('i')}"
)
REORDER_SQL = f"""
UPDATE {IMAGES} AS i SET position = o.position - 1
FROM unnest($2::uuid[]) WITH ORDINALITY AS o(id, position)
WHERE i.set_id = $1 AND i.id = o.id
"""
DELETE_IMAGE_SQL = f"DELETE FROM {IMAGES} WHERE id = $1 RETURNING {IMAGE_COLUMNS}"
CLOSE_GAP_SQL = f"UPDATE {IMAGES} SET position = position - 1 WHERE set_id = $1 AND position > $2"


async def _images(raw: asyncpg.Connection, set_id: UUID) -> list[ImageOut]:
    return to_dtos(ImageOut, await raw.fetch(SET_IMAGES_SQL, set_id))


async def add_image(
    *,
    user_id: str,
    set_id: UUID | str,
    image_url: str,
    thumbnail_url: str | None = None,
    position: int | None = None,
) -> ImageOut:
    """Add an image at the end, or at ``position`` (the images from there move up one)."""
    user_id, set_id = checked_user_id(user_id), checked_uuid(set_id, "set_id")
    image = validated(
        ImageAdd, {"image_url": image_url, "thumbnail_url": thumbnail_url, "position": position}
    )
    async with owner_transaction(user_id) as session:
        if not await lock_set(session.raw, user_id, set_id):
            raise SetNotFoundError(set_id)
        values = [set_id, image.image_url, image.thumbnail_url]
        if image.position is None:
            row = await session.raw.fetchrow(APPEND_IMAGE_SQL, *values)
        else:
            row = await session.raw.fetchrow(INSERT_IMAGE_SQL, *values, image.position)
        return to_dto(ImageOut, row)


async def reorder_images(
    *, user_id: str, set_id: UUID | str, image_ids: Sequence[UUID | str]
) -> list[ImageOut]:
    """Put the set's images in exactly this order (positions 0..n-1), atomically."""
    user_id, set_id = checked_user_id(user_id), checked_uuid(set_id, "set_id")
    # Handed over as given: pydantic rejects None or a bare string, where list() would not.
    order = validated(ImageOrder, {"image_ids": image_ids}).image_ids
    async with owner_transaction(user_id) as session:
        if not await lock_set(session.raw, user_id, set_id):
            raise SetNotFoundError(set_id)
        current = {image.id for image in await _images(session.raw, set_id)}
        if len(order) != len(set(order)) or set(order) != current:
            raise InvalidInputError.single(
                "image_ids", "must list each of the set's images exactly once"
            )
        await session.raw.execute(REORDER_SQL, set_id, order)
        return await _images(session.raw, set_id)


async def delete_image(*, user_id: str, image_id: UUID | str) -> ImageOut:
    """Delete one image; the later ones move down to close the gap. Returns what was removed."""
    user_id, image_id = checked_user_id(user_id), checked_uuid(image_id, "image_id")
    async with owner_transaction(user_id) as session:
        set_ids = (
            await owned_images(user_id)
            .filter(id=image_id)
            .using_db(session.orm)
            .values_list("set_id", flat=True)
        )
        # Lock the set first, then re-check: the image may have gone while we waited.
        if not set_ids or not await lock_set(session.raw, user_id, cast(UUID, set_ids[0])):
            raise ImageNotFoundError(image_id)
        row = await session.raw.fetchrow(DELETE_IMAGE_SQL, image_id)
        if row is None:
            raise ImageNotFoundError(image_id)
        removed = to_dto(ImageOut, row)
        await session.raw.execute(CLOSE_GAP_SQL, removed.set_id, removed.position)
    return removed
