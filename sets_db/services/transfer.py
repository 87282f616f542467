"""Bulk import and export of one owner's collection.

Import checks the rows a slice at a time (the event loop gets a turn between slices), encodes
them in COPY's binary format meanwhile (``copy_binary``), and loads each batch with
PostgreSQL ``COPY`` while the next one is checked, all inside one transaction: all rows or
none, memory bounded by a few batches, at the speed of a bare ``COPY``. The server is the
bottleneck: it spends about 150 us on a set with its images, the client about 50 on checking
and encoding it, so checking the next batch fits in the time the server works on the last.
Export streams through a server-side cursor, so memory stays flat whatever the size of the
collection.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import asyncpg
import pydantic

from sets_db.config import settings
from sets_db.errors import FieldError, InvalidInputError, SchemaMismatchError
from sets_db.models import Set, SetImage
from sets_db.schemas import SetCreate, SetOut, checked_user_id
from sets_db.services.copy_binary import (
    HEADER,
    IMAGE_COLUMNS,
    SET_COLUMNS,
    TRAILER,
    Encoded,
    encode,
    mismatched_columns,
)
from sets_db.services.rows import SETS, set_with_images, to_sets
from sets_db.sessions import owner_read, owner_transaction

# One validation call per batch: pydantic reports every bad row, each error located by (row
# index, field).
_ROWS = pydantic.TypeAdapter(list[SetCreate], config=pydantic.ConfigDict(defer_build=True))

# Newest first, like list_sets' default page, which is the order of sets_user_created_idx.
EXPORT_SQL = f"""
SELECT {set_with_images("s")} FROM {SETS} s
WHERE s.user_id = $1
ORDER BY s.created_at DESC, s.id DESC
"""

EXPORT_CURSOR = "sets_db_export"


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a synchronous burst of allocations.

    Validating a big batch creates hundreds of thousands of objects, and the collector kept
    rescanning them: it doubled the validation time (measured: 0.52 s vs 0.23 s for 20k
    rows). Only for synchronous code: no other task runs meanwhile, and reference counting
    still frees everything acyclic.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# Rows are checked a slice at a time (the event loop gets a turn between slices) and copied
# per batch, while the next batch is checked (``gathered``): memory stays at two batches, the
# one being copied and the next one, at most BATCH_ROWS sets each (about 540 bytes a set
# with its images, encoded).
BATCH_ROWS = 10_000
# Rows checked between two turns of the event loop: a slice takes 4-7 ms here, and a COPY
# that has ended waits for the slice being checked before the next one starts.
SLICE_ROWS = 100
# An import with many bad rows reports the first ones and the total, not a megabyte of errors.
MAX_REPORTED = 100


def copy_rows(user_id: str, sets: list[SetCreate]) -> Encoded:
    """The COPY rows of validated sets (for ``copy_batches``), new ids made here."""
    with _cyclic_gc_paused():
        return encode(user_id, sets)


@dataclass
class Batch:
    """Encoded slices gathered for one COPY into each table."""

    count: int = 0
    sets: list[bytes] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)

    def add(self, rows: Encoded) -> None:
        self.count += rows.set_count
        self.sets.append(rows.sets)
        self.images.append(rows.images)


async def _copy_data(chunks: list[bytes]) -> AsyncIterator[bytes]:
    """One COPY's data: asyncpg sends each chunk as it comes, so the server starts on the
    first slice's rows at once."""
    yield HEADER
    for chunk in chunks:
        yield chunk
    yield TRAILER


