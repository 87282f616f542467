"""RLS mode overhead: the same service calls with and without ``SETS_DB_RLS_ROLE``.

Usage: python -m benchmarks.rls_overhead [SERVER_URL]   (default: the test server)

Creates a throwaway database, migrates it, seeds one owner with 200 sets (3 images each)
among 5 owners, then times each call in both modes, interleaved, and prints the ratio.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from sets_db import close_db, init_db, migrate
from sets_db.config import server_url_for_tests, settings
from sets_db.services import create_set, get_set, import_sets, list_sets
from tests.pg import create_database, drop_database

ROUNDS = 7
CALLS = 200


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        await call()
    return (time.perf_counter() - start) / CALLS * 1e6  # microseconds per call


async def main(server: str) -> None:
    url = await create_database(server, "bench")
    try:
        await migrate(url)
        await init_db(url)
        for owner in ("a", "b", "c", "d", "e"):
            rows = [
                {"title": f"{owner} {n}", "images": [{"image_url": "https://x/1"}] * 3}
                for n in range(200)
            ]
            await import_sets(user_id=owner, rows=rows)
        one = (await list_sets(user_id="a", limit=1)).items[0].id
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "get_set": lambda: get_set(user_id="a", set_id=one),
            "list_sets (50 per page)": lambda: list_sets(user_id="a"),
            "create_set (2 images)": lambda: create_set(
                user_id="a", data={"title": "x", "images": [{"image_url": "https://x/1"}] * 2}
            ),
        }
        print(f"{'call':28} {'off µs':>8} {'RLS µs':>8} {'ratio':>6}")
        for name, call in calls.items():
            off: list[float] = []
            on: list[float] = []
            for _ in range(ROUNDS):
                os.environ.pop("SETS_DB_RLS_ROLE", None)
                settings.cache_clear()
                off.append(await _timed(call))
                os.environ["SETS_DB_RLS_ROLE"] = "sets_db_app"
                settings.cache_clear()
                on.append(await _timed(call))
            os.environ.pop("SETS_DB_RLS_ROLE", None)
            settings.cache_clear()
            base, rls = statistics.median(off), statistics.median(on)
            print(f"{name:28} {base:8.0f} {rls:8.0f} {rls / base:6.2f}")
        await close_db()
    finally:
        await drop_database(url)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else server_url_for_tests()))
