"""Bulk import and export of one owner's collection.

Import checks the rows a slice at a time (the event loop gets a turn between slices) and
loads each batch with PostgreSQL ``COPY`` (asyncpg's binary ``copy_records_to_table``) while
the next one is checked, all inside one transaction: all rows or none, memory bounded by a
few batches, at close to the speed of a bare ``COPY``. The server is the bottleneck, so the
client's work is ordered around it: feeding a COPY goes first (the server waits for those
records), checking the next batch fills the time in which the server works on the last
one. Export streams through a server-side cursor, so memory stays flat whatever the size of
the collection.
"""

from __future__ import annotations

import asyncio
import gc
import operator
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import contextmanager
from itertools import islice
from typing import Any

import asyncpg
import pydantic

from sets_db.config import settings
from sets_db.errors import FieldError, InvalidInputError
from sets_db.models import Set, SetImage
from sets_db.schemas import SetCreate, SetOut, checked_user_id
from sets_db.services.rows import SETS, set_with_images, to_sets
from sets_db.sessions import owner_read, owner_transaction

# Every writable column: the input DTO's fields; id is made here (the images must point at
# it), created_at and updated_at come from the database defaults as for ``create_set``.
WRITABLE_FIELDS = tuple(name for name in SetCreate.model_fields if name != "images")
SET_COLUMNS = ("id", "user_id", *WRITABLE_FIELDS)
_writable_values = operator.attrgetter(*WRITABLE_FIELDS)
# The values of a set's record the garbage collector would track (see _records).
_TAGS = WRITABLE_FIELDS.index("tags")
_WISHLIST = WRITABLE_FIELDS.index("wishlist_item_id")
# The image ids come from the database default.
IMAGE_COLUMNS = ("set_id", "image_url", "thumbnail_url", "position")

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


def _new_ids(count: int) -> list[str]:
    """``count`` random version 4 UUIDs (what ``gen_random_uuid()`` makes), as text: one
    ``os.urandom`` call for all of them, 0.3 us an id where ``uuid.uuid4().hex`` took 2.8-4.3
    (a third of making a set's records)."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(byte & 0x0F | 0x40 for byte in raw[6::16])  # version 4
    raw[8::16] = bytes(byte & 0x3F | 0x80 for byte in raw[8::16])  # RFC 4122 variant
    text = raw.hex()
    return [text[start : start + 32] for start in range(0, 32 * count, 32)]


def _records(user_id: str, sets: list[SetCreate]) -> tuple[list[Record], list[Record]]:
    """The COPY records of the sets and of their images (which point at the new set ids).

    A record lives until its batch is copied, long enough to reach the collector's oldest
    generation, and the full collections that set off rescan the caller's whole heap (with
    a list of 100k rows: 6-7 of them, 0.6-1.2 s, per 100k-row import). So the records hold
    no object the collector tracks: UUIDs as text (asyncpg sends the same 16 bytes), the
    tags as a tuple. An image's record is then untracked at its first collection, a set's
    stays the one tracked object per set (a tuple holding a tuple always does), and an
    import sets off at most one full collection.
    """
    set_records: list[Record] = []
    image_records: list[Record] = []
    for data, set_id in zip(sets, _new_ids(len(sets)), strict=True):
        values = list(_writable_values(data))
        values[_TAGS] = tuple(values[_TAGS])
        if values[_WISHLIST] is not None:
            values[_WISHLIST] = str(values[_WISHLIST])
        set_records.append((set_id, user_id, *values))
        image_records.extend(
            (set_id, image.image_url, image.thumbnail_url, position)
            for position, image in enumerate(data.images)
        )
    return set_records, image_records


RecordBatch = tuple[list[Record], list[Record]]
# Rows are checked a slice at a time (the event loop gets a turn between slices) and copied
# per batch: memory stays at a few batches, and checking batch N+1 overlaps with the COPY of
# batch N, which mostly waits for the server. Batches are big because the server idles
# while the client encodes the first 512 kB of each COPY statement (asyncpg sends nothing
# before; ~15 ms for the sets of a batch): at 2,000 rows that was nearly all the encoding,
# 10% of an import's time; at 10,000 2-3%. The price is memory: two batches of records
# at once (the one being copied, the next one), about 1.5 kB a row with its images.
BATCH_ROWS = 10_000
# Rows checked between two turns of the event loop (a few milliseconds of work).
SLICE_ROWS = 100
# COPY records encoded between two turns of the event loop.
PACE_RECORDS = 250
# An import with many bad rows reports the first ones and the total, not a megabyte of errors.
MAX_REPORTED = 100


def copy_records(user_id: str, sets: list[SetCreate]) -> RecordBatch:
    """The COPY records of validated sets (for ``copy_batches``), new ids made here."""
    with _cyclic_gc_paused():
        return _records(user_id, sets)


class _Copier:
    """COPYs batches into the tables on one connection, inside the caller's transaction.

    ``serving`` is set while the server, not this client, has the work: checking the next
    batch waits for it (``gathered``), since the server can do nothing until the records
    of the current COPY are encoded and sent.
    """

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw
        self.staged: set[str] = set()
        self.serving = asyncio.Event()
        self.serving.set()

    async def _paced(self, records: list[Record]) -> AsyncIterator[Record]:
        """The records, with a turn of the event loop every ``PACE_RECORDS``: asyncpg encodes a
        COPY without yielding, which held the loop for tens of milliseconds per batch. Once
        all are handed over, the server has the work."""
        for start in range(0, len(records), PACE_RECORDS):
            for record in records[start : start + PACE_RECORDS]:
                yield record
            await asyncio.sleep(0)
        self.serving.set()

    async def copy(self, table: str, columns: tuple[str, ...], records: list[Record]) -> None:
        if not records:
            return
        self.serving.clear()
        try:
            await self._copy(table, columns, records)
        finally:
            self.serving.set()  # also when the COPY failed: the checking must not wait forever

    async def _copy(self, table: str, columns: tuple[str, ...], records: list[Record]) -> None:
        if settings().rls_role is None:
            await self.raw.copy_records_to_table(
                table, records=self._paced(records), columns=columns, schema_name="public"
            )
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
        await self.raw.copy_records_to_table(
            staging, records=self._paced(records), columns=columns, schema_name="pg_temp"
        )
        await self.raw.execute(
            f"INSERT INTO public.{table} ({names}) SELECT {names} FROM pg_temp.{staging}"
        )
        await self.raw.execute(f"TRUNCATE pg_temp.{staging}")

    async def copy_batch(self, batch: RecordBatch) -> None:
        await self.copy(Set._meta.db_table, SET_COLUMNS, batch[0])
        await self.copy(SetImage._meta.db_table, IMAGE_COLUMNS, batch[1])


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


async def copy_batches(user_id: str, slices: AsyncIterable[RecordBatch | None]) -> int:
    """COPY the records of validated sets (slices of them, from ``copy_records``; None for
    a slice with a bad row, see ``gathered``), batch by batch, in ONE transaction; if
    ``slices`` raises, nothing is written. Returns the number of sets.

    The next batch is being prepared while the current one is copied."""
    user_id = checked_user_id(user_id)
    count = 0
    batches: AsyncGenerator[RecordBatch, None] | None = None
    ahead: asyncio.Future[RecordBatch | None] | None = None
    try:
        async with owner_transaction(user_id) as session:
            await session.raw.execute(INDEXED_CHECKS)
            copier = _Copier(session.raw)
            batches = gathered(slices, copier.serving.wait)
            ahead = asyncio.ensure_future(anext(batches, None))
            while (batch := await ahead) is not None:
                ahead = asyncio.ensure_future(anext(batches, None))
                await copier.copy_batch(batch)
                count += len(batch[0])
    finally:
        if ahead is not None:
            await _settle(ahead)
        if batches is not None:
            await batches.aclose()
    return count


async def _settle(ahead: asyncio.Future[Any]) -> None:
    """Let a read-ahead finish (a running async generator cannot be closed) and drop its
    result."""
    if not ahead.done():
        await asyncio.wait([ahead])
    if not ahead.cancelled():
        ahead.exception()


def _checked_batch(
    user_id: str, rows: list[Any], offset: int, clean: bool
) -> tuple[RecordBatch | None, list[FieldError]]:
    # One pause around both: the validated sets are dropped before the collector runs
    # again, so it never scans them.
    with _cyclic_gc_paused():
        try:
            sets = _ROWS.validate_python(rows)
        except pydantic.ValidationError as error:
            return None, _located(error, offset)
        records = _records(user_id, sets) if clean else None
        del sets
    return records, []


def _located(error: pydantic.ValidationError, offset: int) -> list[FieldError]:
    """pydantic's errors of one batch, located as ``rows.<index in all rows>.<field>``."""
    located = []
    for item in error.errors():
        index, *rest = item["loc"] or ("",)
        row = str(index + offset) if isinstance(index, int) else str(index)
        path = ".".join(["rows", row, *map(str, rest)]).rstrip(".")
        located.append(FieldError(path, item["msg"]))
    return located


