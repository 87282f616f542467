"""The import's own binary COPY encoding stores exactly what asyncpg's codecs store.

asyncpg's ``copy_records_to_table`` is the oracle: the same checked sets, COPYed once as the
import encodes them and once as asyncpg encodes them (each into a table made ``LIKE`` the real
one: the same column types), must read back as the same text, column by column.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sets_db.errors import SchemaMismatchError
from sets_db.schemas import EARLIEST, LATEST, SetCreate
from sets_db.services import copy_binary, import_sets
from sets_db.services.copy_binary import HEADER, IMAGE_COLUMNS, SET_COLUMNS, TRAILER
from tests.pg import connect
from tests.test_fuzz import EXAMPLES

T = TypeVar("T")
OWNER = "owner-7f3a"

# Valid input, mostly: what the DTOs refuse is dropped before encoding.
_letters = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
texts = st.one_of(
    st.text(_letters, min_size=1, max_size=30),
    st.sampled_from(["🧱 brick", "ÆØÅ", "'quoted' \\ back", "%_", "\U0001d518\U0001d52b"]),
)
urls = st.builds(lambda path: f"https://img.example/{path}", st.text(_letters, max_size=20))
money = st.one_of(
    st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=2),
    st.sampled_from(
        [0, 5, "12.30", Decimal("0"), Decimal("-0"), Decimal("0.00"), Decimal("1E+3"),
         Decimal("1.5"), Decimal("1.500"), Decimal("0.01"), Decimal("10000"),
         Decimal("12345678.9"), Decimal("99999999.99"), Decimal("100000.10")]
    ),
)  # fmt: skip
moments = st.one_of(
    st.datetimes(
        min_value=EARLIEST.replace(tzinfo=None),
        max_value=LATEST.replace(tzinfo=None),
        timezones=st.timezones(),
    ),
    st.sampled_from(
        [EARLIEST, datetime(2000, 1, 1, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, 999999,
         tzinfo=UTC), datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
    ),
)  # fmt: skip
OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "set_number": texts,
    "store": texts,
    "source_url": urls,
    "piece_count": st.integers(0, 10_000_000),
    "release_date": moments,
    "theme": texts,
    "notes": st.one_of(texts, st.just("two\nlines\twith tab\r\n")),
    "purchase_price": money,
    "tax": money,
    "shipping": money,
    "purchase_date": moments,
    "wishlist_item_id": st.uuids(),
    "tags": st.lists(texts, max_size=6),
    "is_built": st.booleans(),
    "quantity": st.integers(1, 1_000_000),
    "images": st.lists(
        st.fixed_dictionaries({"image_url": urls}, optional={"thumbnail_url": urls}), max_size=3
    ),
}
payloads = st.fixed_dictionaries(
    {"title": texts},
    optional={name: st.one_of(st.none(), value) for name, value in OPTIONAL.items()},
)


def _valid(candidates: list[dict[str, Any]]) -> list[SetCreate]:
    valid = []
    for candidate in candidates:
        given = {name: value for name, value in candidate.items() if value is not None}
        with contextlib.suppress(pydantic.ValidationError):
            valid.append(SetCreate.model_validate(given))
    return valid


def _asyncpg_records(
    sets: list[SetCreate], ids: list[uuid.UUID]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    set_records: list[tuple[Any, ...]] = []
    image_records: list[tuple[Any, ...]] = []
    for data, set_id in zip(sets, ids, strict=True):
        set_records.append((set_id, OWNER, *(getattr(data, name) for name in SET_COLUMNS[2:])))
        image_records.extend(
            (set_id, image.image_url, image.thumbnail_url, position)
            for position, image in enumerate(data.images)
        )
    return set_records, image_records


def _as_text(columns: tuple[str, ...], table: str) -> str:
    # Text, not values: 1.5 = 1.50 as numerics, but a different display scale is a difference.
    # quote_nullable: NULL is NULL, any text (even 'NULL') is quoted.
    row = " || ',' || ".join(f"quote_nullable({column}::text)" for column in columns)
    return f"SELECT {row} AS row FROM {table} ORDER BY 1"


async def _rows(conn: Any, table: str, columns: tuple[str, ...]) -> list[str]:
    return [row["row"] for row in await conn.fetch(_as_text(columns, table))]


async def _copy_ours(conn: Any, table: str, columns: tuple[str, ...], rows: bytes) -> None:
    source = io.BytesIO(HEADER + rows + TRAILER)
    await conn.copy_to_table(table, source=source, columns=columns, format="binary")


async def _compare(conn: Any, sets: list[SetCreate], monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [uuid.uuid4() for _ in sets]
    monkeypatch.setattr(copy_binary, "new_ids", lambda count: [i.bytes for i in ids[:count]])
    encoded = copy_binary.encode(OWNER, sets)
    set_records, image_records = _asyncpg_records(sets, ids)
    async with conn.transaction():
        for name, source in (("sets", "public.sets"), ("images", "public.set_images")):
            for copy in ("ours", "theirs"):
                await conn.execute(
                    f"CREATE TEMPORARY TABLE {name}_{copy} (LIKE {source} INCLUDING DEFAULTS)"
                )
        await _copy_ours(conn, "sets_ours", SET_COLUMNS, encoded.sets)
        await _copy_ours(conn, "images_ours", IMAGE_COLUMNS, encoded.images)
        await conn.copy_records_to_table("sets_theirs", records=set_records, columns=SET_COLUMNS)
        await conn.copy_records_to_table(
            "images_theirs", records=image_records, columns=IMAGE_COLUMNS
        )
        assert await _rows(conn, "sets_ours", SET_COLUMNS) == await _rows(
            conn, "sets_theirs", SET_COLUMNS
        )
        assert await _rows(conn, "images_ours", IMAGE_COLUMNS) == await _rows(
            conn, "images_theirs", IMAGE_COLUMNS
        )
        assert encoded.set_count == len(sets)
        await conn.execute("DROP TABLE sets_ours, sets_theirs, images_ours, images_theirs")


@pytest.fixture(scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    """The loop the session's fixtures live on; the sync property test drives it directly."""
    return asyncio.get_running_loop()


