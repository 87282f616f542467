"""What every service shares: input checks, connections, and the ONE place where driver
and ORM exceptions become ``sets_db.errors``.
"""

from __future__ import annotations

import json
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

from sets_db.errors import (
    ConflictError,
    DatabaseUnavailableError,
    FieldError,
    InvalidInputError,
    QueryTimeoutError,
    SetsDbError,
)
from sets_db.schemas import ImageOut, SetOut

Connection = BaseDBAsyncClient
Dto = TypeVar("Dto", bound=pydantic.BaseModel)

MAX_USER_ID = 255

# A set's columns plus its images (position order) as one JSON array: one round trip.
SET_WITH_IMAGES = """
s.*, COALESCE((
    SELECT json_agg(json_build_object(
        'id', i.id, 'set_id', i.set_id, 'image_url', i.image_url,
        'thumbnail_url', i.thumbnail_url, 'position', i.position, 'created_at', i.created_at
    ) ORDER BY i.position, i.created_at, i.id)
    FROM set_images i WHERE i.set_id = s.id
), '[]') AS images
"""


def owner(user_id: object) -> str:
    """The caller's Cognito ``sub``, checked: every query is scoped by it."""
    if not isinstance(user_id, str) or not user_id.strip():
        raise InvalidInputError.single("user_id", "must be a non-empty string")
    if len(user_id) > MAX_USER_ID or "\x00" in user_id:
        raise InvalidInputError.single("user_id", f"must be at most {MAX_USER_ID} characters")
    return user_id


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
    """Accept the DTO itself or a plain mapping; a failure names every bad field."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        raise InvalidInputError(
            [
                FieldError(".".join(str(part) for part in item["loc"]) or "input", item["msg"])
                for item in error.errors()
            ]
        ) from None


def to_set(row: Mapping[str, Any]) -> SetOut:
    """A row of ``SELECT SET_WITH_IMAGES`` as a DTO."""
    images = json.loads(row["images"])
    return SetOut.model_validate(
        {**row, "tags": row["tags"] or [], "images": [ImageOut.model_validate(i) for i in images]}
    )


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def translate(error: Exception) -> SetsDbError:
    """The one mapping from driver/ORM exceptions to the sets-db error tree."""
    root = _root_cause(error)
    if isinstance(root, asyncpg.QueryCanceledError):
        return QueryTimeoutError("the query ran past the statement timeout and was cancelled")
    if isinstance(root, asyncpg.IntegrityConstraintViolationError) or isinstance(
        error, IntegrityError
    ):
        return ConflictError(f"the write conflicts with existing data: {root}")
    if isinstance(
        root,
        OSError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | asyncpg.OperatorInterventionError
        | asyncpg.CannotConnectNowError
        | DBConnectionError,
    ):
        return DatabaseUnavailableError(f"the database is unavailable: {type(root).__name__}")
    if isinstance(root, asyncpg.DataError):
        return InvalidInputError.single("input", str(root))
    return SetsDbError(f"database error: {type(root).__name__}: {root}")


_TRANSLATED = (BaseORMException, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@asynccontextmanager
async def reading() -> AsyncIterator[Connection]:
    """A pooled connection for a single read statement (no transaction round trips)."""
    try:
        yield connections.get("default")
    except _TRANSLATED as error:
        raise translate(error) from error


@asynccontextmanager
async def transaction() -> AsyncIterator[Connection]:
    """One unit of work: every statement inside commits together or not at all."""
    try:
        async with in_transaction("default") as conn:
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


async def fetch_set(conn: Connection, user_id: str, set_id: UUID) -> SetOut | None:
    rows = await conn.execute_query_dict(
        f"SELECT {SET_WITH_IMAGES} FROM sets s WHERE s.id = $1 AND s.user_id = $2",
        [set_id, user_id],
    )
    return to_set(rows[0]) if rows else None
