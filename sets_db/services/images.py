"""Images of a set: add, reorder, delete, keeping positions exactly 0..n-1.

Every write first locks the owning set's row (``lock_set``), so concurrent writers to one
set take turns and never compute the same position twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sets_db.errors import ImageNotFoundError, InvalidInputError, SetNotFoundError
from sets_db.schemas import ImageAdd, ImageOrder, ImageOut
from sets_db.services._base import (
    IMAGE_FIELDS,
    Connection,
    lock_set,
    owner,
    parse_id,
    to_dto,
    transaction,
    validate,
)

_IMAGE_COLUMNS = ", ".join(IMAGE_FIELDS)


# One statement after the lock. Appending: the position is the current count.
_APPEND_IMAGE_SQL = f"""
INSERT INTO set_images (set_id, image_url, thumbnail_url, position)
SELECT $1, $2, $3, count(*) FROM set_images WHERE set_id = $1
RETURNING {_IMAGE_COLUMNS}
"""
# Inserting at $4: make room from $4 on and insert at min($4, count). Both parts see the
# same snapshot, so the count is the one before the shift.
_INSERT_IMAGE_SQL = f"""
WITH shifted AS (
    UPDATE set_images SET position = position + 1 WHERE set_id = $1 AND position >= $4
)
INSERT INTO set_images (set_id, image_url, thumbnail_url, position)
SELECT $1, $2, $3, LEAST($4, count(*)) FROM set_images WHERE set_id = $1
RETURNING {_IMAGE_COLUMNS}
"""


async def _images(conn: Connection, set_id: UUID) -> list[ImageOut]:
    rows = await conn.execute_query_dict(
        f"SELECT {_IMAGE_COLUMNS} FROM set_images WHERE set_id = $1 ORDER BY position, id",
        [set_id],
    )
    return [to_dto(ImageOut, row) for row in rows]


async def add_image(
    *,
    user_id: str,
    set_id: UUID | str,
    image_url: str,
    thumbnail_url: str | None = None,
    position: int | None = None,
) -> ImageOut:
    """Add an image at the end, or at ``position`` (the images from there move up one)."""
    user_id, set_id = owner(user_id), parse_id(set_id, "set_id")
    image = validate(
        ImageAdd, {"image_url": image_url, "thumbnail_url": thumbnail_url, "position": position}
    )
    async with transaction(user_id) as conn:
        if not await lock_set(conn, user_id, set_id):
            raise SetNotFoundError(set_id)
        values = [set_id, image.image_url, image.thumbnail_url]
        if image.position is None:
            rows = await conn.execute_query_dict(_APPEND_IMAGE_SQL, values)
        else:
            rows = await conn.execute_query_dict(_INSERT_IMAGE_SQL, [*values, image.position])
    return to_dto(ImageOut, rows[0])


async def reorder_images(
    *, user_id: str, set_id: UUID | str, image_ids: Sequence[UUID | str]
) -> list[ImageOut]:
    """Put the set's images in exactly this order (positions 0..n-1), atomically."""
    user_id, set_id = owner(user_id), parse_id(set_id, "set_id")
    # Handed over as given: pydantic rejects None or a bare string, where list() would not.
    order = validate(ImageOrder, {"image_ids": image_ids}).image_ids
    async with transaction(user_id) as conn:
        if not await lock_set(conn, user_id, set_id):
            raise SetNotFoundError(set_id)
        current = {image.id for image in await _images(conn, set_id)}
        if len(order) != len(set(order)) or set(order) != current:
            raise InvalidInputError.single(
                "image_ids", "must list each of the set's images exactly once"
            )
        await conn.execute_query(
            "UPDATE set_images AS i SET position = o.position - 1"
            " FROM unnest($2::uuid[]) WITH ORDINALITY AS o(id, position)"
            " WHERE i.set_id = $1 AND i.id = o.id",
            [set_id, order],
        )
        return await _images(conn, set_id)


async def delete_image(*, user_id: str, image_id: UUID | str) -> ImageOut:
    """Delete one image; the later ones move down to close the gap. Returns what was removed."""
    user_id, image_id = owner(user_id), parse_id(image_id, "image_id")
    async with transaction(user_id) as conn:
        owned = await conn.execute_query_dict(
            "SELECT i.set_id FROM set_images i JOIN sets s ON s.id = i.set_id"
            " WHERE i.id = $1 AND s.user_id = $2",
            [image_id, user_id],
        )
        # Lock the set first, then re-check: the image may have gone while we waited.
        if not owned or not await lock_set(conn, user_id, owned[0]["set_id"]):
            raise ImageNotFoundError(image_id)
        rows = await conn.execute_query_dict(
            f"DELETE FROM set_images WHERE id = $1 RETURNING {_IMAGE_COLUMNS}", [image_id]
        )
        if not rows:
            raise ImageNotFoundError(image_id)
        removed = to_dto(ImageOut, rows[0])
        await conn.execute_query(
            "UPDATE set_images SET position = position - 1 WHERE set_id = $1 AND position > $2",
            [removed.set_id, removed.position],
        )
    return removed
