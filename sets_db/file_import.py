"""Importing a sets file: read, check and copy it in batches, inside one transaction.

The file is read incrementally and each batch of rows is parsed, checked and turned into COPY
records a slice at a time, giving the event loop a turn between slices (so other tasks, and
the COPY of the previous batch, go on meanwhile). Memory stays at a few batches whatever the
file's size. (A worker thread was tried: every socket write of the COPY then waited for the
thread to hand back the GIL, and the loop stalled for 100 ms and more.)

All rows or none: the copy runs in one transaction. The first bad row stops the copying; the
rest of the file is still checked so that the report can say how many problems there are
(listing the first ``MAX_REPORTED``), and then the transaction is rolled back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from itertools import islice

from sets_db.services.transfer import RecordBatch, copy_batches, copy_records
from sets_db.set_files import OpenFile, RowError, check_rows

BATCH_ROWS = 2000
# Rows checked between two turns of the event loop (a few milliseconds of work).
SLICE_ROWS = 100
MAX_REPORTED = 100

# Given the file's size, a callback that is told how many bytes were read so far.
Progress = Callable[[int], AbstractContextManager[Callable[[int], None]]]


@dataclass
class ImportReport:
    """What checking the file found: valid rows, and the problems (the first ones listed)."""

    rows: int = 0
    problems: int = 0
    errors: list[RowError] = field(default_factory=list)

    def add(self, valid: int, errors: list[RowError]) -> None:
        self.rows += valid
        self.problems += len(errors)
        self.errors += errors[: MAX_REPORTED - len(self.errors)]


class _Rejected(Exception):
    """Raised from inside the copy when the file had problems: rolls the transaction back."""


async def _checked_batches(
    file: OpenFile, report: ImportReport, user_id: str | None, progress: Progress
) -> AsyncGenerator[RecordBatch, None]:
    """COPY records of ``BATCH_ROWS`` rows at a time (none once a row failed)."""
    with progress(file.size) as advance:
        batch: RecordBatch = ([], [])
        while rows := list(islice(file.rows, SLICE_ROWS)):
            sets, errors = check_rows(rows, csv_cells=file.format == "csv")
            report.add(len(sets), errors)
            # Once a row failed nothing will be written: records would only be thrown away.
            if user_id and not report.problems:
                set_records, image_records = copy_records(user_id, sets)
                batch[0].extend(set_records)
                batch[1].extend(image_records)
            if len(batch[0]) >= BATCH_ROWS:
                yield batch
                batch = ([], [])
            advance(file.bytes_read())
            # Checking is CPU work: let other tasks (the COPY of the previous batch) run.
            await asyncio.sleep(0)
        if batch[0] and not report.problems:
            yield batch
    if report.problems:
        raise _Rejected


async def check_file(file: OpenFile, *, progress: Progress) -> ImportReport:
    """Check every row of the file (opened with ``set_files.read_rows``); nothing is written."""
    report = ImportReport()
    with suppress(_Rejected):
        async for _ in _checked_batches(file, report, None, progress):
            pass
    return report


async def import_file(user_id: str, file: OpenFile, *, progress: Progress) -> ImportReport:
    """Import every row of the file for ``user_id``, or (if any row is bad) none."""
    report = ImportReport()
    with suppress(_Rejected):
        await copy_batches(user_id, _checked_batches(file, report, user_id, progress))
    return report
