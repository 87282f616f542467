"""Importing a sets file: read, check and copy it in batches, inside one transaction.

The file is read incrementally and each batch of rows is parsed, checked and encoded for COPY
a slice at a time, giving the event loop a turn between slices (so other tasks, and the COPY
of the previous batch, go on meanwhile). Memory stays at a few batches whatever the
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

from sets_db.services.copy_binary import Encoded
from sets_db.services.transfer import MAX_REPORTED, SLICE_ROWS, copy_batches, copy_rows
from sets_db.set_files import OpenFile, RowError, check_rows

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


async def _checked_slices(
    file: OpenFile, report: ImportReport, user_id: str | None, progress: Progress
) -> AsyncGenerator[Encoded | None, None]:
    """Each slice's COPY rows (None once a row failed, or when only checking)."""
    with progress(file.size) as advance:
        while rows := list(islice(file.rows, SLICE_ROWS)):
            sets, errors = check_rows(rows, csv_cells=file.format == "csv")
            report.add(len(sets), errors)
            # Once a row failed nothing will be written: rows would only be thrown away.
            yield copy_rows(user_id, sets) if user_id and not report.problems else None
            advance(file.bytes_read())
    if report.problems:
        raise _Rejected


async def check_file(file: OpenFile, *, progress: Progress) -> ImportReport:
    """Check every row of the file (opened with ``set_files.read_rows``); nothing is written."""
    report = ImportReport()
    with suppress(_Rejected):
        async for _ in _checked_slices(file, report, None, progress):
            await asyncio.sleep(0)  # checking is CPU work: other tasks get a turn
    return report


async def import_file(user_id: str, file: OpenFile, *, progress: Progress) -> ImportReport:
    """Import every row of the file for ``user_id``, or (if any row is bad) none."""
    report = ImportReport()
    with suppress(_Rejected):
        await copy_batches(user_id, _checked_slices(file, report, user_id, progress))
    return report
