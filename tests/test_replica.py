"""A reader endpoint: a private primary and its streaming hot standby (tests/clusters.py).

Reads go to the standby, a writer reads its own writes (from the primary until the standby
has replayed them), the primary serves when the standby is down, and a write that reaches
the standby is a typed, retryable error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sets_db import sessions
from sets_db.config import with_database
from sets_db.errors import DatabaseUnavailableError, ReadOnlyDatabaseError
from sets_db.services import create_set, get_set, list_sets
from sets_db.sessions import owner_read
from tests.clusters import Cluster
from tests.companions import migrated, services_on
from tests.pg import connect, create_database, service_url

WRITER, OTHER = "writer", "other"
# The standby is held back on purpose below (replay paused): no lag limit may send its
# reads to the primary meanwhile.
PATIENT = {"SETS_DB_REPLICA_MAX_LAG_S": "3600"}


@pytest.fixture(scope="module")
async def pair_urls(replica_pair: tuple[Cluster, Cluster]) -> tuple[str, str]:
    """A migrated database on the primary, and the same database on the standby."""
    primary, standby = replica_pair
    url = await migrated(await create_database(primary.url(), "replica"))
    name = url.rsplit("/", 1)[1]
    return url, with_database(standby.url(), name)


async def _until_standby(
    primary_url: str, standby_url: str, first: str, done: Callable[[Any], Awaitable[bool]]
) -> None:
    """Run ``first`` on the standby, then wait until ``done(standby)``. Meanwhile the primary
    writes small records of its own: the standby acts at the next record it replays, and the
    last one may end exactly at the position it waits for."""
    primary, standby = await connect(primary_url), await connect(standby_url)
    try:
        await standby.execute(first)
        async with asyncio.timeout(30):
            while not await done(standby):
                await primary.execute("SELECT txid_current()")
                await asyncio.sleep(0.02)
    finally:
        await primary.close()
        await standby.close()


async def caught_up(primary_url: str, standby_url: str) -> None:
    """Wait until the standby has replayed everything the primary has inserted so far (the
    insert position, as read-your-writes compares: with synchronous_commit=off, as here,
    the write position may still be before the last commit)."""
    conn = await connect(primary_url)
    try:
        position = await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text")
    finally:
        await conn.close()

    async def replayed(standby: Any) -> bool:
        query = "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn"
        return bool(await standby.fetchval(query, position))

    await _until_standby(primary_url, standby_url, "SELECT 1", replayed)


async def replay(standby_url: str, action: str) -> None:
    """``resume`` WAL replay on the standby."""
    conn = await connect(standby_url)
    try:
        await conn.execute(f"SELECT pg_wal_replay_{action}()")
    finally:
        await conn.close()


async def pause_replay(primary_url: str, standby_url: str) -> None:
    """Pause WAL replay on the standby, and wait until it is paused."""

    async def paused(standby: Any) -> bool:
        return bool(await standby.fetchval("SELECT pg_get_wal_replay_pause_state()") == "paused")

    await _until_standby(primary_url, standby_url, "SELECT pg_wal_replay_pause()", paused)


async def insert_behind_the_services(primary_url: str, user_id: str, title: str) -> None:
    """A row written straight on the primary: sets-db's routing knows nothing of it."""
    conn = await connect(primary_url)
    try:
        await conn.execute(
            "INSERT INTO sets (user_id, title) VALUES ($1, $2)",
            user_id,
            title,
        )
    finally:
        await conn.close()


async def titles(user_id: str) -> set[str]:
    return {item.title for item in (await list_sets(user_id=user_id)).items}


async def served_by(user_id: str) -> int:
    """The port of the server a read of ``user_id`` goes to."""
    async with owner_read(user_id) as session:
        port: int = await session.raw.fetchval("SELECT inet_server_port()")
        return port


@pytest.fixture
async def routed(
    pair_urls: tuple[str, str], database_url: str, replica_pair: tuple[Cluster, Cluster]
) -> AsyncIterator[tuple[str, str]]:
    """The services on the primary with the standby as reader endpoint; replay resumed and
    the standby running again afterwards, whatever the test did."""
    primary_url, standby_url = pair_urls
    async with services_on(
        primary_url, read_url=standby_url, environ=PATIENT, restore=service_url(database_url)
    ):
        try:
            yield primary_url, standby_url
        finally:
            if not replica_pair[1].is_running():
                replica_pair[1].start()
            await replay(standby_url, "resume")


