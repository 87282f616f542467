"""Sets: create, read, update, delete, one owner at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sets_db.errors import SetNotFoundError
from sets_db.models import Set, SetImage
from sets_db.schemas import (
    DeletedSet,
    SetCreate,
    SetOut,
    SetUpdate,
    checked_user_id,
    checked_uuid,
    validated,
)
from sets_db.services.owned import lock_set, owned_images, owned_sets
from sets_db.services.rows import FETCH_SET_SQL, SETS, set_with_images, to_set
from sets_db.sessions import owner_read, owner_transaction


async def create_set(*, user_id: str, data: SetCreate | Mapping[str, Any]) -> SetOut:
    """Create a set, with its initial images (positions 0..n-1), in one transaction."""
    user_id = checked_user_id(user_id)
    data = validated(SetCreate, data)
    async with owner_transaction(user_id) as session:
        row = await Set.create(
            using_db=session.orm, user_id=user_id, **data.model_dump(exclude={"images"})
        )
        if data.images:
            await SetImage.bulk_create(
                [
                    SetImage(set_id=row.id, position=position, **image.model_dump())
                    for position, image in enumerate(data.images)
                ],
                using_db=session.orm,
            )
        # Read back (database defaults included) before commit: a row that cannot be
        # returned is not kept either.
        return to_set(await session.raw.fetchrow(FETCH_SET_SQL, row.id, user_id))


async def get_set(*, user_id: str, set_id: UUID | str) -> SetOut:
    """The owner's set with its images in position order; SetNotFoundError otherwise."""
    user_id, set_id = checked_user_id(user_id), checked_uuid(set_id, "set_id")
    async with owner_read(user_id) as session:
        row = await session.raw.fetchrow(FETCH_SET_SQL, set_id, user_id)
    if row is None:
        raise SetNotFoundError(set_id)
    return to_set(row)


async def get_set_or_none(*, user_id: str, set_id: UUID | str) -> SetOut | None:
    try:
        return await get_set(user_id=user_id, set_id=set_id)
    except SetNotFoundError:
        return None


def update_sql(columns: list[str]) -> str:
    """``UPDATE`` of the given columns (names from ``SetUpdate``'s own fields, never from
    the caller's text) that reads the set back with its images, in one statement."""
    assignments = [f'"{column}" = ${n}' for n, column in enumerate(columns, start=3)]
    # Strictly forward, even for two updates within one clock tick.
    assignments.append(
        "updated_at = GREATEST(clock_timestamp(), updated_at + interval '1 microsecond')"
    )
    return (
        f"WITH s AS (UPDATE {SETS} SET {', '.join(assignments)}"
        f" WHERE id = $1 AND user_id = $2 RETURNING *) SELECT {set_with_images('s')} FROM s"
    )


async def update_set(
    *, user_id: str, set_id: UUID | str, changes: SetUpdate | Mapping[str, Any]
) -> SetOut:
    """Change only the given fields (an explicit None clears one); bumps ``updated_at``."""
    user_id, set_id = checked_user_id(user_id), checked_uuid(set_id, "set_id")
    values = validated(SetUpdate, changes).changes()
    if not values:
        return await get_set(user_id=user_id, set_id=set_id)
    async with owner_transaction(user_id) as session:
        row = await session.raw.fetchrow(
            update_sql(list(values)), set_id, user_id, *values.values()
        )
        if row is None:
            raise SetNotFoundError(set_id)
        # Checked before the commit: a row that cannot be returned is rolled back.
        return to_set(row)


async def delete_set(*, user_id: str, set_id: UUID | str) -> DeletedSet:
    """Delete a set and (by CASCADE) its images; returns the file URLs that went with it."""
    user_id, set_id = checked_user_id(user_id), checked_uuid(set_id, "set_id")
    async with owner_transaction(user_id) as session:
        if not await lock_set(session.raw, user_id, set_id):
            raise SetNotFoundError(set_id)
        images = (
            await owned_images(user_id)
            .filter(set_id=set_id)
            .using_db(session.orm)
            .values("image_url", "thumbnail_url")
        )
        await owned_sets(user_id).filter(id=set_id).using_db(session.orm).delete()
    return DeletedSet(
        set_id=set_id,
        image_urls=[image["image_url"] for image in images],
        thumbnail_urls=[image["thumbnail_url"] for image in images if image["thumbnail_url"]],
    )
