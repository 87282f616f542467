"""How a service call gets its connection: the owner's read or unit of work.

Each call holds one pooled asyncpg connection of its own for as long as it runs and never
records it in the task's context (as Tortoise's ``in_transaction()`` does), so a call that
fails half-way, a streaming export, or a server restart cannot leave a task pointing at a
connection that went back to the pool.

Routing: the read-only services pass ``read_only=True``; with a reader endpoint configured
(``DATABASE_READ_URL``) they go to it unless the owner wrote recently and the replica has not
replayed that write yet (read-your-writes, by WAL position), the replica lags past
``SETS_DB_REPLICA_MAX_LAG_S`` or is down: then to the primary. Writes always go to the primary.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection

from sets_db.config import DEFAULT_CONNECTION, READ_CONNECTION, Settings, settings
from sets_db.errors import DatabaseUnavailableError, PoolExhaustedError
from sets_db.pool import SEARCH_PATH
from sets_db.translation import DRIVER_ERRORS, translate


@dataclass(frozen=True)
class Session:
    """One pooled connection for one call: ``raw`` for SQL, ``orm`` for Tortoise's query
    API (``using_db=session.orm``), both the same connection and transaction."""

    raw: asyncpg.Connection
    orm: BaseDBAsyncClient


def _client(name: str) -> AsyncpgDBClient:
    client = get_connection(name)
    # Someone's Tortoise in_transaction() in this task: use its pool, not its connection.
    while isinstance(client, TransactionWrapper):
        client = client._parent
    assert isinstance(client, AsyncpgDBClient)
    return client


async def _pool(client: AsyncpgDBClient) -> asyncpg.Pool:
    if client._pool is None:
        async with client._pool_init_lock:
            if client._pool is None:
                await client.create_connection(with_db=True)
    assert client._pool is not None
    return client._pool


def _orm(client: AsyncpgDBClient, raw: asyncpg.Connection) -> BaseDBAsyncClient:
    wrapper = TransactionWrapper(client)
    wrapper._connection = raw
    return wrapper


def _prelude(config: Settings) -> str | None:
    """The first statement of every transaction sets-db opens: the settings that must last
    exactly one transaction (``set_config(..., true)`` is ``SET LOCAL``)."""
    parts = []
    if config.rls_role:
        # RLS mode: assume the application role and name the owner the policies read.
        parts += ["set_config('role', $1, true)", "set_config('sets_db.user_id', $2, true)"]
    if config.behind_pooler:
        # No startup setting gets through a transaction pooler; this does.
        timeout = int(config.statement_timeout_ms)
        parts.append(f"set_config('statement_timeout', '{timeout}', true)")
        parts.append(f"set_config('search_path', '{SEARCH_PATH}', true)")
    return "SELECT " + ", ".join(parts) if parts else None


@asynccontextmanager
async def _connection(
    name: str, config: Settings
) -> AsyncIterator[tuple[AsyncpgDBClient, asyncpg.Connection]]:
    """A pooled connection of ``name`` for this call only; driver errors translated, and a
    lost server expires the pool's other (equally dead) idle connections."""
    client = _client(name)
    pool: asyncpg.Pool | None = None
    try:
        pool = await _pool(client)
        try:
            raw = await pool.acquire(timeout=config.pool_timeout_s)
        except TimeoutError:
            raise PoolExhaustedError(
                f"no database connection became free within {config.pool_timeout_s:g} s "
                "(SETS_DB_POOL_TIMEOUT_S)"
            ) from None
    except DRIVER_ERRORS as error:
        raise translate(error) from error
    try:
        yield client, raw
    except DRIVER_ERRORS as error:
        translated = translate(error)
        if isinstance(translated, DatabaseUnavailableError):
            await pool.expire_connections()
        raise translated from error
    finally:
        try:
            await pool.release(raw)
        except (*DRIVER_ERRORS, RuntimeError):
            raw.terminate()


@asynccontextmanager
async def _transaction(
    raw: asyncpg.Connection, user_id: str, config: Settings
) -> AsyncIterator[None]:
    prelude = _prelude(config)
    if prelude is None or not config.rls_role:
        # No parameter to bind: BEGIN and the settings go as one simple query.
        await raw.execute("BEGIN" if prelude is None else f"BEGIN; {prelude}")
    else:
        await raw.execute("BEGIN")
    try:
        if prelude is not None and config.rls_role:
            await raw.execute(prelude, config.rls_role, user_id)
        yield
    except BaseException:
        if not raw.is_closed():
            try:
                await raw.execute("ROLLBACK")
            except DRIVER_ERRORS:
                raw.terminate()
        raise
    await raw.execute("COMMIT")


def _needs_transaction(config: Settings) -> bool:
    # A single read needs no transaction, except where SET LOCAL must apply (RLS) or a
    # transaction pooler could hand the statement's Bind to another server connection.
    return bool(config.rls_role) or config.behind_pooler