class _Copier:
    """COPYs batches into the tables on one connection, inside the caller's transaction."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw
        self.staged: set[str] = set()

    async def copy(self, table: str, columns: tuple[str, ...], chunks: list[bytes]) -> None:
        chunks = [chunk for chunk in chunks if chunk]
        if not chunks:
            return
        if settings().rls_role is None:
            await self._copy_in(table, "public", columns, chunks)
            return
        # PostgreSQL refuses COPY FROM into a table whose row-level security applies to the
        # current role; a temporary table takes each COPY and an INSERT applies the policies.
        staging = f"import_{table}"
        names = ", ".join(columns)
        if staging not in self.staged:
            await self.raw.execute(
                f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS"
                f" SELECT {names} FROM public.{table} WITH NO DATA"
            )
            self.staged.add(staging)
        await self._copy_in(staging, "pg_temp", columns, chunks)
        await self.raw.execute(
            f"INSERT INTO public.{table} ({names}) SELECT {names} FROM pg_temp.{staging}"
        )
        await self.raw.execute(f"TRUNCATE pg_temp.{staging}")

    async def _copy_in(
        self, table: str, schema: str, columns: tuple[str, ...], chunks: list[bytes]
    ) -> None:
        await self.raw.copy_to_table(
            table,
            source=_copy_data(chunks),
            columns=columns,
            schema_name=schema,
            format="binary",
        )

    async def copy_batch(self, batch: Batch) -> None:
        await self.copy(Set._meta.db_table, SET_COLUMNS, batch.sets)
        await self.copy(SetImage._meta.db_table, IMAGE_COLUMNS, batch.images)


# Each image row's foreign key check looks its set up with a plan the server makes once per
# connection and keeps (custom for five runs, then generic). Made while the statistics call
# ``sets`` small (emptied and VACUUMed, or a few sets: a new deployment), that plan is a
# sequential scan, and an import then reads every set copied so far for each image row:
# quadratic, 20,000 sets in 39 s instead of 2 s. So for this transaction the planner may not
# pick a sequential scan where an index serves (nothing else here has a choice: the summary
# triggers read their transition tables, RLS mode's INSERT ... SELECT its staging table), and
# plans made before, under older statistics, are dropped: the check is planned again, by
# index, and stays so.
# set_config(..., true) is SET LOCAL, written as the transactions' preludes write it.
INDEXED_CHECKS = "SELECT set_config('enable_seqscan', 'off', true); DISCARD PLANS"

# The tables the import writes, locked as its COPYs lock them (ROW EXCLUSIVE: other writers
# go on) but before their column types are checked: a change of type another client makes
# after the check waits for the import.
LOCK_WRITTEN_TABLES = (
    f"LOCK TABLE public.{Set._meta.db_table}, public.{SetImage._meta.db_table}"
    " IN ROW EXCLUSIVE MODE"
)
# The live types of the columns the import writes: its rows are encoded for the schema's
# (``copy_binary``), and another client may have changed one since the migrations ran.
LIVE_COLUMN_TYPES = f"""
SELECT c.relname AS "table", a.attname AS "column", a.atttypid::regtype::text AS "type"
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE a.attrelid IN ('public.{Set._meta.db_table}'::regclass,
                     'public.{SetImage._meta.db_table}'::regclass)
  AND a.attnum > 0 AND NOT a.attisdropped
