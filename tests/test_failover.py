"""A server restarted or crashed under concurrent load, on a private PostgreSQL
(tests/clusters.py): callers only ever see sets_db.errors, and once the server is back
every call succeeds in the same process (no connection left poisoned in the pool)."""

from __future__ import annotations

import asyncio
import random
import traceback
from collections import Counter
from collections.abc import AsyncIterator
from uuid import UUID

import pytest

from sets_db.errors import PoolExhaustedError, SetsDbError
from sets_db.services import create_set, get_set, list_sets, update_set
from sets_db.sessions import owner_transaction
from tests.clusters import Cluster
from tests.companions import migrated, services_on
from tests.pg import create_database, service_url

CALLERS = 20
AFTER_RECOVERY = 200


@pytest.fixture(scope="module")
async def private_url(private_cluster: Cluster) -> str:
    return await migrated(await create_database(private_cluster.url(), "failover"))


@pytest.fixture
async def on_private(private_url: str, database_url: str) -> AsyncIterator[str]:
    async with services_on(private_url, restore=service_url(database_url)):
        yield private_url


async def mixed_call(user_id: str, set_ids: list[UUID]) -> None:
    """One of the calls an API makes, at random: a write, a read by id, a page."""
    choice = random.random()
    if choice < 0.3 or not set_ids:
        set_ids.append((await create_set(user_id=user_id, data={"title": "load"})).id)
    elif choice < 0.5:
        await update_set(user_id=user_id, set_id=random.choice(set_ids), changes={"notes": "x"})
    elif choice < 0.8:
        await get_set(user_id=user_id, set_id=random.choice(set_ids))
    else:
        await list_sets(user_id=user_id, limit=5)


async def caller(n: int, stop: asyncio.Event, seen: Counter[str], untyped: list[Exception]) -> None:
    user_id = f"caller-{n}"
    set_ids: list[UUID] = []
    while not stop.is_set():
        try:
            await mixed_call(user_id, set_ids)
            seen["ok"] += 1
        except SetsDbError as error:
            seen[type(error).__name__] += 1
            await asyncio.sleep(0.01)  # a client backs off a little before retrying
        except Exception as error:  # exactly what this test looks for
            untyped.append(error)
        await asyncio.sleep(0)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_restart_under_load_shows_only_typed_errors_and_heals(
    on_private: str, private_cluster: Cluster, mode: str
) -> None:
    stop, seen = asyncio.Event(), Counter[str]()
    untyped: list[Exception] = []
    callers = [asyncio.create_task(caller(n, stop, seen, untyped)) for n in range(CALLERS)]
    await asyncio.sleep(0.5)
    # pg_ctl blocks; the callers keep calling from this loop while it runs in a thread.
    await asyncio.to_thread(private_cluster.restart, mode)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*callers)
    assert untyped == [], "untyped errors escaped:\n" + "".join(
        traceback.format_exception(untyped[0])
    )
    assert seen["ok"] > 0, seen

    user_id = "after-recovery"
    set_ids: list[UUID] = []
    for _ in range(AFTER_RECOVERY):
        await mixed_call(user_id, set_ids)  # any error fails the test


async def test_an_exhausted_pool_is_a_bounded_wait_then_a_typed_error(
    private_url: str, database_url: str
) -> None:
    environ = {"SETS_DB_POOL_SIZE": "1", "SETS_DB_POOL_TIMEOUT_S": "0.3"}
    async with services_on(private_url, environ=environ, restore=service_url(database_url)):
        created = await create_set(user_id="pool", data={"title": "one"})
        # This task holds the pool's only connection; a second call has to wait for it.
        async with owner_transaction("pool"):
            with pytest.raises(PoolExhaustedError, match="SETS_DB_POOL_TIMEOUT_S"):
                await get_set(user_id="pool", set_id=created.id)
        assert (await get_set(user_id="pool", set_id=created.id)).title == "one"