@asynccontextmanager
async def _session(
    name: str, user_id: str, *, transaction: bool, config: Settings
) -> AsyncIterator[Session]:
    async with _connection(name, config) as (client, raw):
        if transaction or _needs_transaction(config):
            async with _transaction(raw, user_id, config):
                yield Session(raw, _orm(client, raw))
        else:
            yield Session(raw, _orm(client, raw))


@asynccontextmanager
async def owner_transaction(user_id: str) -> AsyncIterator[Session]:
    """One unit of work for the owner on the primary: every statement inside commits
    together or not at all."""
    config = settings()
    async with _connection(DEFAULT_CONNECTION, config) as (client, raw):
        async with _transaction(raw, user_id, config):
            yield Session(raw, _orm(client, raw))
        if _routing.has_replica:
            # Read-your-writes: the WAL position the replica must replay to show this write.
            _routing.remember_write(user_id, await raw.fetchval(_PRIMARY_POSITION))


@asynccontextmanager
async def owner_read(user_id: str, *, snapshot: bool = False) -> AsyncIterator[Session]:
    """The owner's connection for read-only statements, on the replica when it may serve
    them. ``snapshot``: several statements that must see one consistent state."""
    config = settings()
    name = await _routing.read_connection(user_id, config)
    async with AsyncExitStack() as stack:
        try:
            session = await stack.enter_async_context(
                _session(name, user_id, transaction=snapshot, config=config)
            )
        except DatabaseUnavailableError:
            if name == DEFAULT_CONNECTION:
                raise
            _routing.replica_failed()  # down: this call and the next few use the primary
            session = await stack.enter_async_context(
                _session(DEFAULT_CONNECTION, user_id, transaction=snapshot, config=config)
            )
        try:
            yield session
        except DatabaseUnavailableError:
            if name != DEFAULT_CONNECTION:
                _routing.replica_failed()
            raise


# --- Replica routing -------------------------------------------------------------------------

# Owners remembered for read-your-writes; older entries fall out (their reads then go to the
# replica, which by then has replayed far past them).
MAX_REMEMBERED_WRITERS = 10_000
# How often the replica's replay position and lag are read (at most; on demand).
REPLICA_CHECK_S = 0.25
# After the replica failed, how long reads stay on the primary before trying it again.
REPLICA_RETRY_S = 5.0

_REPLICA_STATUS = """
SELECT pg_is_in_recovery() AS in_recovery,
       (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed,
       CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()
            THEN 0
            ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())
       END::float8 AS lag_s
"""
_PRIMARY_POSITION = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"


@dataclass
class _Routing:
    writes: OrderedDict[str, int] = field(default_factory=OrderedDict)
    replayed: int = 0
    lag_s: float = 0.0
    in_recovery: bool = True
    checked_at: float = -1e9
    failed_at: float = -1e9
    lock: asyncio.Lock | None = None
    has_replica: bool = False

    def remember_write(self, user_id: str, position: int) -> None:
        self.writes[user_id] = int(position)
        self.writes.move_to_end(user_id)
        while len(self.writes) > MAX_REMEMBERED_WRITERS:
            self.writes.popitem(last=False)

    def replica_failed(self) -> None:
        self.failed_at = time.monotonic()

    async def read_connection(self, user_id: str, config: Settings) -> str:
        if not self.has_replica or time.monotonic() - self.failed_at < REPLICA_RETRY_S:
            return DEFAULT_CONNECTION
        needed = self.writes.get(user_id, 0)
        if time.monotonic() - self.checked_at > REPLICA_CHECK_S or self.replayed < needed:
            await self._check(config)
        if time.monotonic() - self.failed_at < REPLICA_RETRY_S:
            return DEFAULT_CONNECTION
        if not self.in_recovery:  # the reader endpoint is a primary: always current
            return READ_CONNECTION
        if self.lag_s > config.replica_max_lag_s or self.replayed < needed:
            return DEFAULT_CONNECTION
        self.writes.pop(user_id, None)
        return READ_CONNECTION

    async def _check(self, config: Settings) -> None:
        self.lock = self.lock or asyncio.Lock()
        async with self.lock:
            if time.monotonic() - self.checked_at <= REPLICA_CHECK_S / 5:
                return  # another task just checked
            try:
                async with _connection(READ_CONNECTION, config) as (_, raw):
                    row = await raw.fetchrow(_REPLICA_STATUS)
            except DatabaseUnavailableError:
                self.replica_failed()
                return
            finally:
                self.checked_at = time.monotonic()
            assert row is not None
            self.in_recovery = bool(row["in_recovery"])
            self.replayed = int(row["replayed"] or 0)
            self.lag_s = float(row["lag_s"] or 0.0)


_routing = _Routing()


def reset_routing(*, has_replica: bool) -> None:
    """A fresh start for replica routing (``init_db()`` calls it)."""
    global _routing
    _routing = _Routing(has_replica=has_replica)
