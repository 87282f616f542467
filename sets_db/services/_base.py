"""What every service shares: input checks, connections, and the ONE place where driver
and ORM exceptions become ``sets_db.errors``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import pydantic
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import BaseORMException, DBConnectionError, IntegrityError
from tortoise.transactions import in_transaction

from sets_db.config import rls_role
from sets_db.errors import (
    ConflictError,
    DatabaseUnavailableError,
    FieldError,
    InvalidInputError,
    QueryTimeoutError,
    SetsDbError,
)
from sets_db.schemas import SetOut, storable_text

Connection = BaseDBAsyncClient
Dto = TypeVar("Dto", bound=pydantic.BaseModel)

MAX_USER_ID = 255

# A set's columns plus its images (position order) as one array of rows: one round trip.
# An array of ROW()s, not JSON: asyncpg decodes it in binary, already as UUID and datetime
# (NULL when the set has no images). Its columns are IMAGE_FIELDS, in that order.
SET_WITH_IMAGES = """
s.*, (
    SELECT array_agg(ROW(
        i.id, i.set_id, i.image_url, i.thumbnail_url, i.position, i.created_at
    ) ORDER BY i.position, i.created_at, i.id)
    FROM set_images i WHERE i.set_id = s.id
) AS images
"""
IMAGE_FIELDS = ("id", "set_id", "image_url", "thumbnail_url", "position", "created_at")


def owner(user_id: object) -> str:
    """The caller's Cognito ``sub``, checked: every query is scoped by it."""
    if not isinstance(user_id, str) or not user_id.strip():
        raise InvalidInputError.single("user_id", "must be a non-empty string")
    if len(user_id) > MAX_USER_ID:
        raise InvalidInputError.single("user_id", f"must be at most {MAX_USER_ID} characters")
    try:
        return storable_text(user_id)
    except ValueError as error:
        raise InvalidInputError.single("user_id", str(error)) from None


def parse_id(value: object, field: str) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidInputError.single(field, "must be a UUID")


def validate(model: type[Dto], data: Dto | Mapping[str, Any]) -> Dto:
    """Accept the DTO itself (checked again) or a plain mapping; a failure names every bad
    field."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        raise invalid_input(error) from None


def invalid_input(error: pydantic.ValidationError, *prefix: str) -> InvalidInputError:
    """Every problem pydantic found, each located by its dotted path (after ``prefix``)."""
    return InvalidInputError(
        [
            FieldError(
                ".".join([*prefix, *(str(part) for part in item["loc"])]) or "input", item["msg"]
            )
            for item in error.errors()
        ]
    )


Out = TypeVar("Out", bound=pydantic.BaseModel)


def to_dto(model: type[Out], row: Mapping[str, Any]) -> Out:
    """A database row as an output DTO (pydantic-core measured 2x faster than
    ``model_construct``, and it re-checks the row's types for free).

    A row can only fail if another client stored something outside the contract (say, a
    NULL inside tags): that is still a sets-db error, never a pydantic one.
    """
    try:
        return model.model_validate(row)
    except pydantic.ValidationError as error:
        raise SetsDbError(
            f"stored data does not fit the schema ({model.__name__}): {error}"
        ) from None


def to_set(row: Mapping[str, Any]) -> SetOut:
    """A row of ``SELECT SET_WITH_IMAGES`` as a DTO."""
    return to_dto(
        SetOut,
        {
            **row,
            "tags": row["tags"] or [],
            "images": [dict(zip(IMAGE_FIELDS, i, strict=True)) for i in row["images"] or ()],
        },
    )


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def translate(error: Exception) -> SetsDbError:
    """The one mapping from driver/ORM exceptions to the sets-db error tree."""
    root = _root_cause(error)
    # Before the connection errors: a cancelled statement is an OperatorInterventionError too.
    if isinstance(root, asyncpg.QueryCanceledError):
        return QueryTimeoutError("the query ran past the statement timeout and was cancelled")
    if isinstance(root, asyncpg.IntegrityConstraintViolationError) or isinstance(
        error, IntegrityError
    ):
        return ConflictError(f"the write conflicts with existing data: {root}")
    if isinstance(root, asyncpg.TransactionRollbackError):
        # serialization failure or deadlock: nothing was written, a retry may succeed
        return ConflictError(f"the write collided with a concurrent one: {root}")
    if isinstance(
        root,
        OSError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | asyncpg.OperatorInterventionError  # AdminShutdown (terminated), CannotConnectNow
        | asyncpg.TooManyConnectionsError
        | DBConnectionError,
    ):
        return DatabaseUnavailableError(f"the database is unavailable: {type(root).__name__}")
    if isinstance(root, asyncpg.DataError):
        return InvalidInputError.single("input", str(root))
    return SetsDbError(f"database error: {type(root).__name__}: {root}")


_TRANSLATED = (BaseORMException, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

# One round trip: assume the role and name the owner, both only until the transaction ends
# (``is_local``), so a pooled connection never carries them into someone else's request.
_AS_OWNER_WITH_ROLE = "SELECT set_config('role', $1, true), set_config('sets_db.user_id', $2, true)"


async def _as_owner(conn: Connection, user_id: str, role: str) -> None:
    """RLS mode: what the row-level security policies of migration 3 read."""
    await conn.execute_query(_AS_OWNER_WITH_ROLE, [role, user_id])


@asynccontextmanager
async def reading(user_id: str) -> AsyncIterator[Connection]:
    """The owner's connection for read statements.

    By default a pooled connection with no transaction round trips. In RLS mode
    (``SETS_DB_RLS_ROLE``) a short transaction that first assumes the application role and
    the owner, because ``SET LOCAL`` lasts for one transaction only.
    """
    role = rls_role()
    try:
        if role is None:
            yield connections.get("default")
        else:
            async with in_transaction("default") as conn:
                await _as_owner(conn, user_id, role)
                yield conn
    except _TRANSLATED as error:
        raise translate(error) from error


@asynccontextmanager
async def transaction(user_id: str) -> AsyncIterator[Connection]:
    """One unit of work for the owner: every statement inside commits together or not at all.

    In RLS mode it first assumes the application role and the owner (see ``reading``); the
    table owner bypasses the policies, so without RLS mode there is nothing to set.
    """
    role = rls_role()
    try:
        async with in_transaction("default") as conn:
            if role is not None:
                await _as_owner(conn, user_id, role)
            yield conn
    except _TRANSLATED as error:
        raise translate(error) from error


async def lock_set(conn: Connection, user_id: str, set_id: UUID) -> bool:
    """Lock the owner's set row for this transaction; False if there is no such set.

    Image writes to one set queue up on this lock, which is what keeps positions gap-free
    and unique under concurrency.
    """
    rows = await conn.execute_query_dict(
        "SELECT id FROM sets WHERE id = $1 AND user_id = $2 FOR UPDATE", [set_id, user_id]
    )
    return bool(rows)


FETCH_SET_SQL = f"SELECT {SET_WITH_IMAGES} FROM sets s WHERE s.id = $1 AND s.user_id = $2"


async def fetch_set(conn: Connection, user_id: str, set_id: UUID) -> SetOut | None:
    rows = await conn.execute_query_dict(FETCH_SET_SQL, [set_id, user_id])
    return to_set(rows[0]) if rows else None
