"""``python -m benchmarks``: the service layer against raw asyncpg, side by side, in one run.

It creates its own database on the configured server (``DATABASE_URL`` / ``POSTGRES_*``),
migrates it with ``sets_db.migrate``, loads a synthetic collection with a fixed seed, and
drops the database at the end. Timings are p50/p95 over ``--iterations`` calls after a
warm-up, service and baseline alternating call by call so both see the same cache state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import secrets
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from benchmarks import baseline, data
from sets_db import services
from sets_db.config import asyncpg_dsn, redact, settings
from sets_db.db import close_db, init_db
from sets_db.migrator import migrate
from sets_db.services import transfer

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOAD_CHUNK = 50_000
DEEP_PAGES = 20
TARGET_USERS = 40


@dataclass
class Row:
    operation: str
    service_p50_ms: float
    service_p95_ms: float
    baseline_p50_ms: float
    baseline_p95_ms: float

    @property
    def ratio(self) -> float:
        return self.service_p50_ms / self.baseline_p50_ms


@dataclass
class Target:
    user_id: str
    set_id: uuid.UUID
    theme: str
    tag: str
    search: str
    set_number: str


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--sets", type=int, default=100_000, help="sets to load (1000000: 1M)")
    parser.add_argument("--users", type=int, default=1_000, help="owners to spread them over")
    parser.add_argument("--iterations", type=int, default=400, help="timed calls per operation")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls first")
    parser.add_argument("--import-sets", type=int, default=100_000, help="rows per import run")
    parser.add_argument("--import-rounds", type=int, default=3, help="import vs COPY rounds")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--json", type=Path, default=None, help="result file (default: results/)")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    return parser.parse_args(argv)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _load(pool: Any, args: argparse.Namespace) -> float:
    """Bare COPY of the synthetic collection in chunks (memory stays bounded at 1M)."""
    rng = random.Random(args.seed)
    numbers = data.set_numbers(rng)
    users = data.user_ids(args.users)
    started = time.perf_counter()
    for offset in range(0, args.sets, LOAD_CHUNK):
        count = min(LOAD_CHUNK, args.sets - offset)
        rows = [data.set_row(rng, numbers) for _ in range(count)]
        sets, images = data.copy_records(rng, rows, data.owners(rng, users, count))
        async with pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table("sets", records=sets, columns=data.SET_COLUMNS)
            await conn.copy_records_to_table(
                "set_images", records=images, columns=data.IMAGE_COLUMNS
            )
        _say(f"  loaded {offset + count:,} sets")
    async with pool.acquire() as conn:
        await conn.execute("VACUUM ANALYZE sets")
        await conn.execute("VACUUM ANALYZE set_images")
    return time.perf_counter() - started


async def _targets(pool: Any, args: argparse.Namespace) -> tuple[list[Target], list[str]]:
    """Owners to query (the power users and a fixed sample of the rest), with real values."""
    users = data.user_ids(args.users)
    power = users[: max(1, len(users) // 200)]
    typical = users[len(power) :]
    sample = random.Random(args.seed + 1).sample(typical, min(TARGET_USERS, len(typical)))
    targets = []
    for user_id in [*power, *sample]:
        row = await pool.fetchrow(
            "SELECT id, theme, tags, title FROM sets WHERE user_id = $1"
            " AND theme IS NOT NULL AND cardinality(tags) > 0 ORDER BY id LIMIT 1",
            user_id,
        )
        number = await pool.fetchval(
            "SELECT set_number FROM sets WHERE user_id = $1 AND set_number IS NOT NULL"
            " GROUP BY set_number ORDER BY count(*) DESC, set_number LIMIT 1",
            user_id,
        )
        if row is None or number is None:
            continue
        targets.append(
            Target(
                user_id,
                row["id"],
                row["theme"],
                row["tags"][0],
                row["title"].split()[1][:4].lower(),
                number,
            )
        )
    return targets, power


async def _time(
    name: str,
    service: Callable[[int], Awaitable[Any]],
    base: Callable[[int], Awaitable[Any]],
    args: argparse.Namespace,
) -> Row:
    timings: dict[str, list[float]] = {"service": [], "baseline": []}
    calls = [("service", service), ("baseline", base)]
    for i in range(args.warmup + args.iterations):
        for label, call in calls if i % 2 == 0 else calls[::-1]:
            started = time.perf_counter()
            await call(i)
            elapsed = time.perf_counter() - started
            if i >= args.warmup:
                timings[label].append(elapsed)
    row = Row(
        name,
        _ms(timings["service"], 0.5),
        _ms(timings["service"], 0.95),
        _ms(timings["baseline"], 0.5),
        _ms(timings["baseline"], 0.95),
    )
    _say(f"  {name}: ratio {row.ratio:.2f}")
    return row


async def _operations(pool: Any, targets: list[Target], power: list[str], args: Any) -> list[Row]:
    def pick(i: int) -> Target:
        return targets[i % len(targets)]

    # Deep pages: follow DEEP_PAGES cursors into each power user's collection first.
    deep: list[tuple[str, str, tuple[datetime, uuid.UUID]]] = []
    for user_id in power:
        cursor: str | None = None
        page = None
        for _ in range(DEEP_PAGES):
            page = await services.list_sets(user_id=user_id, cursor=cursor)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        if cursor is not None and page is not None and page.items:
            last = page.items[-1]
            deep.append((user_id, cursor, (last.created_at, last.id)))
    if not deep:
        raise SystemExit("no owner has enough sets for a deep page; load more --sets")

    rows = [
        await _time(
            "get_set",
            lambda i: services.get_set(user_id=pick(i).user_id, set_id=pick(i).set_id),
            lambda i: baseline.get_set(pool, pick(i).user_id, pick(i).set_id),
            args,
        ),
        await _time(
            "list_sets first page",
            lambda i: services.list_sets(user_id=pick(i).user_id),
            lambda i: baseline.first_page(pool, pick(i).user_id),
            args,
        ),
        await _time(
            f"list_sets page {DEEP_PAGES + 1} (cursor)",
            lambda i: services.list_sets(
                user_id=deep[i % len(deep)][0], cursor=deep[i % len(deep)][1]
            ),
            lambda i: baseline.deep_page(pool, deep[i % len(deep)][0], deep[i % len(deep)][2]),
            args,
        ),
        await _time(
            "list_sets theme+tag+search",
            lambda i: services.list_sets(
                user_id=pick(i).user_id,
                themes=pick(i).theme,
                tags=[pick(i).tag],
                search=pick(i).search,
            ),
            lambda i: baseline.filtered_page(
                pool, pick(i).user_id, pick(i).theme, pick(i).tag, pick(i).search
            ),
            args,
        ),
        await _time(
            "collection_stats",
            lambda i: services.collection_stats(user_id=pick(i).user_id),
            lambda i: baseline.collection_stats(pool, pick(i).user_id),
            args,
        ),
        await _time(
            "find_duplicates",
            lambda i: services.find_duplicates(
                user_id=pick(i).user_id, set_number=pick(i).set_number
            ),
            lambda i: baseline.find_duplicates(pool, pick(i).user_id, pick(i).set_number),
            args,
        ),
        await _time(
            "add_image",
            lambda i: services.add_image(
                user_id=pick(i).user_id,
                set_id=pick(i).set_id,
                image_url=f"https://img.example.com/bench/{i}.jpg",
            ),
            lambda i: baseline.add_image(
                pool, pick(i).user_id, pick(i).set_id, f"https://img.example.com/base/{i}.jpg"
            ),
            args,
        ),
        await _time(
            "update_set",
            lambda i: services.update_set(
                user_id=pick(i).user_id,
                set_id=pick(i).set_id,
                changes={"notes": f"service {i}", "quantity": 1 + i % 3},
            ),
            lambda i: baseline.update_set(
                pool, pick(i).user_id, pick(i).set_id, f"baseline {i}", 1 + i % 3
            ),
            args,
        ),
    ]
    return rows


def _bare_records(user_id: str, rows: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    sets: list[Any] = []
    images: list[Any] = []
    for row in rows:
        set_id = uuid.uuid4()
        values = [row.get(column) for column in transfer.SET_COLUMNS[2:]]
        sets.append((set_id, user_id, *values))
        images.extend(
            (set_id, image["image_url"], image["thumbnail_url"], position)
            for position, image in enumerate(row["images"])
        )
    return sets, images


async def _import(pool: Any, args: argparse.Namespace) -> dict[str, Any]:
    """import_sets (validation + COPY) against a bare COPY of the same, ready-made records."""
    rng = random.Random(args.seed + 2)
    numbers = data.set_numbers(rng)
    rows = [data.set_row(rng, numbers) for _ in range(args.import_sets)]
    images = sum(len(row["images"]) for row in rows)

    async def clear(user_id: str) -> None:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM sets WHERE user_id = $1", user_id)
            await conn.execute("VACUUM sets")
            await conn.execute("VACUUM set_images")

    async def via_service() -> float:
        started = time.perf_counter()
        await services.import_sets(user_id="bench-import", rows=rows)
        return time.perf_counter() - started

    async def bare() -> float:
        sets, image_records = _bare_records("bench-copy", rows)
        started = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table("sets", records=sets, columns=transfer.SET_COLUMNS)
            await conn.copy_records_to_table(
                "set_images", records=image_records, columns=transfer.IMAGE_COLUMNS
            )
        return time.perf_counter() - started

    service_times: list[float] = []
    bare_times: list[float] = []
    for round_number in range(args.import_rounds):
        steps = [("bench-import", via_service, service_times), ("bench-copy", bare, bare_times)]
        for user_id, step, times in steps if round_number % 2 == 0 else steps[::-1]:
            await clear(user_id)
            times.append(await step())
            _say(f"  {user_id}: {times[-1]:.2f}s")
    await clear("bench-copy")
    service_s, bare_s = statistics.median(service_times), statistics.median(bare_times)
    return {
        "sets": len(rows),
        "images": images,
        "import_sets_seconds": service_s,
        "bare_copy_seconds": bare_s,
        "import_sets_per_second": len(rows) / service_s,
        "bare_copy_sets_per_second": len(rows) / bare_s,
        "import_vs_bare_copy": bare_s / service_s,
    }


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets the RSS high-water mark (VmHWM)


def _rss_kib(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


async def _export(user_id: str, expected: int) -> dict[str, Any]:
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


def _table(rows: list[Row]) -> str:
    header = (
        f"{'operation':<30} {'service p50':>11} {'p95':>8} {'baseline p50':>12} {'p95':>8}"
        f" {'ratio':>6}"
    )
    lines = [header, "-" * len(header)]
    lines += [
        f"{r.operation:<30} {r.service_p50_ms:>9.2f}ms {r.service_p95_ms:>6.2f}ms"
        f" {r.baseline_p50_ms:>10.2f}ms {r.baseline_p95_ms:>6.2f}ms {r.ratio:>6.2f}"
        for r in rows
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = settings().url()
    url = _with_database(server, f"sets_db_bench_{secrets.token_hex(4)}")
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(asyncpg_dsn(server))
    await admin.execute(f'CREATE DATABASE "{name}"')
    pool: Any = None
    try:
        _say(f"database {redact(url)}")
        await migrate(url)
        await init_db(url)
        pool = await baseline.pool(asyncpg_dsn(url), size=5)
        _say(f"loading {args.sets:,} sets over {args.users:,} owners (seed {args.seed})")
        load_seconds = await _load(pool, args)
        targets, power = await _targets(pool, args)
        _say("timing service calls against the baselines")
        rows = await _operations(pool, targets, power, args)
        _say(f"import_sets of {args.import_sets:,} sets vs bare COPY")
        imported = await _import(pool, args)
        _say("export_sets memory")
        exported = await _export("bench-import", args.import_sets)
        return {
            "timestamp": datetime.now(UTC).isoformat(),
            "config": {**vars(args), "json": str(args.json) if args.json else None},
            "rls_mode": settings().rls_role is not None,
            "load_seconds": load_seconds,
            "operations": [{**asdict(row), "ratio_p50": row.ratio} for row in rows],
            "import": imported,
            "export": exported,
            "table": _table(rows),
        }
    finally:
        if pool is not None:
            await pool.close()
        await close_db()
        if not args.keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    result = asyncio.run(run(args))
    print(f"\n{args.sets:,} sets, {args.users:,} owners, loaded in {result['load_seconds']:.1f}s")
    print(result["table"])
    imported, exported = result["import"], result["export"]
    print(
        f"\nimport_sets: {imported['import_sets_per_second']:,.0f} sets/s"
        f" ({imported['sets']:,} sets, {imported['images']:,} images);"
        f" bare COPY {imported['bare_copy_sets_per_second']:,.0f} sets/s;"
        f" ratio {imported['import_vs_bare_copy']:.2f}"
    )
    rss = exported["rss_peak_growth_mb"]
    print(
        f"export_sets: {exported['sets']:,} sets, peak growth"
        f" {exported['python_heap_peak_growth_mb']:.1f} MB Python heap (tracemalloc)"
        + (f", {rss:.1f} MB RSS" if rss is not None else "")
        + f"; {exported['sets_per_second']:,.0f} sets/s"
    )
    path = args.json or RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
