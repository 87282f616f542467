"""The ONE place where driver and ORM exceptions become ``sets_db.errors``.

Every service call, the migrator and the CLI go through ``translate_errors()``, so a caller
only ever sees the sets-db error tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from tortoise.exceptions import BaseORMException, DBConnectionError, IntegrityError

from sets_db.errors import (
    ConflictError,
    DatabaseUnavailableError,
    QueryTimeoutError,
    ReadOnlyDatabaseError,
    SetsDbError,
)

# What may come out of the driver or the ORM (TimeoutError: a pool acquire that waited
# too long, or a connect that never answered).
DRIVER_ERRORS = (
    BaseORMException,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


_UNAVAILABLE = (
    OSError,
    asyncpg.InterfaceError,
    # Not an InterfaceError: a pooled connection whose server went away while it was idle
    # (state "another operation is in progress" at the next query).
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # AdminShutdown (terminated), CannotConnectNow
    asyncpg.TooManyConnectionsError,
    asyncpg.ProtocolError,
    DBConnectionError,
)


def translate(error: BaseException) -> SetsDbError:
    """The one mapping from driver/ORM exceptions to the sets-db error tree."""
    if isinstance(error, SetsDbError):
        return error
    root = _root_cause(error)
    # Before the connection errors: a cancelled statement is an OperatorInterventionError too.
    if isinstance(root, asyncpg.QueryCanceledError):
        return QueryTimeoutError("the query ran past the statement timeout and was cancelled")
    if isinstance(root, asyncpg.ReadOnlySQLTransactionError):
        return ReadOnlyDatabaseError(
            "the server is read-only (a replica, or a primary during failover); nothing was written"
        )
    if isinstance(root, asyncpg.IntegrityConstraintViolationError) or isinstance(
        error, IntegrityError
    ):
        return ConflictError(f"the write conflicts with existing data: {root}")
    if isinstance(root, asyncpg.TransactionRollbackError):
        # serialization failure or deadlock: nothing was written, a retry may succeed
        return ConflictError(f"the write collided with a concurrent one: {root}")
    if isinstance(root, TimeoutError):
        return DatabaseUnavailableError("the database did not answer in time")
    if isinstance(root, _UNAVAILABLE):
        return DatabaseUnavailableError(f"the database is unavailable: {type(root).__name__}")
    if isinstance(root, asyncpg.PostgresError) and getattr(root, "sqlstate", "").startswith(
        ("08", "57P")
    ):
        return DatabaseUnavailableError(f"the database is unavailable: {type(root).__name__}")
    return SetsDbError(f"database error: {type(root).__name__}: {root}")


@contextmanager
def translate_errors() -> Iterator[None]:
    """Driver/ORM exceptions raised inside become their ``sets_db.errors`` counterpart."""
    try:
        yield
    except (*DRIVER_ERRORS, TimeoutError) as error:
        raise translate(error) from error
