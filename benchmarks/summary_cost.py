"""``python -m benchmarks.summary_cost``: what the stats summary of migration 8 costs writes.

It loads the heavy collector's data (``benchmarks.heavy``: one owner with 20k catalogue
sets among 30k sets of 300 others), then times the same writes with migration 8's triggers
enabled and disabled (``ALTER TABLE sets DISABLE TRIGGER``: writes as under migration 7),
the two legs taking turns round by round in one run:

- ``create_set`` p50 into the heavy owner's collection (catalogue rows, 0-2 images each);
- ``import_sets`` of 10k catalogue rows into a new owner (five COPY batches);
- another client's plain 10k-row ``INSERT ... SELECT`` into a new owner (server time,
  ``EXPLAIN ANALYZE``).

With the triggers enabled it also reports the server time of the summary's trigger alone
(``EXPLAIN ANALYZE``, median) for single-row writes of the heavy owner: an INSERT, an
UPDATE of the theme, an UPDATE of the title only and a DELETE, and for the 10k-row INSERT.
Each figure: the median over the rounds, and the range.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from typing import Any

import asyncpg

from benchmarks import catalogue, heavy
from sets_db import services
from sets_db.db import close_db, init_db
from sets_db.migrator import migrate
from tests.pg import create_database, drop_database

TRIGGER_PREFIX = "set_collection_stats_"
TRIGGERS_SQL = "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'set\\_collection\\_stats\\_%'"
BULK_INSERT_SQL = """
INSERT INTO sets (user_id, title, theme, quantity, piece_count, purchase_price, tax, is_built)
SELECT $1, 'bulk ' || g, 'theme ' || g % 40, 1 + g % 3, NULLIF(g % 900, 0), (g % 9000) / 100.0,
       (g % 700) / 100.0, g % 4 = 0
FROM generate_series(1, 10000) g
"""
SINGLE_ROW_SQL = {
    "INSERT": "INSERT INTO sets (user_id, title, theme, quantity) VALUES ($1, 'one', $2, 1)",
    "UPDATE theme": "UPDATE sets SET theme = $2 WHERE id = (SELECT id FROM sets"
    " WHERE user_id = $1 AND theme IS DISTINCT FROM $2 LIMIT 1)",
    "UPDATE title only": "UPDATE sets SET title = title || '.' WHERE id = (SELECT id FROM sets"
    " WHERE user_id = $1 AND theme IS DISTINCT FROM $2 LIMIT 1)",
    "DELETE": "DELETE FROM sets WHERE id = (SELECT id FROM sets"
    " WHERE user_id = $1 AND theme IS DISTINCT FROM $2 LIMIT 1)",
}
SINGLE_ROW_REPEATS = 40


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.summary_cost", description=__doc__)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sets", type=int, default=20_000, help="the heavy owner's sets")
    parser.add_argument("--background", type=int, default=30_000, help="other owners' sets")
    parser.add_argument("--writes", type=int, default=200, help="timed create_set calls a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261127)
    return parser.parse_args(argv)


async def _set_triggers(conn: Any, *, enabled: bool) -> None:
    action = "ENABLE" if enabled else "DISABLE"
    for row in await conn.fetch(TRIGGERS_SQL):
        await conn.execute(f'ALTER TABLE sets {action} TRIGGER "{row["tgname"]}"')


async def _explained(conn: Any, sql: str, *values: Any) -> dict[str, Any]:
    plan: dict[str, Any] = json.loads(
        await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *values)
    )[0]
    return plan


def _trigger_ms(plan: dict[str, Any]) -> float:
    triggers = plan.get("Triggers", [])
    return float(sum(t["Time"] for t in triggers if t["Trigger Name"].startswith(TRIGGER_PREFIX)))


async def _create_p50(rows: list[dict[str, Any]]) -> float:
    timings = []
    for row in rows:
        started = time.perf_counter()
        await services.create_set(user_id=catalogue.HEAVY_USER, data=row)
        timings.append(time.perf_counter() - started)
    return 1000 * statistics.median(timings)


async def _import_s(owner: str, rows: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    await services.import_sets(user_id=owner, rows=rows)
    return time.perf_counter() - started


async def _leg(
    conn: Any, args: argparse.Namespace, label: str, rows: list[Any]
) -> dict[str, float]:
    create_rows = rows[: args.writes]
    bulk = await _explained(conn, BULK_INSERT_SQL, f"bulk-{label}")
    return {
        "create_set p50 ms": await _create_p50(create_rows),
        "import_sets 10k s": await _import_s(f"importer-{label}", rows),
        "INSERT 10k rows ms (server)": bulk["Execution Time"],
        "  of it the summary's trigger ms": _trigger_ms(bulk),
    }


async def _single_rows(conn: Any, rng: random.Random) -> dict[str, float]:
    """The summary trigger's own server time for single-row writes of the heavy owner."""
    themes = [
        row[0]
        for row in await conn.fetch(
            "SELECT DISTINCT theme FROM sets WHERE user_id = $1 AND theme IS NOT NULL",
            catalogue.HEAVY_USER,
        )
    ]
    found: dict[str, float] = {}
    for name, sql in SINGLE_ROW_SQL.items():
        await _explained(conn, sql, catalogue.HEAVY_USER, themes[0])  # compiles the function
        times = [
            _trigger_ms(await _explained(conn, sql, catalogue.HEAVY_USER, rng.choice(themes)))
            for _ in range(SINGLE_ROW_REPEATS)
        ]
        found[f"{name}: the trigger ms (server)"] = statistics.median(times)
    return found


async def run(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    url = await create_database(args.server, "bench_summary")
    results: dict[str, dict[str, list[float]]] = {"without": {}, "with": {}}
    rng = random.Random(args.seed)
    try:
        await migrate(url)
        conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
        try:
            await heavy.load(conn, args)
            await init_db(url)
            try:
                for round_ in range(args.rounds):
                    rows = catalogue.catalogue(args.seed + 1 + round_, 10_000)
                    legs = ["without", "with"] if round_ % 2 == 0 else ["with", "without"]
                    for leg in legs:
                        await _set_triggers(conn, enabled=leg == "with")
                        timed = await _leg(conn, args, f"{leg}-{round_}", rows)
                        if leg == "with":
                            timed |= await _single_rows(conn, rng)
                        for name, value in timed.items():
                            results[leg].setdefault(name, []).append(value)
                await _set_triggers(conn, enabled=True)
            finally:
                await close_db()
        finally:
            await conn.close()
    finally:
        await drop_database(url)
    return results


def _summary(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):8.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    results = asyncio.run(run(args))
    print(f"\nstats summary write cost, {args.rounds} rounds each, legs taking turns")
    print(f"{'':44} {'without migration 8':>26} {'with migration 8':>26}")
    for name in results["with"]:
        before = _summary(results["without"].get(name, []) if "trigger" not in name else [])
        print(f"{name:44} {before:>26} {_summary(results['with'][name]):>26}")


if __name__ == "__main__":
    main()
