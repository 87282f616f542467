"""The hand-written asyncpg baselines: the same data as each service call, in the fewest
round trips we know how to write, with no DTOs (plain asyncpg Records)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from sets_db.config import settings
from sets_db.pool import release, reset_connection, session_settings

Pool = Any  # asyncpg.Pool (untyped)

# Images as an array of ROW()s: asyncpg decodes it in binary (faster than json_agg + json).
# Positions are unique within a set, so (position, id) is the whole order. An image's set_id
# is its set's id: not sent again.
IMAGES = """
(SELECT array_agg(ROW(i.id, i.image_url, i.thumbnail_url, i.position, i.created_at)
    ORDER BY i.position, i.id) FROM set_images i WHERE i.set_id = s.id) AS images
"""

GET_SET = f"SELECT s.*, {IMAGES} FROM sets s WHERE s.id = $1 AND s.user_id = $2"
# Pages: the page's rows first, then the images of those rows only (measured 7-10% faster
# than one SELECT with ORDER BY ... LIMIT around the image subquery).
_NEWEST = "ORDER BY s.created_at DESC, s.id DESC"
FIRST_PAGE = f"""
SELECT s.*, {IMAGES} FROM (SELECT * FROM sets s WHERE s.user_id = $1 {_NEWEST} LIMIT $2) s
{_NEWEST}
"""
DEEP_PAGE = f"""
SELECT s.*, {IMAGES} FROM (
    SELECT * FROM sets s WHERE s.user_id = $1 AND (s.created_at, s.id) < ($3, $4)
    {_NEWEST} LIMIT $2
) s {_NEWEST}
"""
FILTERED_PAGE = f"""
SELECT s.*, {IMAGES} FROM (
    SELECT * FROM sets s
    WHERE s.user_id = $1 AND s.theme = $3 AND s.tags @> $4::text[]
      AND (s.title ILIKE $5 OR s.set_number ILIKE $5)
    {_NEWEST} LIMIT $2
) s {_NEWEST}
"""
# The per-owner, per-theme summary the triggers of migration 8 keep: the fewest rows to read.
STATS = """
SELECT GROUPING(theme) AS is_total, theme, sum(set_count)::bigint AS set_count,
       sum(total_quantity)::bigint AS total_quantity, sum(total_pieces) AS total_pieces,
       sum(built_count)::bigint AS built_count, round(sum(money_spent), 2) AS money_spent
FROM set_collection_stats WHERE user_id = $1
GROUP BY ROLLUP (theme) ORDER BY is_total DESC, theme NULLS LAST
"""
DUPLICATES = f"""
SELECT s.*, {IMAGES} FROM sets s WHERE s.user_id = $1 AND s.set_number = $2
ORDER BY s.created_at, s.id
"""
# The set row is locked first (a separate statement, so the next one sees every image
# committed by a writer that held the lock before us); then one statement places the image.
LOCK = "SELECT 1 FROM sets WHERE id = $1 AND user_id = $2 FOR UPDATE"
ADD_IMAGE = """
INSERT INTO set_images (set_id, image_url, thumbnail_url, position)
SELECT $1, $2, $3, count(*) FROM set_images WHERE set_id = $1
RETURNING id, set_id, image_url, thumbnail_url, position, created_at
"""
# A single statement is atomic on its own: no explicit transaction needed.
UPDATE = f"""
WITH s AS (
    UPDATE sets SET notes = $3, quantity = $4,
        updated_at = GREATEST(clock_timestamp(), updated_at + interval '1 microsecond')
    WHERE id = $1 AND user_id = $2 RETURNING *
)
SELECT s.*, {IMAGES} FROM s
"""


class _Pool(asyncpg.Pool):  # type: ignore[misc]
    """asyncpg's pool, handling its connections as sets-db's do: no reset round trip
    (``reset_connection``: without it asyncpg's default reset, one more round trip on every
    release, would put the floor above sets-db) and, when the release has nothing to wait
    for, given back at once (``sets_db.pool.release``), not in a shielded task (without it
    the floor paid 16 us more per call, 35-45 per page, than sets-db). Pool mechanics, not
    what a service call adds."""

    # asyncpg's signature; the floor never passes a timeout.
    async def release(self, connection: Any, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await release(self, connection)


async def pool(dsn: str, size: int) -> Pool:
    # The session settings sets-db's connections run with: an unqualified table name under
    # the default search_path ("$user", public) alone made the floor's pages 4-5% slower.
    # What asyncpg.create_pool does, with the pool class above (these four have no default).
    return await _Pool(
        dsn,
        min_size=size,
        max_size=size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        reset=reset_connection,
        server_settings=session_settings(settings()),
    )


async def get_set(pool: Pool, user_id: str, set_id: UUID) -> Any:
    return await pool.fetchrow(GET_SET, set_id, user_id)


async def first_page(pool: Pool, user_id: str, limit: int = 50) -> Any:
    return await pool.fetch(FIRST_PAGE, user_id, limit + 1)


async def deep_page(pool: Pool, user_id: str, after: tuple[datetime, UUID], limit: int = 50) -> Any:
    return await pool.fetch(DEEP_PAGE, user_id, limit + 1, *after)


def like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def filtered_page(
    pool: Pool, user_id: str, theme: str, tag: str, search: str, limit: int = 50
) -> Any:
    return await pool.fetch(FILTERED_PAGE, user_id, limit + 1, theme, [tag], like(search))


STAT_SUMS = ("set_count", "total_quantity", "total_pieces", "built_count", "money_spent")


def totalled(themes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The whole collection's row from per-theme rows (what a peer without ROLLUP adds up)."""
    total: dict[str, Any] = dict.fromkeys(STAT_SUMS, 0)
    for row in themes:
        for name in STAT_SUMS:
            total[name] += row[name] or 0
    return total


async def collection_stats(pool: Pool, user_id: str) -> Any:
    return await pool.fetch(STATS, user_id)


async def find_duplicates(pool: Pool, user_id: str, set_number: str) -> Any:
    return await pool.fetch(DUPLICATES, user_id, set_number)


async def add_image(pool: Pool, user_id: str, set_id: UUID, image_url: str) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(LOCK, set_id, user_id) is None:
            raise LookupError(set_id)
        return await conn.fetchrow(ADD_IMAGE, set_id, image_url, None)


async def update_set(pool: Pool, user_id: str, set_id: UUID, notes: str, quantity: int) -> Any:
    return await pool.fetchrow(UPDATE, set_id, user_id, notes, quantity)
