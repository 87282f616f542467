"""``export_sets`` streams on a connection of its own: the caller's task stays free."""

from __future__ import annotations

import asyncio
import gc
from contextlib import aclosing

import pytest

from sets_db import services
from sets_db.errors import InvalidInputError
from tests.factories import ALICE


async def _three_sets() -> None:
    await services.import_sets(user_id=ALICE, rows=[{"title": f"set {n}"} for n in range(3)])


async def test_service_calls_inside_the_export_loop_work(db: str) -> None:
    await _three_sets()
    seen = []
    async with asyncio.timeout(20):  # hung forever when the export held the task's context
        async for item in services.export_sets(user_id=ALICE, batch_size=1):
            seen.append((await services.get_set(user_id=ALICE, set_id=item.id)).title)
            await services.update_set(user_id=ALICE, set_id=item.id, changes={"notes": "seen"})
    assert sorted(seen) == ["set 0", "set 1", "set 2"]
    page = await services.list_sets(user_id=ALICE)
    assert {item.notes for item in page.items} == {"seen"}


@pytest.mark.parametrize("closing", [True, False])
async def test_breaking_out_early_releases_everything(db: str, closing: bool) -> None:
    await _three_sets()
    for _ in range(15):  # more breaks than the pool has connections
        export = services.export_sets(user_id=ALICE, batch_size=1)
        if closing:
            async with aclosing(export) as items:
                async for _item in items:
                    break
        else:
            async for _item in export:
                break
            del export
            gc.collect()
            await asyncio.sleep(0)  # the loop's finaliser closes an abandoned generator
        # Later calls in this task work.
        assert len((await services.list_sets(user_id=ALICE)).items) == 3


async def test_a_batch_size_out_of_range_is_invalid_input(db: str) -> None:
    for bad in (0, 2**31, True, "10"):
        with pytest.raises(InvalidInputError):
            async for _item in services.export_sets(user_id=ALICE, batch_size=bad):  # type: ignore[arg-type]
                pass
