"""The owner filter: Tortoise querysets that already carry it, for the cold CRUD paths, and
the owner's set lock that every image write takes first.

The rule (README, design notes): SQL for measured hot paths and for what the ORM cannot say;
the query API, always starting from these querysets, for the rest.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from tortoise.queryset import QuerySet

from sets_db.models import Set, SetImage
from sets_db.services.rows import SETS

# SQL, not the query API: every image write takes it, and building the queryset's SELECT
# was most of add_image's time beyond the floor's (~0.3 ms of Python).
LOCK_SET_SQL = f"SELECT 1 FROM {SETS} WHERE id = $1 AND user_id = $2 FOR UPDATE"


def owned_sets(user_id: str) -> QuerySet[Set]:
    return Set.filter(user_id=user_id)


def owned_images(user_id: str) -> QuerySet[SetImage]:
    return SetImage.filter(set__user_id=user_id)


async def lock_set(raw: asyncpg.Connection, user_id: str, set_id: UUID) -> bool:
    """Lock the owner's set row for this transaction; False if there is no such set.

    Image writes to one set queue up on this lock, which is what keeps positions gap-free
    and unique under concurrency.
    """
    return await raw.fetchval(LOCK_SET_SQL, set_id, user_id) is not None
