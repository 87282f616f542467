"""One owner's collection as a whole: stats, themes, tags, duplicates
(sets_db.services.collection)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sets_db import services
from sets_db.errors import InvalidInputError
from tests.factories import ALICE, BOB, FULL_SET, small_collection


async def test_stats_themes_tags(db: str) -> None:
    await small_collection()
    stats = await services.collection_stats(user_id=ALICE)
    assert (stats.set_count, stats.total_quantity, stats.built_count) == (5, 5, 2)
    assert stats.not_built_count == 3
    assert stats.total_pieces == 100 + 300 + 50 + 200
    assert stats.money_spent == Decimal("36.50")
    by_theme = {theme.theme: theme for theme in stats.themes}
    assert by_theme["City"].set_count == 2
    assert by_theme["City"].money_spent == Decimal("10.00")
    assert by_theme[None].set_count == 1
    themes = await services.list_themes(user_id=ALICE)
    assert [(t.name, t.count) for t in themes] == [("City", 2), ("Icons", 1), ("Technic", 1)]
    tags = await services.list_tags(user_id=ALICE)
    assert [(t.name, t.count) for t in tags] == [("a", 3), ("b", 3), ("c", 1)]


async def test_stats_count_quantity_and_all_money(db: str) -> None:
    await services.create_set(user_id=ALICE, data=FULL_SET)
    stats = await services.collection_stats(user_id=ALICE)
    assert stats.total_quantity == 2
    assert stats.total_pieces == 7541 * 2
    assert stats.money_spent == Decimal("849.99") + Decimal("70.12") + Decimal("0.01")
    empty = await services.collection_stats(user_id=BOB)
    assert (empty.set_count, empty.money_spent, empty.themes) == (0, Decimal("0.00"), [])


async def test_duplicates(db: str) -> None:
    await small_collection()
    dupes = await services.find_duplicates(user_id=ALICE, set_number="3")
    assert [d.title for d in dupes] == ["C O'Brien", "D plain"]
    assert await services.find_duplicates(user_id=ALICE, set_number="75192") == []
    # Stripped, as a stored set number is.
    assert await services.find_duplicates(user_id=ALICE, set_number=" 3 ") == dupes
    groups = await services.list_duplicate_groups(user_id=ALICE)
    assert [(g.set_number, len(g.set_ids)) for g in groups] == [("3", 2)]


async def test_stats_of_a_huge_collection_do_not_overflow(db: str) -> None:
    top = Decimal("99999999.99")
    rows = [{"title": "gold", "purchase_price": top, "tax": top, "shipping": top}] * 3400
    await services.import_sets(user_id=ALICE, rows=rows)
    stats = await services.collection_stats(user_id=ALICE)
    assert stats.money_spent == top * 3 * 3400
    assert stats.money_spent.as_tuple().exponent == -2  # cents, as stored


async def test_totals_past_bigint_are_exact(db: str, raw: Any) -> None:
    # Another client may store the column maxima; their products pass bigint by far.
    biggest = 2**31 - 1
    for _ in range(3):
        await raw.execute(
            "INSERT INTO sets (user_id, title, piece_count, quantity) VALUES ($1, 'max', $2, $2)",
            ALICE,
            biggest,
        )
    stats = await services.collection_stats(user_id=ALICE)
    assert stats.total_quantity == 3 * biggest
    assert stats.total_pieces == 3 * biggest * biggest
    assert stats.themes[0].total_pieces == 3 * biggest * biggest


@pytest.mark.parametrize("set_number", [None, 75192, "75\x00192", "7" * 201, b"75192"])
async def test_a_bad_set_number_to_look_up_is_named(db: str, set_number: Any) -> None:
    with pytest.raises(InvalidInputError) as raised:
        await services.find_duplicates(user_id=ALICE, set_number=set_number)
    assert [error.field for error in raised.value.errors] == ["set_number"]
