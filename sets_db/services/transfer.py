"""Bulk import and export of one owner's collection.

Import checks every row first and then loads them with PostgreSQL ``COPY`` (asyncpg's binary
``copy_records_to_table``) inside one transaction: all rows or none, at close to the speed of
a bare ``COPY``. Export streams through a server-side cursor, so memory stays flat whatever
the size of the collection.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pydantic

from sets_db.config import rls_role
from sets_db.errors import InvalidInputError
from sets_db.schemas import SetCreate, SetOut
from sets_db.services._base import (
    SET_WITH_IMAGES,
    Connection,
    invalid_input,
    owner,
    to_set,
    transaction,
)

# Every writable column; id is made here (the images must point at it), created_at and
# updated_at come from the database defaults as for ``create_set``.
SET_COLUMNS = (
    "id",
    "user_id",
    "title",
    "set_number",
    "store",
    "source_url",
    "piece_count",
    "release_date",
    "theme",
    "tags",
    "notes",
    "is_built",
    "quantity",
    "purchase_price",
    "tax",
    "shipping",
    "purchase_date",
    "wishlist_item_id",
)
# The image ids come from the database default.
IMAGE_COLUMNS = ("set_id", "image_url", "thumbnail_url", "position")

# One validation call for the whole batch: pydantic reports every bad row, each error located
# by (row index, field), and passes SetCreate instances through as they are.
_ROWS = pydantic.TypeAdapter(list[SetCreate])

# Newest first, like list_sets' default page, which is the order of sets_user_created_idx.
EXPORT_SQL = f"""
SELECT {SET_WITH_IMAGES} FROM sets s
WHERE s.user_id = $1
ORDER BY s.created_at DESC, s.id DESC
"""

Record = tuple[Any, ...]


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a synchronous burst of allocations.

    Validating a big batch (and building its COPY records) creates hundreds of thousands of
    long-lived objects, and the collector kept rescanning them: it doubled the validation
    time (measured: 0.52 s vs 0.23 s for 20k rows). Only for synchronous code: no other
    task runs meanwhile, and reference counting still frees everything acyclic.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _validated(rows: Iterable[SetCreate | Mapping[str, Any]]) -> list[SetCreate]:
    try:
        with _cyclic_gc_paused():
            # pydantic takes any iterable of rows and rejects None or a string, unlike list().
            return _ROWS.validate_python(rows)
    except pydantic.ValidationError as error:
        raise invalid_input(error, "rows") from None


def _records(user_id: str, sets: list[SetCreate]) -> tuple[list[Record], list[Record]]:
    """The COPY records of the sets and of their images (which point at the new set ids)."""
    set_records: list[Record] = []
    image_records: list[Record] = []
    for data in sets:
        set_id = uuid.uuid4()
        set_records.append(
            (
                set_id,
                user_id,
                data.title,
                data.set_number,
                data.store,
                data.source_url,
                data.piece_count,
                data.release_date,
                data.theme,
                data.tags,
                data.notes,
                data.is_built,
                data.quantity,
                data.purchase_price,
                data.tax,
                data.shipping,
                data.purchase_date,
                data.wishlist_item_id,
            )
        )
        image_records.extend(
            (set_id, image.image_url, image.thumbnail_url, position)
            for position, image in enumerate(data.images)
        )
    return set_records, image_records


async def _copy(
    conn: Connection, table: str, columns: tuple[str, ...], records: Iterable[Record]
) -> None:
    async with conn.acquire_connection() as raw:
        if rls_role() is None:
            await raw.copy_records_to_table(table, records=records, columns=columns)
            return
        # PostgreSQL refuses COPY FROM into a table whose row-level security applies to the
        # current role; a temporary table takes the COPY and one INSERT applies the policies.
        staging = f"import_{table}"
        await raw.execute(
            f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS"
            f" SELECT {', '.join(columns)} FROM {table} WITH NO DATA"
        )
        await raw.copy_records_to_table(staging, records=records, columns=columns)
        names = ", ".join(columns)
        await raw.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging}")


async def import_sets(*, user_id: str, rows: Iterable[SetCreate | Mapping[str, Any]]) -> int:
    """Add many sets (with their images) to the owner's collection; returns how many.

    Every row is checked before anything is written; one InvalidInputError lists every
    problem, located as ``rows.<index>.<field>``. Then all rows are written in one
    transaction or none is.
    """
    user_id = owner(user_id)
    sets = _validated(rows)
    if not sets:
        return 0
    with _cyclic_gc_paused():
        set_records, image_records = _records(user_id, sets)
    async with transaction(user_id) as conn:
        await _copy(conn, "sets", SET_COLUMNS, set_records)
        if image_records:
            await _copy(conn, "set_images", IMAGE_COLUMNS, image_records)
    return len(set_records)


async def export_sets(*, user_id: str, batch_size: int = 1000) -> AsyncIterator[SetOut]:
    """Every set of the owner, with its images, newest first, streamed.

    A server-side cursor fetches ``batch_size`` rows at a time, so memory stays flat. The
    export is one consistent snapshot (one read transaction) that holds a pooled connection
    until the iteration ends: to stop early, close it (``contextlib.aclosing``).
    """
    user_id = owner(user_id)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError.single("batch_size", "must be a positive integer")
    async with transaction(user_id) as conn, conn.acquire_connection() as raw:
        async for row in raw.cursor(EXPORT_SQL, user_id, prefetch=batch_size):
            yield to_set(row)
