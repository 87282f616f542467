"""How each asyncpg pool behind Tortoise is configured, per deployment mode.

Direct connections: asyncpg's statement cache, and the statement timeout as a setting sent
when a connection opens (no round trip per query). Behind a transaction-mode pooler: no
statement cache (named statements would outlive the pooler's server connection) and no
startup setting (PgBouncer refuses unknown ones); ``sets_db.sessions`` then applies the
timeout with ``set_config(..., true)`` inside each transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from tortoise.backends.base.config_generator import expand_db_url

from sets_db.config import Settings, asyncpg_dsn
from sets_db.errors import ConfigurationError

# A connection idle this long is closed: a restarted server or a pooler that dropped it
# is then found at the next acquire instead of at a query.
MAX_IDLE_S = 60.0
# Temporary tables last: one named ``sets`` left on a shared server connection cannot
# shadow the real table for an unqualified name (the ORM's statements).
SEARCH_PATH = "public, pg_temp"
# JIT compiles a plan for seconds-long analytics; sets-db's statements run in milliseconds,
# and asyncpg's type introspection (the first query on each connection that returns an
# array of rows) took 37-58 ms with it on, 19 ms off (PostgreSQL 15, new connection).
JIT = "off"


# ``record[]``, the type of the reads' array of image ROW()s (a built-in type, fixed OID),
# described as asyncpg's type introspection would. Registered on each new connection, it
# spares that connection the introspection's catalog query: 14 ms on a new server
# connection with JIT off, 35-55 ms with it on, paid at every cold start and reconnect.
_RECORD_ARRAY = {
    "oid": 2287,
    "ns": "pg_catalog",
    "name": "_record",
    "kind": b"p",
    "basetype": None,
    "elemtype": 2249,
    "elemtype_name": "record",
    "elemdelim": b",",
    "range_subtype": None,
    "attrtypoids": None,
}


async def init_connection(conn: asyncpg.Connection) -> None:
    """Each new connection learns the ``record[]`` codec without a round trip."""
    # An asyncpg without this internal introspects as before.
    with contextlib.suppress(AttributeError):
        conn._protocol.get_settings().register_data_types([_RECORD_ARRAY])


def session_settings(config: Settings) -> dict[str, str]:
    """What every sets-db session runs with: sent when a direct connection opens, or set
    inside each transaction behind a pooler (``sets_db.sessions``)."""
    return {
        "statement_timeout": str(config.statement_timeout_ms),
        "search_path": SEARCH_PATH,
        "jit": JIT,
    }


async def reset_connection(conn: asyncpg.Connection) -> None:
    """What a connection goes back to the pool with: nothing to undo, one local check.

    sets-db keeps no session state on pooled connections (roles, owner and timeouts are
    ``set_config(..., true)``, gone at commit; no LISTEN, advisory lock or session
    temp table), so asyncpg's default reset (``pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL``, one round trip per call) has nothing to do. A transaction
    left open by a failed call is rolled back; if that fails the pool drops the connection.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def release(pool: asyncpg.Pool, connection: asyncpg.Connection) -> None:
    """Give a connection acquired from ``pool`` back to it, at once when nothing is left
    to wait for.

    ``Pool.release`` runs the release (reset and requeue) in a task under
    ``asyncio.shield``, so that a cancelled caller cannot strand the connection: two turns
    of the event loop, 16-17 us of a 130-150 us ``SELECT 1`` through the pool. After a
    sets-db call there is usually nothing to wait for (no transaction to roll back, the
    reset is a check), so the release runs here up to its first wait, if any: without one
    it is done before anything else runs, and nothing can cancel it. Only a release that
    waits (a rollback, an expired connection's close) goes on in a shielded task, as
    asyncpg's does.
    """
    holder = getattr(connection, "_holder", None)
    if type(connection) is not PoolConnectionProxy or holder is None or holder._pool is not pool:
        await asyncpg.Pool.release(pool, connection)  # its own checks and error
        return
    if connection._con is None:  # already released
        return
    pool._check_init()
    connection._con._on_release()
    # No time limit: asyncpg's would be a deadline on the caller's task, which a release
    # that waits no longer runs in.
    steps = holder.release(None)
    try:
        waiting = steps.send(None)
    except StopIteration:
        return
    await asyncio.shield(_resume(steps, waiting))


async def _resume(steps: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Run a coroutine suspended on ``waiting`` (a future, or None for a bare yield) to its
    end, as its own task would: wait, then let it read the outcome itself."""
    while True:
        if waiting is not None:
            # Taken over as a task takes a yielded future: else awaiting it again, here or
            # in the coroutine, is refused ("await wasn't used with future").
            waiting._asyncio_future_blocking = False
        # The outcome (a result, an error, a cancellation) is the coroutine's to read: its
        # own await reads the future again when it resumes.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await (asyncio.sleep(0) if waiting is None else waiting)
        try:
            waiting = steps.send(None)
        except StopIteration:
            return


def connection_config(url: str, config: Settings) -> dict[str, Any]:
    """A Tortoise connection entry for ``url`` in the mode ``config`` says."""
    try:
        connection = expand_db_url(asyncpg_dsn(url).replace("postgresql://", "asyncpg://", 1))
    except (ValueError, KeyError) as error:
        raise ConfigurationError(f"invalid database URL: {error}") from None
    credentials: dict[str, Any] = connection["credentials"]
    credentials.update(
        minsize=1,
        maxsize=config.pool_size,
        init=init_connection,
        reset=reset_connection,
        max_inactive_connection_lifetime=MAX_IDLE_S,
    )
    if config.behind_pooler:
        credentials["statement_cache_size"] = 0
        credentials.pop("server_settings", None)
    else:
        credentials["server_settings"] = {
            **(credentials.get("server_settings") or {}),
            **session_settings(config),
        }
    return connection
