"""``get_set`` and a ``list_sets`` page cost a constant number of queries (at most 2)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import pytest

from sets_db import services
from tests.factories import ALICE


@contextmanager
def counting_queries() -> Iterator[list[str]]:
    """Every statement any asyncpg connection sends, with or without parameters."""
    queries: list[str] = []
    with_args, plain = asyncpg.Connection._execute, asyncpg.Connection.execute

    async def counted_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        queries.append(query)
        return await with_args(self, query, *args, **kwargs)

    async def counted_plain(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # with arguments, execute() goes through _execute
            queries.append(query)
        return await plain(self, query, *args, **kwargs)

    asyncpg.Connection._execute = counted_execute
    asyncpg.Connection.execute = counted_plain
    try:
        yield queries
    finally:
        asyncpg.Connection._execute = with_args
        asyncpg.Connection.execute = plain


async def _make(sets: int, images: int) -> None:
    for n in range(sets):
        await services.create_set(
            user_id=ALICE,
            data={
                "title": f"set {n}",
                "images": [{"image_url": f"https://i/{n}/{k}.jpg"} for k in range(images)],
            },
        )


@pytest.mark.parametrize(("sets", "images"), [(1, 0), (3, 1), (12, 6)])
async def test_queries_do_not_grow_with_items_or_images(db: str, sets: int, images: int) -> None:
    await _make(sets, images)
    page_size = 5
    with counting_queries() as page_queries:
        page = await services.list_sets(user_id=ALICE, limit=page_size)
    assert len(page.items) == min(sets, page_size)
    assert all(len(item.images) == images for item in page.items)
    if page.next_cursor:
        with counting_queries() as next_queries:
            await services.list_sets(user_id=ALICE, limit=page_size, cursor=page.next_cursor)
        assert 1 <= len(next_queries) <= 2
    with counting_queries() as get_queries:
        found = await services.get_set(user_id=ALICE, set_id=page.items[0].id)
    assert len(found.images) == images
    assert 1 <= len(page_queries) <= 2, page_queries
    assert 1 <= len(get_queries) <= 2, get_queries
