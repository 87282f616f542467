"""The bulk jobs of ``python -m benchmarks``: ``import_sets`` against a bare COPY of the same
rows, and the peak memory of streaming a whole collection out with ``export_sets``."""

from __future__ import annotations

import contextlib
import gc
import os
import random
import statistics
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from benchmarks import data
from sets_db import services
from sets_db.services import transfer
from sets_db.services.copy_binary import IMAGE_COLUMNS, SET_COLUMNS


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bare_records(user_id: str, rows: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """asyncpg's records of the rows' sets (under new ids) and of their images, for
    ``bare_copy``: what a plain asyncpg program would COPY."""
    sets: list[Any] = []
    images: list[Any] = []
    for row in rows:
        set_id = uuid.uuid4()
        values = [row.get(column) for column in SET_COLUMNS[2:]]
        sets.append((set_id, user_id, *values))
        images.extend(
            (set_id, image["image_url"], image["thumbnail_url"], position)
            for position, image in enumerate(row["images"])
        )
    return sets, images


async def bare_copy(conn: Any, sets: list[Any], images: list[Any]) -> float:
    """Seconds for COPYing ready-made records of sets and their images in one transaction,
    with the import's plan for the foreign key checks (``transfer.INDEXED_CHECKS``), so that
    on a table analyzed as small both legs of a comparison check by index."""
    started = time.perf_counter()
    async with conn.transaction():
        await conn.execute(transfer.INDEXED_CHECKS)
        await conn.copy_records_to_table("sets", records=sets, columns=SET_COLUMNS)
        await conn.copy_records_to_table("set_images", records=images, columns=IMAGE_COLUMNS)
    return time.perf_counter() - started


async def import_vs_copy(pool: Any, *, count: int, rounds: int, seed: int) -> dict[str, Any]:
    """import_sets (validation + COPY) against a bare COPY of the same, ready-made records.

    Each round times both, one right after the other (which goes first alternates), and the
    ratio is the median of the rounds' ratios, printed with their quartiles: on a shared
    machine the same COPY took from 1.6 to 2.5 s within minutes, and on another a CPU-bound
    loop ran 1.8x faster for seconds at a time, a drift that two legs run back to back share
    only in part."""
    rng = random.Random(seed + 2)
    numbers = data.set_numbers(rng)
    rows = [data.set_row(rng, numbers) for _ in range(count)]
    images = sum(len(row["images"]) for row in rows)

    async def clear(user_id: str) -> None:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM sets WHERE user_id = $1", user_id)
            await conn.execute("VACUUM sets")
            await conn.execute("VACUUM set_images")
            # The last leg's pages are written out now, not by a checkpoint during the next.
            await conn.execute("CHECKPOINT")

    async def via_service() -> float:
        started = time.perf_counter()
        await services.import_sets(user_id="bench-import", rows=rows)
        return time.perf_counter() - started

    async def bare() -> float:
        sets, image_records = bare_records("bench-copy", rows)
        async with pool.acquire() as conn:
            return await bare_copy(conn, sets, image_records)

    service_times: list[float] = []
    bare_times: list[float] = []
    busy: dict[str, list[float]] = {"bench-import": [], "bench-copy": []}
    for round_number in range(rounds):
        steps = [("bench-import", via_service, service_times), ("bench-copy", bare, bare_times)]
        for user_id, step, times in steps if round_number % 2 == 0 else steps[::-1]:
            await clear(user_id)
            cpu = _server_cpu_seconds()
            times.append(await step())
            if cpu is not None and (after := _server_cpu_seconds()) is not None:
                busy[user_id].append((after - cpu) / times[-1])
        _say(
            f"  round {round_number + 1}: import_sets {service_times[-1]:.2f}s,"
            f" bare COPY {bare_times[-1]:.2f}s, ratio {bare_times[-1] / service_times[-1]:.2f}"
            + (
                f"; server busy {busy['bench-import'][-1]:.1%} and {busy['bench-copy'][-1]:.1%}"
                if busy["bench-import"]
                else ""
            )
        )
    await clear("bench-copy")
    service_s, bare_s = statistics.median(service_times), statistics.median(bare_times)
    ratios = [copy / service for service, copy in zip(service_times, bare_times, strict=True)]
    return {
        "sets": len(rows),
        "images": images,
        "import_sets_seconds": service_s,
        "bare_copy_seconds": bare_s,
        "import_sets_per_second": len(rows) / service_s,
        "bare_copy_sets_per_second": len(rows) / bare_s,
        "round_ratios": ratios,
        "import_vs_bare_copy": statistics.median(ratios),
        "round_ratio_quartiles": statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios,
        "ratio_of_medians": bare_s / service_s,
        "server_busy_import": statistics.median(busy["bench-import"] or [float("nan")]),
        "server_busy_bare_copy": statistics.median(busy["bench-copy"] or [float("nan")]),
    }


def _server_cpu_seconds() -> float | None:
    """CPU time used so far by this machine's PostgreSQL processes, or None where ``/proc``
    shows none (a remote server). Over a leg's wall time it says how busy the legs kept the
    server: the import's server waits for its client where the bare COPY's does not, whatever
    the machine's speed did meanwhile, which moves the wall times of single rounds far more."""
    ticks = 0
    found = False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            name, _, fields = stat.read_text().partition(") ")
            if name.endswith("(postgres"):
                state_onwards = fields.split()
                ticks += int(state_onwards[11]) + int(state_onwards[12])  # utime, stime
                found = True
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets the RSS high-water mark (VmHWM)


def _rss_kib(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


async def export_memory(user_id: str, expected: int) -> dict[str, Any]:
    """Peak memory while streaming the whole collection of one owner (``expected`` sets)."""

    async def drain() -> int:
        count = 0
        async for _ in services.export_sets(user_id=user_id):
            count += 1
        return count

    await drain()  # warm: pool connection, prepared statement, DTO classes
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    started = time.perf_counter()
    count = await drain()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == expected, (count, expected)

    gc.collect()
    rss_growth = None
    with contextlib.suppress(OSError):
        _reset_peak_rss()
        rss_before = _rss_kib("VmRSS")
        untraced_started = time.perf_counter()
        await drain()
        untraced = time.perf_counter() - untraced_started
        peak_rss = _rss_kib("VmHWM")
        if rss_before is not None and peak_rss is not None:
            rss_growth = (peak_rss - rss_before) / 1024
    return {
        "sets": count,
        "python_heap_peak_growth_mb": (peak - before) / 2**20,
        "rss_peak_growth_mb": rss_growth,
        "seconds_traced": elapsed,
        "sets_per_second": count / untraced if rss_growth is not None else count / elapsed,
    }
