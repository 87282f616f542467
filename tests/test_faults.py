"""Faults: killed connections, a restarted server, statement timeouts.

Every failure reaches the caller as a typed ``sets_db.errors`` error, nothing partial stays
in the database, and the same process carries on once the database is back.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sets_db.config import load_settings, tortoise_config
from sets_db.errors import ConfigurationError, DatabaseUnavailableError, QueryTimeoutError
from sets_db.services import create_set, import_sets, reorder_images
from sets_db.sessions import owner_read, owner_transaction
from tests.clusters import Cluster
from tests.pg import REPO_ROOT, connect

USER = "fault-user"
IMAGES = [{"image_url": f"https://img.example/{n}.jpg"} for n in range(60)]

# --- A connection killed mid-transaction ----------------------------------------------------


async def _blocked_backend(raw: Any, blocker_pid: int) -> dict[str, Any]:
    """The session of this database that waits on the blocker's lock (the service call)."""
    async with asyncio.timeout(30):
        while True:
            row = await raw.fetchrow(
                "SELECT pid, backend_xid IS NOT NULL AS has_written FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND $1 = ANY(pg_blocking_pids(pid))",
                blocker_pid,
            )
            if row is not None:
                return dict(row)
            await asyncio.sleep(0.01)


async def _kill_while_blocked(
    raw: Any, db: str, lock_sql: str, call: Callable[[], Coroutine[Any, Any, object]]
) -> dict[str, Any]:
    """Run ``call`` while another session holds ``lock_sql``; once the call waits on that
    lock (inside its transaction), terminate its backend. Returns what the victim was."""
    blocker = await connect(db)
    try:
        transaction_ = blocker.transaction()
        await transaction_.start()
        await blocker.execute(lock_sql)
        task = asyncio.create_task(call())
        victim = await _blocked_backend(raw, blocker.get_server_pid())
        assert await raw.fetchval("SELECT pg_terminate_backend($1)", victim["pid"])
        await transaction_.rollback()
        with pytest.raises(DatabaseUnavailableError):
            await task
    finally:
        await blocker.close()
    # The killed session is gone: the next call has to use a fresh connection.
    assert not await raw.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", victim["pid"]
    )
    return victim


async def _rows(raw: Any) -> list[tuple[Any, ...]]:
    sets = await raw.fetch("SELECT * FROM sets ORDER BY id")
    images = await raw.fetch("SELECT * FROM set_images ORDER BY id")
    return [tuple(r) for r in sets] + [tuple(r) for r in images]


async def test_create_with_images_killed_mid_transaction_leaves_nothing(raw: Any, db: str) -> None:
    victim = await _kill_while_blocked(
        raw,
        db,
        # The set row goes in; the images' INSERT then waits here.
        "LOCK TABLE set_images IN SHARE MODE",
        lambda: create_set(user_id=USER, data={"title": "Doomed", "images": IMAGES}),
    )
    assert victim["has_written"]  # it really was mid-transaction, after its first write
    assert await _rows(raw) == []

    created = await create_set(user_id=USER, data={"title": "Survivor", "images": IMAGES})
    assert len(created.images) == len(IMAGES)
    assert await raw.fetchval("SELECT count(*) FROM sets") == 1


async def test_reorder_killed_mid_transaction_keeps_the_old_order(raw: Any, db: str) -> None:
    created = await create_set(user_id=USER, data={"title": "Ordered", "images": IMAGES[:8]})
    before = await _rows(raw)
    reversed_ids = [image.id for image in reversed(created.images)]
    victim_image = created.images[3].id

    await _kill_while_blocked(
        raw,
        db,
        # The reorder has locked its set and read the images; its UPDATE waits on this row.
        f"SELECT 1 FROM set_images WHERE id = '{victim_image}' FOR UPDATE",
        lambda: reorder_images(user_id=USER, set_id=created.id, image_ids=reversed_ids),
    )
    assert await _rows(raw) == before

    reordered = await reorder_images(user_id=USER, set_id=created.id, image_ids=reversed_ids)
    assert [image.id for image in reordered] == reversed_ids


async def test_import_killed_mid_transaction_leaves_nothing(raw: Any, db: str) -> None:
    rows = [{"title": f"Imported {n}", "images": IMAGES[:3]} for n in range(200)]
    victim = await _kill_while_blocked(
        raw,
        db,
        # The sets COPY goes in; the summary's statement trigger then waits here (the import
        # takes its tables' locks before it writes, so a table lock would stop it earlier).
        f"SELECT pg_advisory_xact_lock(hashtext('set_collection_stats'), hashtext('{USER}'))",
        lambda: import_sets(user_id=USER, rows=rows),
    )
    assert victim["has_written"]
    assert await _rows(raw) == []

    assert await import_sets(user_id=USER, rows=rows) == len(rows)
    assert await raw.fetchval("SELECT count(*) FROM set_images") == 3 * len(rows)


