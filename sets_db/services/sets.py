"""Sets: create, read, update, delete, one owner at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sets_db.errors import SetNotFoundError
from sets_db.models import Set, SetImage
from sets_db.schemas import DeletedSet, SetCreate, SetOut, SetUpdate
from sets_db.services._base import (
    SET_WITH_IMAGES,
    fetch_set,
    lock_set,
    owner,
    parse_id,
    reading,
    to_set,
    transaction,
    validate,
)


async def create_set(*, user_id: str, data: SetCreate | Mapping[str, Any]) -> SetOut:
    """Create a set, with its initial images (positions 0..n-1), in one transaction."""
    user_id = owner(user_id)
    data = validate(SetCreate, data)
    async with transaction(user_id) as conn:
        row = await Set.create(
            using_db=conn, user_id=user_id, **data.model_dump(exclude={"images"})
        )
        if data.images:
            await SetImage.bulk_create(
                [
                    SetImage(set_id=row.id, position=position, **image.model_dump())
                    for position, image in enumerate(data.images)
                ],
                using_db=conn,
            )
        created = await fetch_set(conn, user_id, row.id)
    assert created is not None  # just written in this transaction
    return created


async def get_set(*, user_id: str, set_id: UUID | str) -> SetOut:
    """The owner's set with its images in position order; SetNotFoundError otherwise."""
    user_id, set_id = owner(user_id), parse_id(set_id, "set_id")
    async with reading(user_id) as conn:
        found = await fetch_set(conn, user_id, set_id)
    if found is None:
        raise SetNotFoundError(set_id)
    return found


async def get_set_or_none(*, user_id: str, set_id: UUID | str) -> SetOut | None:
    try:
        return await get_set(user_id=user_id, set_id=set_id)
    except SetNotFoundError:
        return None


async def update_set(
    *, user_id: str, set_id: UUID | str, changes: SetUpdate | Mapping[str, Any]
) -> SetOut:
    """Change only the given fields (an explicit None clears one); bumps ``updated_at``."""
    user_id, set_id = owner(user_id), parse_id(set_id, "set_id")
    values = validate(SetUpdate, changes).changes()
    if not values:
        return await get_set(user_id=user_id, set_id=set_id)
    assignments = [f'"{column}" = ${n}' for n, column in enumerate(values, start=3)]
    # Strictly forward, even for two updates within one clock tick.
    assignments.append(
        "updated_at = GREATEST(clock_timestamp(), updated_at + interval '1 microsecond')"
    )
    # One statement updates and reads back (with the images): it is atomic by itself, so it
    # needs no BEGIN/COMMIT round trips, just the owner's connection that reading() gives.
    # Column names come from SetUpdate's own fields, never from the caller's text.
    async with reading(user_id) as conn:
        rows = await conn.execute_query_dict(
            f"WITH s AS (UPDATE sets SET {', '.join(assignments)}"
            f" WHERE id = $1 AND user_id = $2 RETURNING *) SELECT {SET_WITH_IMAGES} FROM s",
            [set_id, user_id, *values.values()],
        )
    if not rows:
        raise SetNotFoundError(set_id)
    return to_set(rows[0])


async def delete_set(*, user_id: str, set_id: UUID | str) -> DeletedSet:
    """Delete a set and (by CASCADE) its images; returns the file URLs that went with it."""
    user_id, set_id = owner(user_id), parse_id(set_id, "set_id")
    async with transaction(user_id) as conn:
        if not await lock_set(conn, user_id, set_id):
            raise SetNotFoundError(set_id)
        images = await conn.execute_query_dict(
            "DELETE FROM set_images WHERE set_id = $1 RETURNING image_url, thumbnail_url",
            [set_id],
        )
        await conn.execute_query("DELETE FROM sets WHERE id = $1", [set_id])
    return DeletedSet(
        set_id=set_id,
        image_urls=[image["image_url"] for image in images],
        thumbnail_urls=[image["thumbnail_url"] for image in images if image["thumbnail_url"]],
    )
