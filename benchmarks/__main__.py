"""``python -m benchmarks``: sets-db against the raw-asyncpg floor and the peers a Python
team would pick instead (SQLAlchemy 2 async ORM, Tortoise ORM), in one interleaved run.

It creates its own database on the configured server (``DATABASE_URL`` / ``POSTGRES_*``),
migrates it with ``sets_db.migrate``, loads a synthetic collection with a fixed seed, and
drops the database at the end. Each operation's contenders are called in turn, call by call
(see ``benchmarks.harness``), ``--repeats`` times; each contender's answer is checked once
against sets-db's. The peers need the ``bench`` extra (``pip install -e '.[bench]'``);
without it, sets-db runs against raw alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import baseline, bulk, data, harness
from benchmarks.operations import SETS_DB, SQLALCHEMY, TORTOISE, Context, Target
from sets_db import services
from sets_db.config import asyncpg_dsn, redact, settings
from sets_db.db import close_db, init_db
from sets_db.migrator import migrate
from tests.pg import create_database, drop_database

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOAD_CHUNK = 50_000
DEEP_PAGES = 20
TARGET_USERS = 40
POOL_SIZE = 5


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--sets", type=int, default=100_000, help="sets to load (1000000: 1M)")
    parser.add_argument("--users", type=int, default=1_000, help="owners to spread them over")
    parser.add_argument("--iterations", type=int, default=400, help="timed calls per repeat")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls first")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of every operation")
    parser.add_argument("--no-peers", action="store_true", help="sets-db and raw only")
    parser.add_argument("--import-sets", type=int, default=100_000, help="0: no import/export")
    parser.add_argument("--import-rounds", type=int, default=7, help="import vs COPY rounds")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--json", type=Path, default=None, help="result file (default: results/)")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    return parser.parse_args(argv)


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
        # Every table (the triggers' summaries too), then the load's dirty pages written:
        # else autovacuum and the checkpointer woke during the first operation timed
        # (get_set: 1.15-1.20 in the first repeat of two runs of five, 1.10-1.13 otherwise).
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
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


async def _deep_pages(power: list[str]) -> list[tuple[str, str, tuple[datetime, uuid.UUID]]]:
    """Follow ``DEEP_PAGES`` cursors into each power user's collection."""
    deep: list[tuple[str, str, tuple[datetime, uuid.UUID]]] = []
    for user_id in power:
        cursor: str | None = None
        after: tuple[datetime, uuid.UUID] | None = None
        for _ in range(DEEP_PAGES):
            page = await services.list_sets(user_id=user_id, cursor=cursor)
            if page.next_cursor is None:
                break
            cursor, after = page.next_cursor, (page.items[-1].created_at, page.items[-1].id)
        if cursor is not None and after is not None:
            deep.append((user_id, cursor, after))
    if not deep:
        raise SystemExit("no owner has enough sets for a deep page; load more --sets")
    return deep


async def _peers(dsn: str, args: argparse.Namespace) -> tuple[Any, Any]:
    if args.no_peers:
        return None, None
    try:
        from benchmarks import peers_sqlalchemy, peers_tortoise
    except ImportError as error:
        _say(f"peers left out ({error}): pip install -e '.[bench]'")
        return None, None
    return peers_sqlalchemy.Peer(dsn, POOL_SIZE), peers_tortoise.Peer(dsn, POOL_SIZE)


async def _timed(ctx: Context, args: argparse.Namespace) -> list[harness.Timings]:
    from benchmarks import operations

    reads, writes = operations.reads(ctx), operations.writes(ctx)
    for operation in reads:
        await harness.check(operation)
    _say(f"answers checked; timing {len(reads)} reads x {args.repeats} repeats")
    options = {"repeats": args.repeats, "warmup": args.warmup, "iterations": args.iterations}
    results = await harness.run(reads, **options)
    _say("timing the writes")
    return results + await harness.run(writes, **options)


async def _bench(url: str, args: argparse.Namespace) -> dict[str, Any]:
    await migrate(url)
    await init_db(url)
    dsn = asyncpg_dsn(url)
    pool = await baseline.pool(dsn, size=POOL_SIZE)
    sqlalchemy, tortoise = await _peers(dsn, args)
    try:
        _say(f"loading {args.sets:,} sets over {args.users:,} owners (seed {args.seed})")
        load_seconds = await _load(pool, args)
        targets, power = await _targets(pool, args)
        ctx = Context(pool, targets, await _deep_pages(power), sqlalchemy, tortoise)
        results = await _timed(ctx, args)
        contenders = [SETS_DB] + ([SQLALCHEMY, TORTOISE] if sqlalchemy else [])
        result: dict[str, Any] = {
            "timestamp": datetime.now(UTC).isoformat(),
            "config": {**vars(args), "json": str(args.json) if args.json else None},
            "rls_mode": settings().rls_role is not None,
            "load_seconds": load_seconds,
            "operations": [asdict(timings) for timings in results],
            "table": harness.table(results, contenders),
        }
        if args.import_sets:
            _say(f"import_sets of {args.import_sets:,} sets vs bare COPY")
            result["import"] = await bulk.import_vs_copy(
                pool, count=args.import_sets, rounds=args.import_rounds, seed=args.seed
            )
            _say("export_sets memory")
            result["export"] = await bulk.export_memory("bench-import", args.import_sets)
        return result
    finally:
        for peer in (sqlalchemy, tortoise):
            if peer is not None:
                await peer.close()
        await pool.close()
        await close_db()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = settings().url()
    url = await create_database(server, "bench")
    try:
        _say(f"database {redact(url)}")
        return await _bench(url, args)
    finally:
        if not args.keep:
            await drop_database(url)


def _span(values: list[float]) -> str:
    return f"{values[0]:.2f}-{values[-1]:.2f}"


def _print_bulk(result: dict[str, Any]) -> None:
    imported, exported = result["import"], result["export"]
    print(
        f"\nimport_sets: {imported['import_sets_per_second']:,.0f} sets/s"
        f" ({imported['sets']:,} sets, {imported['images']:,} images);"
        f" bare COPY {imported['bare_copy_sets_per_second']:,.0f} sets/s;"
        f" ratio {imported['import_vs_bare_copy']:.2f} (median of the rounds';"
        f" quartiles {_span(imported['round_ratio_quartiles'])};"
        f" {imported['ratio_of_medians']:.2f} of the medians)"
    )
    if not math.isnan(imported["server_busy_import"]):  # a local server
        print(
            f"the local server was busy {imported['server_busy_import']:.1%} of the import's"
            f" time, {imported['server_busy_bare_copy']:.1%} of the bare COPY's (medians)"
        )
    rss = exported["rss_peak_growth_mb"]
    print(
        f"export_sets: {exported['sets']:,} sets, peak growth"
        f" {exported['python_heap_peak_growth_mb']:.1f} MB Python heap (tracemalloc)"
        + (f", {rss:.1f} MB RSS" if rss is not None else "")
        + f"; {exported['sets_per_second']:,.0f} sets/s"
    )


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    started = time.perf_counter()
    result = asyncio.run(run(args))
    print(f"\n{args.sets:,} sets, {args.users:,} owners, loaded in {result['load_seconds']:.1f}s")
    print(result["table"])
    if "import" in result:
        _print_bulk(result)
    path = args.json or RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwritten to {path} ({time.perf_counter() - started:.0f}s in all)")


if __name__ == "__main__":
    main()
