"""``python -m benchmarks.cold_start``: what a cold start (a new Lambda instance) costs.

In one run, for fresh interpreters started one after the other (interleaved, so all see the
same machine state), the time from process start to the first ``get_set`` done:

- ``sets-db``: ``init_db()`` then ``get_set()``, as an API handler's first request does;
- ``asyncpg``: ``asyncpg.connect()`` then the same set and its images by hand;
- ``import tortoise``: the ORM's import alone (sets-db cannot be faster than that);
- ``tortoise + query``: ``import tortoise``, then the ``asyncpg`` program (the goal's floor);
- ``python``: an interpreter that does nothing (the floor every row includes).

Medians of ``--runs`` runs each. The goal: sets-db adds at most 100 ms on top of
``import tortoise`` plus the query (the ``tortoise + query`` row). ``--importtime`` also lists the
slowest imports of ``sets_db.services`` (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time

import asyncpg

from sets_db.config import asyncpg_dsn, redact, resolve_database, settings
from sets_db.migrator import migrate
from tests.pg import create_database, drop_database

USER = "cold-start-user"
DONE = "done"

SETS_DB = f"""
import asyncio
from sets_db.db import init_db
from sets_db.services import get_set

async def main(set_id):
    await init_db()
    await get_set(user_id={USER!r}, set_id=set_id)
    print({DONE!r}, flush=True)

import os, sys
asyncio.run(main(sys.argv[1]))
"""

ASYNCPG = f"""
import asyncio, os, sys
import asyncpg

async def main(set_id):
    conn = await asyncpg.connect(os.environ["COLD_START_DSN"])
    await conn.fetchrow("SELECT * FROM sets WHERE id = $1 AND user_id = $2", set_id, {USER!r})
    await conn.fetch("SELECT * FROM set_images WHERE set_id = $1 ORDER BY position", set_id)
    print({DONE!r}, flush=True)

asyncio.run(main(__import__("uuid").UUID(sys.argv[1])))
"""

TORTOISE = f"import tortoise\nprint({DONE!r}, flush=True)"
# The goal's floor in one interpreter: what they share (asyncio, ...) is counted once.
TORTOISE_AND_QUERY = "import tortoise\n" + ASYNCPG
PYTHON = f"print({DONE!r}, flush=True)"

PROGRAMS = {
    "sets-db": SETS_DB,
    "asyncpg": ASYNCPG,
    "import tortoise": TORTOISE,
    "tortoise + query": TORTOISE_AND_QUERY,
    "python": PYTHON,
}


async def prepare(server_url: str) -> tuple[str, str]:
    """A new migrated database with one set (and two images); returns its URL and the id."""
    url = await create_database(server_url, "cold_start")
    await migrate(url)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        set_id = await conn.fetchval(
            "INSERT INTO sets (user_id, title) VALUES ($1, 'Cold start') RETURNING id", USER
        )
        await conn.execute(
            "INSERT INTO set_images (set_id, image_url, position)"
            " VALUES ($1, 'https://x/0.jpg', 0), ($1, 'https://x/1.jpg', 1)",
            set_id,
        )
    finally:
        await conn.close()
    return url, str(set_id)


def time_once(program: str, url: str, set_id: str) -> float:
    """Seconds from spawning a fresh interpreter to its ``done`` line."""
    env = {**os.environ, "DATABASE_URL": url, "COLD_START_DSN": asyncpg_dsn(url)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", program, set_id], env=env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    elapsed = time.perf_counter() - started
    process.wait(timeout=60)
    if line != DONE:
        raise SystemExit(f"a cold-start program failed (exit {process.returncode})")
    return elapsed


def slowest_imports(module: str, top: int) -> list[tuple[float, str]]:
    """The ``top`` packages that ``import module`` spends most time in: each module's own
    import time (``self``), summed per top-level package (ms)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line)
        if match:
            name = match.group(2).split(".")[0]
            totals[name] = totals.get(name, 0.0) + int(match.group(1)) / 1000
    return sorted(((ms, name) for name, ms in totals.items()), reverse=True)[:top]


def report(times: dict[str, list[float]]) -> None:
    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    runs = len(next(iter(times.values())))
    print(f"process start to first get_set done, median of {runs} runs:")
    for name, ms in median.items():
        print(f"  {name:<16} {ms:7.1f} ms")
    added = median["sets-db"] - median["tortoise + query"]
    print(f"  sets-db / asyncpg: {median['sets-db'] / median['asyncpg']:.2f}x")
    print(
        f"  sets-db - (tortoise + query): {added:+.1f} ms"
        f" (goal: at most +100 ms) -> {'met' if added <= 100 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=11, help="runs of each program (median)")
    parser.add_argument(
        "--importtime",
        type=int,
        default=8,
        metavar="N",
        help="list the N slowest top-level imports of sets_db.services (0: no)",
    )
    args = parser.parse_args()
    server = resolve_database(settings())
    print(f"database: {server.describe()}", file=sys.stderr)
    url, set_id = asyncio.run(prepare(server.url))
    try:
        times: dict[str, list[float]] = {name: [] for name in PROGRAMS}
        for program in PROGRAMS.values():  # a warm-up each: the OS caches the files
            time_once(program, url, set_id)
        for _ in range(args.runs):
            for name, program in PROGRAMS.items():
                times[name].append(time_once(program, url, set_id))
        report(times)
        if args.importtime:
            print("import sets_db.services, time per package (python -X importtime, self):")
            for ms, name in slowest_imports("sets_db.services", args.importtime):
                print(f"  {name:<24} {ms:7.1f} ms")
    finally:
        asyncio.run(drop_database(url))
    print(f"(database {redact(url)} dropped)", file=sys.stderr)


if __name__ == "__main__":
    main()
