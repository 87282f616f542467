"""Many users at once, each doing what an API does: every call succeeds and every user ends
with exactly their own writes. The pooler leg (tests/test_pooler.py) runs this through
PgBouncer in transaction mode, where one server connection serves many clients in turn."""

from __future__ import annotations

import asyncio
import random
from typing import Any
from uuid import UUID

from sets_db.config import settings
from sets_db.pool import SEARCH_PATH
from sets_db.services import (
    add_image,
    collection_stats,
    create_set,
    delete_set,
    export_sets,
    get_set,
    list_sets,
    list_tags,
    update_set,
)
from sets_db.sessions import owner_read, owner_transaction

USERS = 50
CALLS_PER_USER = 30


async def one_user(n: int) -> int:
    """A seeded random mix of calls for one user; returns how many sets they should own."""
    user_id, rng = f"user-{n}", random.Random(n)
    owned: list[UUID] = []
    for _ in range(CALLS_PER_USER):
        choice = rng.random()
        if choice < 0.25 or not owned:
            data: dict[str, Any] = {"title": f"set {n}", "tags": [f"t{n % 3}"]}
            owned.append((await create_set(user_id=user_id, data=data)).id)
        elif choice < 0.35:
            await update_set(user_id=user_id, set_id=rng.choice(owned), changes={"notes": "n"})
        elif choice < 0.45:
            await add_image(user_id=user_id, set_id=rng.choice(owned), image_url="https://x/i")
        elif choice < 0.5:
            await delete_set(user_id=user_id, set_id=owned.pop(rng.randrange(len(owned))))
        elif choice < 0.7:
            assert (await get_set(user_id=user_id, set_id=rng.choice(owned))).title == f"set {n}"
        elif choice < 0.8:
            page = await list_sets(user_id=user_id, limit=5)
            assert all(item.title == f"set {n}" for item in page.items)
        elif choice < 0.9:
            await collection_stats(user_id=user_id)
            await list_tags(user_id=user_id)
        else:
            assert len([item async for item in export_sets(user_id=user_id)]) == len(owned)
    return len(owned)


async def test_fifty_users_with_mixed_calls_all_succeed(db: str, raw: Any) -> None:
    expected = await asyncio.gather(*(one_user(n) for n in range(USERS)))  # any error fails
    counts = dict(await raw.fetch("SELECT user_id, count(*) FROM sets GROUP BY user_id"))
    assert counts == {f"user-{n}": owned for n, owned in enumerate(expected) if owned}


async def test_every_call_runs_with_sets_db_settings(db: str) -> None:
    """Direct or through the pooler (where they are set inside each transaction), every
    session has the statement timeout, the search path and JIT off."""
    timeout = str(settings().statement_timeout_ms)
    for session_of in (owner_read, owner_transaction):
        async with session_of("someone") as session:
            row = await session.raw.fetchrow(
                "SELECT setting AS timeout, current_setting('search_path') AS path,"
                " current_setting('jit') AS jit FROM pg_settings WHERE name = 'statement_timeout'"
            )
        assert (row["timeout"], row["path"], row["jit"]) == (timeout, SEARCH_PATH, "off")
