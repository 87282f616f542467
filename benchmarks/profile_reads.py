"""Where a sets-db read spends its time beyond the raw floor: ``get_set`` and the first page.

Usage: python -m benchmarks.profile_reads [--sets N] [--users N] [--calls N] [--pyinstrument]

Loads a synthetic collection into a throwaway database, then times each stage of the two
calls apart, in-process, on the fetched rows (median of ``--calls``): the statement through
sets-db's session, turning records into dicts, pydantic validation, cursor encoding. With
``--pyinstrument`` (``bench`` extra) it also prints a call-tree profile of each call.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic

from benchmarks import data
from sets_db import close_db, init_db, migrate, services, sessions
from sets_db.config import DEFAULT_CONNECTION, asyncpg_dsn, server_url_for_tests
from sets_db.schemas import SetOut, SetQuery
from sets_db.services import listing, rows
from sets_db.sessions import owner_read
from tests.pg import create_database, drop_database


def _median_us(fn: Callable[[], Any], calls: int) -> float:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


async def _amedian_us(fn: Callable[[], Awaitable[Any]], calls: int) -> float:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


async def _load(url: str, sets: int, users: int) -> None:
    import asyncpg

    rng = random.Random(7)
    numbers = data.set_numbers(rng)
    owners = data.owners(rng, data.user_ids(users), sets)
    sets_rows, images = data.copy_records(
        rng, [data.set_row(rng, numbers) for _ in range(sets)], owners
    )
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.copy_records_to_table("sets", records=sets_rows, columns=data.SET_COLUMNS)
        await conn.copy_records_to_table("set_images", records=images, columns=data.IMAGE_COLUMNS)
        await conn.execute("VACUUM ANALYZE sets")
        await conn.execute("VACUUM ANALYZE set_images")
    finally:
        await conn.close()


# What sets-db would pay to have pydantic validate the rows instead of building them.
_VALIDATED_PAGE = pydantic.TypeAdapter(list[SetOut])


def _prepared(row: Any) -> dict[str, Any]:
    """A row as the dict pydantic would validate."""
    prepared = dict(row)
    prepared["images"] = [
        {**dict(zip(rows.IMAGE_ROW_FIELDS, image, strict=True)), "set_id": row["id"]}
        for image in row["images"] or ()
    ]
    return prepared


async def _stages(user_id: str, calls: int) -> None:
    one = (await services.list_sets(user_id=user_id, limit=1)).items[0].id
    query = SetQuery()
    sql, values = listing.build_page_sql(query, user_id)

    async def fetch_one() -> Any:
        async with owner_read(user_id) as session:
            return await session.raw.fetchrow(rows.FETCH_SET_SQL, one, user_id)

    async def fetch_page() -> Any:
        async with owner_read(user_id) as session:
            return await session.raw.fetch(sql, *values)

    async def session_only() -> None:
        async with owner_read(user_id) as session:
            await session.raw.fetchval("SELECT 1")

    pool = await sessions._pool(sessions._client(DEFAULT_CONNECTION))

    async def pool_only() -> None:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def pool_page() -> Any:
        async with pool.acquire() as conn:
            return await conn.fetch(sql, *values)

    row = await fetch_one()
    page_rows = (await fetch_page())[: query.limit]
    prepared = [_prepared(r) for r in page_rows]
    items = rows.to_sets(list(page_rows))  # to_sets empties the list it is given
    report = {
        "get_set: whole call": await _amedian_us(
            lambda: services.get_set(user_id=user_id, set_id=one), calls
        ),
        "get_set: owner_read + fetchrow": await _amedian_us(fetch_one, calls),
        "get_set: to_set": _median_us(lambda: rows.to_set(row), calls),
        "get_set: dict + pydantic validation instead": _median_us(
            lambda: SetOut.model_validate(_prepared(row)), calls
        ),
        "page: whole call (50)": await _amedian_us(
            lambda: services.list_sets(user_id=user_id), calls
        ),
        "page: owner_read + fetch": await _amedian_us(fetch_page, calls),
        "page: SetQuery validation + SQL": _median_us(
            lambda: listing.build_page_sql(SetQuery(), user_id), calls
        ),
        "page: to_sets (50)": _median_us(lambda: rows.to_sets(list(page_rows)), calls),
        "page: record -> dicts (50)": _median_us(lambda: [_prepared(r) for r in page_rows], calls),
        "page: pydantic validation of those instead": _median_us(
            lambda: _VALIDATED_PAGE.validate_python(prepared), calls
        ),
        "page: cursor encoding": _median_us(
            lambda: listing._encode_cursor(query, items[-1]), calls
        ),
        "page: same pool, plain acquire + fetch": await _amedian_us(pool_page, calls),
        "session: owner_read + SELECT 1": await _amedian_us(session_only, calls),
        "session: same pool, plain acquire + SELECT 1": await _amedian_us(pool_only, calls),
    }
    for name, micros in report.items():
        print(f"{name:42} {micros:9.1f} us")


async def _tree(user_id: str, calls: int) -> None:
    from pyinstrument import Profiler

    one = (await services.list_sets(user_id=user_id, limit=1)).items[0].id
    for name, call in (
        ("get_set", lambda: services.get_set(user_id=user_id, set_id=one)),
        ("list_sets", lambda: services.list_sets(user_id=user_id)),
    ):
        profiler = Profiler(interval=0.0001, async_mode="disabled")
        profiler.start()
        for _ in range(calls):
            await call()
        profiler.stop()
        print(f"\n=== {name} x{calls}")
        print(profiler.output_text(unicode=False, color=False, show_all=False))


async def main(args: argparse.Namespace) -> None:
    url = await create_database(server_url_for_tests(), "profile")
    try:
        await migrate(url)
        await init_db(url)
        await _load(url, args.sets, args.users)
        user_id = data.user_ids(args.users)[0]  # a power user: full pages
        for _ in range(2):  # warm: statements prepared, classes built
            await _stages(user_id, 50)
        await _stages(user_id, args.calls)
        if args.pyinstrument:
            await _tree(user_id, args.calls)
        await close_db()
    finally:
        await drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_reads")
    parser.add_argument("--sets", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--pyinstrument", action="store_true")
    asyncio.run(main(parser.parse_args()))
