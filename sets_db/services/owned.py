"""Tortoise querysets that already carry the owner filter, for the cold CRUD paths.

The rule (README, design notes): SQL for measured hot paths and for what the ORM cannot say;
the query API, always starting from these querysets, for the rest.
"""

from __future__ import annotations

from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.queryset import QuerySet

from sets_db.models import Set, SetImage


def owned_sets(user_id: str) -> QuerySet[Set]:
    return Set.filter(user_id=user_id)


def owned_images(user_id: str) -> QuerySet[SetImage]:
    return SetImage.filter(set__user_id=user_id)


async def lock_set(orm: BaseDBAsyncClient, user_id: str, set_id: UUID) -> bool:
    """Lock the owner's set row for this transaction; False if there is no such set.

    Image writes to one set queue up on this lock, which is what keeps positions gap-free
    and unique under concurrency.
    """
    # .only(), not .values_list(): Tortoise drops FOR UPDATE from a values query.
    locked = (
        await owned_sets(user_id).filter(id=set_id).select_for_update().only("id").using_db(orm)
    )
    return bool(locked)