"""


async def _check_column_types(raw: asyncpg.Connection) -> None:
    live = {
        (row["table"], row["column"]): row["type"] for row in await raw.fetch(LIVE_COLUMN_TYPES)
    }
    if mismatched := mismatched_columns(live):
        raise SchemaMismatchError(
            f"the import cannot write these columns: {'; '.join(mismatched)}"
            " (sets-db migrate --check lists what changed)"
        )


async def copy_batches(user_id: str, slices: AsyncGenerator[Encoded | None, None]) -> int:
    """COPY validated sets (slices of them, encoded by ``copy_rows``; None for a slice with a
    bad row, see ``gathered``), batch by batch, in ONE transaction; if ``slices`` raises,
    nothing is written. Returns the number of sets.

    The next batch is being checked while the current one is copied, and handed over as
    soon as that COPY is done."""
    user_id = checked_user_id(user_id)
    count = 0
    copying = False  # the copier is busy: the batch being checked grows meanwhile
    batches: AsyncGenerator[Batch, None] | None = None
    ahead: asyncio.Future[Batch | None] | None = None
    try:
        async with owner_transaction(user_id) as session:
            await session.raw.execute(f"{INDEXED_CHECKS}; {LOCK_WRITTEN_TABLES}")
            await _check_column_types(session.raw)
            copier = _Copier(session.raw)
            batches = gathered(slices, lambda: not copying)
            ahead = asyncio.ensure_future(anext(batches, None))
            while (batch := await ahead) is not None:
                ahead = asyncio.ensure_future(anext(batches, None))
                copying = True
                await copier.copy_batch(batch)
                count += batch.count
                copying = False
    finally:
        if ahead is not None:
            await _stop(ahead)
        if batches is not None:
            await batches.aclose()
    return count


async def _stop(ahead: asyncio.Future[Any]) -> None:
    """Stop a read-ahead the copying no longer wants (it failed, or was cancelled), and drop
    its result. Waiting for it instead kept reading and checking the rows of a whole batch,
    and forever if the caller's rows had stopped coming (an upload that stopped sending)."""
    ahead.cancel()
    await asyncio.wait([ahead])
    if not ahead.cancelled():
        ahead.exception()


def _checked_batch(
    user_id: str, rows: list[Any], offset: int, clean: bool
) -> tuple[Encoded | None, list[FieldError]]:
    # One pause around both: the validated sets are dropped before the collector runs
    # again, so it never scans them.
    with _cyclic_gc_paused():
        try:
            sets = _ROWS.validate_python(rows)
        except pydantic.ValidationError as error:
            return None, _located(error, offset)
        encoded = encode(user_id, sets) if clean else None
        del sets
    return encoded, []


def _located(error: pydantic.ValidationError, offset: int) -> list[FieldError]:
    """pydantic's errors of one batch, located as ``rows.<index in all rows>.<field>``."""
    located = []
    for item in error.errors():
        index, *rest = item["loc"] or ("",)
        row = str(index + offset) if isinstance(index, int) else str(index)
        path = ".".join(["rows", row, *map(str, rest)]).rstrip(".")
        located.append(FieldError(path, item["msg"]))
    return located


async def _chunks(rows: Iterable[Any] | AsyncIterable[Any]) -> AsyncGenerator[list[Any], None]:
    if isinstance(rows, AsyncIterable):
        chunk: list[Any] = []
        async for row in rows:
            chunk.append(row)
            if len(chunk) == SLICE_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        return
    iterator = iter(rows)
    while chunk := list(islice(iterator, SLICE_ROWS)):
        yield chunk


async def _after_ready_io() -> None:
    """Give the event loop a turn, and resume only after the tasks that the I/O ready by then
    wakes (the copier, when the server has finished a COPY).

    ``asyncio.sleep(0)`` resumes first in the loop's next turn, before the callbacks of the
    I/O that turn finds: the copier, woken by the server's reply during a slice, waited for
    the rest of that slice and up to two more, and the server with it, at every COPY (the
    server was idle 8% of an import, against 3.5% of a bare COPY). A timer due at once runs
    after the I/O callbacks, and the loop does not sleep for it. (uvloop makes such a timer
    a plain ``call_soon``: there this is ``sleep(0)`` again.)"""
    loop = asyncio.get_running_loop()
    resumed = loop.create_future()
    loop.call_later(0, _resume, resumed)
    await resumed


