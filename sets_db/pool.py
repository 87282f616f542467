"""How each asyncpg pool behind Tortoise is configured, per deployment mode.

Direct connections: asyncpg's statement cache, and the statement timeout as a setting sent
when a connection opens (no round trip per query). Behind a transaction-mode pooler: no
statement cache (named statements would outlive the pooler's server connection) and no
startup setting (PgBouncer refuses unknown ones); ``sets_db.sessions`` then applies the
timeout with ``set_config(..., true)`` inside each transaction.
"""

from __future__ import annotations

import contextlib
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
    sets-db call there is usually nothing to wait for (``_waits_for_nothing``), and then
    asyncpg's own release runs here to its end before anything else runs: nothing can
    cancel it. A release that waits (a rollback, an expired connection's close, a
    cancelled query) is asyncpg's, as it was, with its deadlines on its own task.
    """
    if not _waits_for_nothing(pool, connection):
        await asyncpg.Pool.release(pool, connection)
        return
    connection._con._on_release()
    steps = connection._holder.release(None)  # no wait, so no time limit to give it
    try:
        steps.send(None)
    except StopIteration:
        return
    # An asyncpg that waits where 0.32 does not: rather than finish the release outside the
    # task it began in, drop the connection (the pool opens another when it needs one).
    steps.close()
    connection._con.terminate()


def _waits_for_nothing(pool: asyncpg.Pool, connection: Any) -> bool:
    """Whether asyncpg's release of ``connection`` would end without waiting: one of the
    pool's current generation, under its query limit, not being cancelled and outside a
    transaction, in a pool whose reset is ``reset_connection`` (it waits in a transaction
    only). Read off asyncpg's ``PoolConnectionHolder.release``."""
    holder = getattr(connection, "_holder", None)
    con = getattr(connection, "_con", None)
    try:
        return (
            type(connection) is PoolConnectionProxy
            and holder is not None
            and con is not None
            and holder._pool is pool
            and pool._reset is reset_connection
            and pool._initialized
            and not pool._closed
            and holder._generation == pool._generation
            and con._protocol.queries_count < holder._max_queries
            and not con._protocol._is_cancelling()
            and not con.is_in_transaction()
            and con._top_xact is None
        )
    except AttributeError:  # an asyncpg without these internals releases as before
        return False


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
