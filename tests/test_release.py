"""Giving a connection back to its pool: at once when nothing is left to do, and still
safely (rolled back, closed, never stranded by a cancelled caller) when something is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from sets_db.config import asyncpg_dsn
from sets_db.pool import release, reset_connection


@pytest.fixture
async def pool(db: str) -> AsyncIterator[Any]:
    """A one-connection pool configured as sets-db's are (its reset)."""
    pool = await asyncpg.create_pool(
        asyncpg_dsn(db), min_size=1, max_size=1, reset=reset_connection
    )
    yield pool
    await pool.close()


async def _until(done: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(10):
        while True:
            if await done():
                return
            await asyncio.sleep(0.01)


async def _idle_again(pool: Any) -> None:
    async def idle() -> bool:
        return bool(pool.get_idle_size() == 1)

    await _until(idle)


async def test_an_idle_connection_is_back_before_anything_else_runs(pool: Any) -> None:
    conn = await pool.acquire()
    await conn.fetchval("SELECT 1")
    others: list[str] = []
    asyncio.get_running_loop().call_soon(others.append, "ran")

    await release(pool, conn)

    # asyncpg's own release lets the loop run (a task under a shield) before it is done.
    assert (pool.get_idle_size(), others) == (1, [])
    assert await pool.fetchval("SELECT 2") == 2


async def test_an_open_transaction_is_rolled_back_even_when_the_caller_is_cancelled(
    pool: Any, raw: Any
) -> None:
    conn = await pool.acquire()
    pid = conn.get_server_pid()
    await conn.execute("BEGIN")
    await conn.execute(
        "INSERT INTO sets (user_id, title) VALUES ('release-user', 'left in a transaction')"
    )
    releasing = asyncio.create_task(release(pool, conn))
    await asyncio.sleep(0)  # it waits for its ROLLBACK
    assert not releasing.done()
    releasing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await releasing

    await _idle_again(pool)
    async with pool.acquire() as again:
        assert again.get_server_pid() == pid  # rolled back, not dropped
        assert not again.is_in_transaction()
        assert await again.fetchval("SELECT count(*) FROM sets") == 0
    assert await raw.fetchval("SELECT count(*) FROM sets") == 0


async def test_an_expired_connection_is_closed_and_replaced(pool: Any, raw: Any) -> None:
    conn = await pool.acquire()
    old_pid = conn.get_server_pid()
    await pool.expire_connections()

    await release(pool, conn)

    await _idle_again(pool)
    async with pool.acquire() as again:
        assert again.get_server_pid() != old_pid

    async def gone() -> bool:
        return not await raw.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", old_pid
        )

    await _until(gone)


async def test_a_released_connection_cannot_be_used_or_released_again(pool: Any) -> None:
    conn = await pool.acquire()
    await release(pool, conn)
    await release(pool, conn)  # a no-op, as asyncpg's

    with pytest.raises(asyncpg.InterfaceError):
        await conn.fetchval("SELECT 1")
    assert pool.get_idle_size() == 1


async def test_a_connection_of_another_pool_is_refused(pool: Any, db: str) -> None:
    other = await asyncpg.create_pool(asyncpg_dsn(db), min_size=1, max_size=1)
    try:
        conn = await other.acquire()
        with pytest.raises(asyncpg.InterfaceError, match="not a member of this pool"):
            await release(pool, conn)
        await release(other, conn)
        assert other.get_idle_size() == 1
    finally:
        await other.close()


class _SilencingProxy:
    """A TCP proxy to the server whose open connections can be made to go silent (what
    the client then sends is swallowed, nothing comes back); new ones pass through."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.silent = False
        self.pipes: list[asyncio.Task[None]] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.silent:
                    writer.write(data)
                    await writer.drain()
        except ConnectionError:
            pass  # the client or the server hung up

    async def _connected(self, client: asyncio.StreamReader, back: asyncio.StreamWriter) -> None:
        server, forth = await asyncio.open_connection(*self.target)
        self.writers += [back, forth]
        self.pipes += [
            asyncio.create_task(self._pipe(client, forth)),
            asyncio.create_task(self._pipe(server, back)),
        ]

    async def __aenter__(self) -> str:
        """The proxy's address, ``host:port``."""
        self.server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        for pipe in self.pipes:
            pipe.cancel()
        for writer in self.writers:
            writer.close()
        self.server.close()


async def test_an_expired_connection_on_a_silent_server_fails_its_own_release_only(
    db: str,
) -> None:
    # Its close waits for the server under the connection's command timeout: that deadline
    # belongs to the release, not to the caller's task (which must see asyncpg's
    # TimeoutError, not a cancellation), and the pool gets its slot back.
    url = urlsplit(db)
    proxy = _SilencingProxy(url.hostname or "127.0.0.1", url.port or 5432)
    async with proxy as address:
        proxied = asyncpg_dsn(db).replace(url.netloc.rpartition("@")[2], address)
        pool = await asyncpg.create_pool(
            proxied, min_size=1, max_size=1, command_timeout=0.3, reset=reset_connection
        )
        try:
            conn = await pool.acquire()
            await conn.fetchval("SELECT 1")
            await pool.expire_connections()
            proxy.silent = True
            releasing = asyncio.create_task(release(pool, conn))
            await asyncio.wait([releasing], timeout=5)
            assert releasing.done()
            assert not releasing.cancelled()
            assert isinstance(releasing.exception(), TimeoutError)
            proxy.silent = False
            await asyncio.sleep(0.5)  # past the deadline, had it stayed on this task
            async with asyncio.timeout(5), pool.acquire() as again:
                assert await again.fetchval("SELECT 1") == 1
        finally:
            pool.terminate()