def _resume(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled meanwhile
        future.set_result(None)


async def gathered(
    slices: AsyncGenerator[Encoded | None, None], waiting: Callable[[], bool]
) -> AsyncGenerator[Batch, None]:
    """Checked slices of rows, gathered into batches. ``None`` stands for a slice that will
    not be written (it, or an earlier one, had a bad row): from then on nothing is yielded,
    but the slices are still read to the end so that every row is checked. Checking is CPU
    work: before each slice the event loop gets a turn.

    A batch ends when the copier is ``waiting`` for it (it has copied the last one), or at
    ``BATCH_ROWS``: the server never waits for more than the slice being checked, and the
    batches grow as far as the checking gets ahead of the server (it spends about 50 us on a
    set, the server about 150). The first one is the first slice. Doubling each batch instead
    left the server waiting up to 64 ms while the next batch was checked, 3-5% of an import."""
    batch = Batch()
    writing = True
    async with aclosing(slices) as pending:
        while True:
            # Before the slice, not after: reading the next slice is what checks it.
            await _after_ready_io()
            try:
                rows = await anext(pending)
            except StopAsyncIteration:
                break
            if rows is None:
                writing = False
            elif writing:
                batch.add(rows)
                if batch.count >= BATCH_ROWS or waiting():
                    yield batch
                    batch = Batch()
    if writing and batch.count:
        yield batch


async def _checked_slices(
    user_id: str, rows: Iterable[Any] | AsyncIterable[Any]
) -> AsyncGenerator[Encoded | None, None]:
    """Each slice's encoded rows (None once a row failed); at the end, one InvalidInputError
    with the first ``MAX_REPORTED`` problems and the total."""
    problems: list[FieldError] = []
    total = offset = 0
    async with aclosing(_chunks(rows)) as chunks:
        async for chunk in chunks:
            checked, errors = _checked_batch(user_id, chunk, offset, not total)
            offset += len(chunk)
            total += len(errors)
            problems += errors[: MAX_REPORTED - len(problems)]
            yield checked
    if total > len(problems):
        problems.append(
            FieldError("rows", f"{total} problems in all; the first {len(problems)} are listed")
        )
    if problems:
        raise InvalidInputError(problems)


def _iterable(rows: object) -> Iterable[Any] | AsyncIterable[Any]:
    if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable | AsyncIterable):
        raise InvalidInputError.single("rows", "must be an iterable of sets")
    return rows


async def import_sets(
    *,
    user_id: str,
    rows: Iterable[SetCreate | Mapping[str, Any]] | AsyncIterable[SetCreate | Mapping[str, Any]],
) -> int:
    """Add many sets (with their images) to the owner's collection; returns how many.

    ``rows`` (an iterable or an async iterable) is read, checked and copied in batches of
    ``BATCH_ROWS``, inside one transaction: every row is written or none is. A bad row stops
    the copying; the rest is still checked, and one InvalidInputError lists the first
    ``MAX_REPORTED`` problems, located as ``rows.<index>.<field>``, then the total.
    """
    user_id = checked_user_id(user_id)
    return await copy_batches(user_id, _checked_slices(user_id, _iterable(rows)))


MAX_EXPORT_BATCH = 100_000


async def export_sets(*, user_id: str, batch_size: int = 1000) -> AsyncGenerator[SetOut, None]:
    """Every set of the owner, with its images, newest first, streamed.

    A server-side cursor fetches ``batch_size`` rows at a time, so memory stays flat. The
    export is one consistent snapshot (one read transaction) on a pooled connection of its
    own, never the caller's: other service calls inside the loop work, and stopping early
    (``break``, with or without ``contextlib.aclosing``) releases it.
    """
    user_id = checked_user_id(user_id)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise InvalidInputError.single("batch_size", "must be an integer")
    if not 1 <= batch_size <= MAX_EXPORT_BATCH:
        raise InvalidInputError.single("batch_size", f"must be between 1 and {MAX_EXPORT_BATCH}")
    async with owner_read(user_id, snapshot=True) as session:
        # DECLARE/FETCH rather than asyncpg's cursor(): that one always prepares a named
        # statement, which outlives the transaction on a transaction pooler's server
        # connection and collides with the next client's statement of the same name.
        await session.raw.execute(
            f"DECLARE {EXPORT_CURSOR} NO SCROLL CURSOR FOR {EXPORT_SQL}", user_id
        )
        fetch = f"FETCH {batch_size} FROM {EXPORT_CURSOR}"
        while rows := await session.raw.fetch(fetch):
            for item in to_sets(rows):
                yield item