async def test_reads_go_to_the_standby_and_a_writer_reads_its_writes(
    routed: tuple[str, str], replica_pair: tuple[Cluster, Cluster]
) -> None:
    primary_url, standby_url = routed
    primary, standby = replica_pair
    await caught_up(primary_url, standby_url)
    assert await served_by(OTHER) == standby.port

    await pause_replay(primary_url, standby_url)
    await insert_behind_the_services(primary_url, WRITER, "behind")
    # The standby has not replayed that row: a read that does not see it was served there.
    assert await titles(WRITER) == set()

    created = await create_set(user_id=WRITER, data={"title": "mine"})
    # Read-your-writes: the writer's reads now go to the primary (which has both rows)...
    assert await served_by(WRITER) == primary.port
    assert await titles(WRITER) == {"behind", "mine"}
    assert (await get_set(user_id=WRITER, set_id=created.id)).title == "mine"
    # ... while everyone else still reads from the standby.
    assert await served_by(OTHER) == standby.port

    await replay(standby_url, "resume")
    await caught_up(primary_url, standby_url)
    # Replayed past the write: the writer is back on the standby.
    assert await served_by(WRITER) == standby.port
    assert await titles(WRITER) == {"behind", "mine"}


async def test_reads_fall_back_to_the_primary_when_the_standby_is_down(
    routed: tuple[str, str], replica_pair: tuple[Cluster, Cluster]
) -> None:
    primary_url, standby_url = routed
    primary, standby = replica_pair
    await create_set(user_id=OTHER, data={"title": "kept"})
    await caught_up(primary_url, standby_url)
    standby.stop()
    for _ in range(3):  # the first read finds the standby gone, the next ones skip it
        assert "kept" in await titles(OTHER)
        assert await served_by(OTHER) == primary.port


async def test_reads_fall_back_to_the_primary_when_the_standby_lags(
    routed: tuple[str, str], replica_pair: tuple[Cluster, Cluster], monkeypatch: Any
) -> None:
    primary_url, standby_url = routed
    primary, _ = replica_pair
    async with services_on(
        primary_url, read_url=standby_url, environ={"SETS_DB_REPLICA_MAX_LAG_S": "0.2"}
    ):
        await pause_replay(primary_url, standby_url)
        await insert_behind_the_services(primary_url, OTHER, "late")
        await asyncio.sleep(1)  # past the allowed lag
        assert "late" in await titles(OTHER)
        assert await served_by(OTHER) == primary.port


async def test_a_write_sent_to_the_standby_is_read_only_database_error(
    pair_urls: tuple[str, str], database_url: str
) -> None:
    _, standby_url = pair_urls
    async with services_on(standby_url, restore=service_url(database_url)):
        with pytest.raises(ReadOnlyDatabaseError) as raised:
            await create_set(user_id=WRITER, data={"title": "nowhere"})
    assert isinstance(raised.value, DatabaseUnavailableError)  # retryable, once failed over


# What an Aurora reader answers: it replicates below the WAL, so it reports no replay
# position (and no replay timestamp to measure a lag by).
AURORA_READER_STATUS = (
    "SELECT pg_is_in_recovery() AS in_recovery, NULL::bigint AS replayed, NULL::float8 AS lag_s"
)


async def test_a_reader_without_a_replay_position_keeps_a_writer_on_the_primary_for_a_window(
    routed: tuple[str, str], replica_pair: tuple[Cluster, Cluster], monkeypatch: Any
) -> None:
    """The standby answers the status query as an Aurora reader does: read-your-writes then
    keeps a writer's reads on the primary for SETS_DB_REPLICA_MAX_LAG_S after the write."""
    primary_url, standby_url = routed
    primary, standby = replica_pair
    monkeypatch.setattr(sessions, "_REPLICA_STATUS", AURORA_READER_STATUS)
    window_s = 1.0
    async with services_on(
        primary_url, read_url=standby_url, environ={"SETS_DB_REPLICA_MAX_LAG_S": str(window_s)}
    ):
        await pause_replay(primary_url, standby_url)
        created = await create_set(user_id=WRITER, data={"title": "mine"})
        # The standby has not replayed the write, and cannot say so: the window covers it.
        assert (await get_set(user_id=WRITER, set_id=created.id)).title == "mine"
        assert await served_by(WRITER) == primary.port
        assert await served_by(OTHER) == standby.port
        await asyncio.sleep(window_s + 0.3)
        assert await served_by(WRITER) == standby.port
