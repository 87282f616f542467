"""Importing a sets file: read, check and copy it in batches, inside one transaction.

The file is read incrementally and each batch of rows is parsed, checked and turned into COPY
records in a worker thread (CPU work that would otherwise hold up the event loop), while the
previous batch is being copied. Memory stays at a few batches whatever the file's size.

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
from sets_db.set_files import FileRow, OpenFile, RowError, check_rows

BATCH_ROWS = 2000
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


@dataclass(frozen=True)
class _Checked:
    valid: int
    errors: list[RowError]
    records: RecordBatch | None
    bytes_read: int


class _Rejected(Exception):
    """Raised from inside the copy when the file had problems: rolls the transaction back."""


def _next_batch(file: OpenFile, user_id: str | None, clean: bool) -> _Checked:
    rows: list[FileRow] = list(islice(file.rows, BATCH_ROWS))
    if not rows:
        return _Checked(0, [], None, file.bytes_read())
    sets, errors, _ = check_rows(rows, csv_cells=file.format == "csv")
    # Once a row failed nothing will be written: records would only be thrown away.
    records = copy_records(user_id, sets) if user_id and clean and not errors else None
    return _Checked(len(sets), errors, records, file.bytes_read())


async def _checked_batches(
    file: OpenFile, report: ImportReport, user_id: str | None, progress: Progress
) -> AsyncGenerator[RecordBatch, None]:
    with progress(file.size) as advance:
        while True:
            checked = await asyncio.to_thread(_next_batch, file, user_id, not report.problems)
            advance(checked.bytes_read)
            if not checked.valid and not checked.errors:
                break
            report.add(checked.valid, checked.errors)
            if checked.records is not None:
                yield checked.records
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