# --- Statement timeouts ---------------------------------------------------------------------


def test_statement_timeout_is_configurable() -> None:
    assert load_settings({}).statement_timeout_ms == 30_000
    config = load_settings({"SETS_DB_STATEMENT_TIMEOUT_MS": "250"})
    assert config.statement_timeout_ms == 250
    for bad in ("soon", "-1", "1.5"):
        with pytest.raises(ConfigurationError, match="SETS_DB_STATEMENT_TIMEOUT_MS"):
            load_settings({"SETS_DB_STATEMENT_TIMEOUT_MS": bad})
    url = "postgres://postgres@127.0.0.1:5432/x"
    credentials = tortoise_config(url, config=config)["connections"]["default"]
    assert credentials["credentials"]["server_settings"]["statement_timeout"] == "250"


async def test_a_timed_out_statement_is_query_timeout_error(db: str) -> None:
    async def sleep_past_the_timeout() -> None:
        async with owner_transaction(USER) as session:
            await session.raw.execute("SET LOCAL statement_timeout = 50")
            await session.raw.execute("SELECT pg_sleep(10)")

    with pytest.raises(QueryTimeoutError):
        await sleep_past_the_timeout()
    # The connection went back to the pool in a usable state.
    async with owner_read(USER) as session:
        assert await session.raw.fetchval("SELECT 1") == 1


TIMEOUT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from sets_db import close_db, init_db
    from sets_db.services import add_image
    from sets_db.sessions import owner_read

    async def main(url, set_id):
        await init_db(url)
        try:
            async with owner_read("owner") as session:
                print(await session.raw.fetchval("SHOW statement_timeout"))
            try:
                await add_image(user_id="owner", set_id=set_id, image_url="https://x/1.jpg")
            except Exception as error:
                print(type(error).__name__)
        finally:
            await close_db()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_the_configured_timeout_cancels_a_stuck_service_call(raw: Any, db: str) -> None:
    """SETS_DB_STATEMENT_TIMEOUT_MS reaches the server: a service call stuck on a lock is
    cancelled by it and reported as QueryTimeoutError, with nothing written."""
    created = await create_set(user_id="owner", data={"title": "Locked"})
    blocker = await connect(db)
    try:
        async with blocker.transaction():
            await blocker.execute("SELECT 1 FROM sets WHERE id = $1 FOR UPDATE", created.id)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                TIMEOUT_SCRIPT,
                db,
                str(created.id),
                cwd=REPO_ROOT,
                env={**os.environ, "SETS_DB_STATEMENT_TIMEOUT_MS": "200"},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            async with asyncio.timeout(60):
                out, err = await process.communicate()
    finally:
        await blocker.close()
    assert process.returncode == 0, err.decode()
    assert out.decode().split() == ["200ms", "QueryTimeoutError"]
    assert await raw.fetchval("SELECT count(*) FROM set_images") == 0


# --- A server restart, on a private PostgreSQL of this test's own ----------------------------

# The server is tests/companions.py's ``private_cluster``: free to be stopped and started.

RESTART_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from sets_db import close_db, init_db, migrate
    from sets_db.errors import SetsDbError
    from sets_db.services import create_set, list_sets

    async def call(title):
        try:
            await create_set(user_id="u", data={"title": title})
            return f"ok {len((await list_sets(user_id='u')).items)}"
        except SetsDbError as error:
            return type(error).__name__
        except Exception as error:
            return f"UNTYPED {type(error).__name__}: {error}"

    async def main(url):
        await migrate(url)
        await init_db(url)
        loop = asyncio.get_running_loop()
        print("ready", flush=True)
        # The event loop keeps running while it waits for the next command, as in a server.
        while title := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            print(await call(title), flush=True)
        await close_db()

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_calls_fail_typed_while_the_server_is_down_and_work_after(
    private_cluster: Cluster,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RESTART_SCRIPT,
        private_cluster.url(),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None

    async def ask(title: str) -> str:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(f"{title}\n".encode())
        await process.stdin.drain()
        return (await process.stdout.readline()).decode().strip()

    try:
        async with asyncio.timeout(120):
            assert (await process.stdout.readline()).strip() == b"ready"
            assert await ask("before") == "ok 1"
            await asyncio.to_thread(private_cluster.stop)
            assert await ask("down 1") == "DatabaseUnavailableError"
            assert await ask("down 2") == "DatabaseUnavailableError"
            await asyncio.to_thread(private_cluster.start)
            assert await ask("after") == "ok 2"  # same process, same pool, no restart
            assert await ask("later") == "ok 3"
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