async def _chunks(rows: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[list[Any]]:
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


async def _no_wait() -> None:
    pass


async def gathered(
    slices: AsyncIterable[RecordBatch | None], turn: Callable[[], Awaitable[object]] = _no_wait
) -> AsyncGenerator[RecordBatch, None]:
    """The COPY records of checked slices of rows, gathered into batches of ``BATCH_ROWS``
    sets. ``None`` stands for a slice that will not be written (it, or an earlier one, had a
    bad row): from then on nothing is yielded, but the slices are still read to the end so
    that every row is checked. Checking is CPU work: before each slice the event loop gets a
    turn, then ``turn`` is awaited (``copy_batches``: until the server has the work).

    The first batch is one slice, each next one twice the last, up to ``BATCH_ROWS``: the
    server starts on the first rows at once instead of waiting for a whole batch to be checked
    (0.3 s for 10,000 rows), and checking a batch (about 25 us a row) still takes less time
    than the server's COPY of the one before, half as big (about 100 us a row)."""
    batch: RecordBatch = ([], [])
    limit = SLICE_ROWS
    writing = True
    pending = aiter(slices)
    while True:
        # Before the slice, not after: reading the next slice is what checks it.
        await asyncio.sleep(0)
        await turn()
        try:
            records = await anext(pending)
        except StopAsyncIteration:
            break
        if records is None:
            writing = False
        elif writing:
            batch[0].extend(records[0])
            batch[1].extend(records[1])
            if len(batch[0]) >= limit:
                yield batch
                batch = ([], [])
                limit = min(2 * limit, BATCH_ROWS)
    if writing and batch[0]:
        yield batch


async def _checked_slices(
    user_id: str, rows: Iterable[Any] | AsyncIterable[Any]
) -> AsyncGenerator[RecordBatch | None, None]:
    """Each slice's COPY records (None once a row failed); at the end, one InvalidInputError
    with the first ``MAX_REPORTED`` problems and the total."""
    problems: list[FieldError] = []
    total = offset = 0
    async for chunk in _chunks(rows):
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