def test_every_valid_set_is_stored_as_asyncpg_would_store_it(
    db: str, session_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return session_loop.run_until_complete(coroutine)

    conn = run(connect(db))
    checked = [0]

    @settings(
        max_examples=max(EXAMPLES // 10, 50),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(candidates=st.lists(payloads, min_size=1, max_size=12))
    def same_rows(candidates: list[dict[str, Any]]) -> None:
        sets = _valid(candidates)
        checked[0] += len(sets)
        run(_compare(conn, sets, monkeypatch))

    try:
        same_rows()
    finally:
        run(conn.close())
    assert checked[0] > 100  # the strategies make valid sets, mostly


async def test_edge_values_are_stored_as_asyncpg_would_store_them(
    raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each edge, one set apiece: the numeric, timestamp and array forms a hand-written
    encoder is most likely to get wrong."""
    edges: list[dict[str, Any]] = [{"title": "nulls everywhere"}]
    for value in ["0", "-0", "0.00", "1E+3", "1.500", "0.01", "10000", "99999999.99", "0.1"]:
        edges.append({"title": f"money {value}", "purchase_price": Decimal(value)})
    for moment in [
        EARLIEST,
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "2024-03-31T02:30:00+05:45",
    ]:
        edges.append({"title": f"moment {moment}", "release_date": moment})
    edges += [
        {"title": "no tags", "tags": []},
        {"title": "tags", "tags": ["a", "🧱", "x" * 50, 'quote " and {brace}']},
        {"title": "limits", "piece_count": 10_000_000, "quantity": 1_000_000, "is_built": True},
        {"title": "zero pieces", "piece_count": 0},
    ]
    sets = _valid(edges)
    assert len(sets) == len(edges)
    await _compare(raw, sets, monkeypatch)


def test_new_ids_are_distinct_random_version_4_uuids() -> None:
    """The ids an import makes are what ``gen_random_uuid()`` makes: random, version 4,
    RFC 4122 variant."""
    ids = [uuid.UUID(bytes=raw) for raw in copy_binary.new_ids(2000)]

    assert len(set(ids)) == len(ids)
    assert {(set_id.version, set_id.variant) for set_id in ids} == {(4, uuid.RFC_4122)}
    assert len({set_id.int >> 80 for set_id in ids}) > 1990  # random, not counted up


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("ALTER TABLE sets ALTER COLUMN quantity TYPE bigint",
         "sets.quantity is bigint, not integer"),
        ("ALTER TABLE sets ALTER COLUMN tags TYPE varchar[]",
         "sets.tags is character varying[], not text[]"),
        ("ALTER TABLE set_images ALTER COLUMN created_at TYPE timestamp", None),  # not written
    ],
)  # fmt: skip
async def test_a_column_another_client_retyped_is_named_before_anything_is_copied(
    migrated_database: Any, change: str, expected: str | None
) -> None:
    """The rows are encoded for the schema's types: the server would read a bigint column's
    field as 8 bytes and fail with a protocol violation ("unavailable, safe to retry")."""
    from sets_db.services import transfer

    conn = await connect(await migrated_database())
    try:
        await conn.execute(change)
        if expected is None:
            await transfer._check_column_types(conn)
            return
        with pytest.raises(SchemaMismatchError) as caught:
            await transfer._check_column_types(conn)
    finally:
        await conn.close()
    assert expected in caught.value.detail
    assert "migrate --check" in caught.value.detail


async def test_the_import_checks_the_live_types_first(
    raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check runs in the import's transaction, before any COPY: nothing is written."""
    from sets_db.services import transfer

    monkeypatch.setattr(transfer, "mismatched_columns", lambda live: ["sets.quantity is bigint"])

    with pytest.raises(SchemaMismatchError):
        await import_sets(
            user_id=OWNER, rows=[{"title": "a", "images": [{"image_url": "https://i.test/a"}]}]
        )

    assert await raw.fetchval("SELECT count(*) FROM sets") == 0
