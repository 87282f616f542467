"""Importing a 50 MB CSV file the way ``sets-db import`` does: memory, throughput, loop stalls.

Usage: python -m benchmarks.import_file [SERVER_URL] [--megabytes 50]
(default server: the test server)

Writes a CSV file of realistic sets (benchmarks.data) until it reaches the size, creates a
throwaway database, then imports the file in process with ``sets_db.file_import`` while a
watcher task measures how late the event loop wakes it (the longest stall). Prints the peak
RSS of the import (the high-water mark is reset after the file is written), rows per second,
the longest stall, and the time of a bare COPY of the same rows for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gc
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.bulk import bare_copy, bare_records
from benchmarks.data import set_numbers, set_row
from sets_db import close_db, init_db, migrate
from sets_db.config import server_url_for_tests
from sets_db.file_import import import_file
from sets_db.set_files import COLUMNS, check_rows, neutralised, read_rows
from tests.pg import connect, create_database, drop_database

WATCH_INTERVAL_S = 0.002


def _cells(row: dict[str, Any]) -> list[str]:
    images = row.pop("images")
    row["image_urls"] = [image["image_url"] for image in images]
    thumbnails = [image["thumbnail_url"] or "" for image in images]
    row["thumbnail_urls"] = thumbnails if any(thumbnails) else []
    cells = []
    for column in COLUMNS:
        value = row.get(column)
        if value is None:
            cells.append("")
        elif isinstance(value, list):
            cells.append(";".join(value))
        elif isinstance(value, bool):
            cells.append("true" if value else "false")
        elif hasattr(value, "isoformat"):
            cells.append(value.isoformat())
        else:
            cells.append(neutralised(str(value)))
    return cells


def write_file(path: Path, megabytes: int) -> int:
    """A CSV file of at least ``megabytes`` MB; returns its number of rows."""
    rng = random.Random(7)
    numbers = set_numbers(rng)
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        while stream.tell() < megabytes * 1_000_000:
            writer.writerows(_cells(set_row(rng, numbers)) for _ in range(1000))
            rows += 1000
    return rows


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


@contextlib.asynccontextmanager
async def longest_stall() -> Any:
    """Yields ``[wall, cpu]``: the longest event-loop stall seen (seconds late), and the CPU
    time the loop's thread used during it. On a shared machine the two tell a stall caused by
    this process's work (cpu close to wall) from one where the OS ran something else."""
    longest = [0.0, 0.0]
    loop = asyncio.get_running_loop()

    async def watch() -> None:
        while True:
            before, cpu_before = loop.time(), time.thread_time()
            await asyncio.sleep(WATCH_INTERVAL_S)
            late = loop.time() - before - WATCH_INTERVAL_S
            if late > longest[0]:
                longest[:] = [late, time.thread_time() - cpu_before]

    watcher = asyncio.create_task(watch())
    try:
        yield longest
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


@contextlib.contextmanager
def _no_progress(total: int) -> Iterator[Any]:
    yield lambda done: None


async def run(server: str, megabytes: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sets.csv"
        rows = write_file(path, megabytes)
        print(f"file: {path.stat().st_size / 1e6:.1f} MB, {rows:,} rows", flush=True)
        url = await create_database(server, "bench")
        try:
            await migrate(url)
            await init_db(url)
            # As the CLI does: the objects of start-up are never garbage, so the collector
            # need not rescan them in every full collection (each one held the loop ~60 ms).
            gc.freeze()
            _reset_peak_rss()
            before_kib = _status_kib("VmRSS")
            start = time.perf_counter()
            async with longest_stall() as stall:
                with read_rows(path, "csv") as file:
                    report = await import_file("bench-user", file, progress=_no_progress)
            seconds = time.perf_counter() - start
            peak = _status_kib("VmHWM")
            await close_db()
            bare_seconds = await _bare_copy(url, path)
        finally:
            await drop_database(url)
    assert report.problems == 0, [str(error) for error in report.errors[:5]]
    print(
        f"imported: {report.rows:,} sets in {seconds:.1f} s = {report.rows / seconds:,.0f} rows/s"
    )
    print(f"peak RSS: {peak / 1024:.0f} MB (before the import: {before_kib / 1024:.0f} MB)")
    print(
        f"longest event-loop stall: {stall[0] * 1000:.1f} ms"
        f" (CPU time of the loop's thread meanwhile: {stall[1] * 1000:.1f} ms)"
    )
    print(
        f"a bare COPY of the same records (made beforehand): {bare_seconds:.1f} s ="
        f" {report.rows / bare_seconds:,.0f} rows/s; the import takes"
        f" {seconds / bare_seconds:.2f}x as long, parsing and checking the file included"
    )


async def _bare_copy(url: str, path: Path) -> float:
    """Seconds for COPYing the file's sets and images, records built before the clock."""
    with read_rows(path, "csv") as file:
        sets, errors = check_rows(list(file.rows), csv_cells=True)
    assert not errors
    set_records, image_records = bare_records("bare-user", [item.model_dump() for item in sets])
    del sets
    conn = await connect(url)
    try:
        return await bare_copy(conn, set_records, image_records)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", nargs="?", default=None)
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args(argv)
    asyncio.run(run(args.server or server_url_for_tests(), args.megabytes))


if __name__ == "__main__":
    main(sys.argv[1:])
