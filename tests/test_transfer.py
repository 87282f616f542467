"""Bulk import (COPY, all or nothing) and streamed export, against the real database."""

from __future__ import annotations

import asyncio
import gc
import socket
import uuid
from contextlib import aclosing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from tortoise import connections

from sets_db.config import settings
from sets_db.errors import FieldError, InvalidInputError, SetsDbError
from sets_db.schemas import SetCreate, SetOut
from sets_db.services import create_set, export_sets, get_set, import_sets, list_sets
from tests.factories import ALICE, BOB
from tests.pg import connect as connect_to

WISHLIST = uuid.UUID("0b7c3a5e-7d1f-4c55-9d40-7f2f3f0d2a11")


def _full_row(number: int) -> dict[str, Any]:
    """A row with every field set (the images too), distinct per number."""
    return {
        "title": f"  Millennium Falcon {number}  ",
        "set_number": f"75192-{number}",
        "store": "LEGO Store",
        "source_url": f"https://www.lego.com/product/{number}",
        "piece_count": 7541 + number,
        "release_date": datetime(2017, 10, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))),
        "theme": "Star Wars",
        "tags": ["ucs", "display", f"t{number}", "ucs"],
        "notes": "Bought on sale; 'quoted' and % literal",
        "is_built": number % 2 == 0,
        "quantity": 1 + number,
        "purchase_price": Decimal("799.99"),
        "tax": Decimal("64.00"),
        "shipping": Decimal("0.01"),
        "purchase_date": datetime(2023, 11, 24, 18, 0, 0, 123456, tzinfo=UTC),
        "wishlist_item_id": WISHLIST,
        "images": [
            {"image_url": f"https://img.test/{number}/0.jpg"},
            {
                "image_url": f"https://img.test/{number}/1.jpg",
                "thumbnail_url": f"https://img.test/{number}/1-thumb.jpg",
            },
        ],
    }


async def _all(user_id: str, batch_size: int = 1000) -> list[SetOut]:
    return [item async for item in export_sets(user_id=user_id, batch_size=batch_size)]


async def _counts(raw: Any) -> tuple[int, int]:
    return (
        await raw.fetchval("SELECT count(*) FROM sets"),
        await raw.fetchval("SELECT count(*) FROM set_images"),
    )


async def test_round_trip_keeps_every_field(db: str) -> None:
    rows = [_full_row(n) for n in range(3)]

    assert await import_sets(user_id=ALICE, rows=rows) == 3

    exported = await _all(ALICE)
    assert len(exported) == 3
    for item in exported:
        expected = SetCreate.model_validate(rows[int(item.set_number.split("-")[1])])  # type: ignore[union-attr]
        assert item.user_id == ALICE
        assert item.model_dump(include=set(SetCreate.model_fields) - {"images"}) == (
            expected.model_dump(exclude={"images"})
        )
        assert item.title.startswith("Millennium")  # trimmed like create_set
        assert item.tags[:2] == ["ucs", "display"]  # order kept, duplicates dropped
        assert item.purchase_price == Decimal("799.99")
        assert item.purchase_date == datetime(2023, 11, 24, 18, 0, 0, 123456, tzinfo=UTC)
        assert [(i.image_url, i.thumbnail_url, i.position) for i in item.images] == [
            (image.image_url, image.thumbnail_url, position)
            for position, image in enumerate(expected.images)
        ]
        assert all(image.set_id == item.id for image in item.images)
        # Export returns exactly what the service layer returns for the same set.
        assert await get_set(user_id=ALICE, set_id=item.id) == item


async def test_imported_rows_get_the_database_defaults(db: str, raw: Any) -> None:
    before = await raw.fetchval("SELECT now()")
    await import_sets(user_id=ALICE, rows=[{"title": "Minimal"}])

    [item] = await _all(ALICE)
    assert (item.tags, item.is_built, item.quantity, item.images) == ([], False, 1, [])
    assert item.created_at >= before
    assert item.updated_at == item.created_at
    assert (await list_sets(user_id=ALICE)).items == [item]


async def test_accepts_dtos_and_mappings_and_an_empty_batch(db: str) -> None:
    assert await import_sets(user_id=ALICE, rows=[]) == 0
    given: list[SetCreate | dict[str, Any]] = [SetCreate(title="As DTO"), {"title": "As mapping"}]
    rows = (row for row in given)
    assert await import_sets(user_id=ALICE, rows=rows) == 2
    assert sorted(item.title for item in await _all(ALICE)) == ["As DTO", "As mapping"]


async def test_a_bad_row_rejects_the_whole_batch_with_every_error(db: str, raw: Any) -> None:
    rows = [_full_row(n) for n in range(6)]
    rows[3]["purchase_price"] = Decimal("1.234")
    rows[5]["title"] = "   "
    rows[5]["images"][1]["image_url"] = "ftp://not-http"

    with pytest.raises(InvalidInputError) as caught:
        await import_sets(user_id=ALICE, rows=rows)

    assert {error.field for error in caught.value.errors} == {
        "rows.3.purchase_price",
        "rows.5.title",
        "rows.5.images.1.image_url",
    }
    assert await _counts(raw) == (0, 0)


async def test_a_failure_while_copying_writes_nothing(db: str, raw: Any) -> None:
    """The images COPY fails after the sets COPY succeeded: the sets are rolled back too."""
    rows = [_full_row(n) for n in range(4)]
    rows[2]["images"][0]["image_url"] = "https://img.test/refused.jpg"
    await raw.execute(
        "ALTER TABLE set_images ADD CONSTRAINT test_refuse"
        " CHECK (image_url <> 'https://img.test/refused.jpg')"
    )
    try:
        with pytest.raises(SetsDbError):
            await import_sets(user_id=ALICE, rows=rows)
    finally:
        await raw.execute("ALTER TABLE set_images DROP CONSTRAINT test_refuse")
    assert await _counts(raw) == (0, 0)


async def test_rows_land_under_the_given_owner_only(db: str, raw: Any) -> None:
    await import_sets(user_id=ALICE, rows=[_full_row(n) for n in range(3)])
    await import_sets(user_id=BOB, rows=[_full_row(n) for n in range(10, 12)])

    owners = await raw.fetch("SELECT user_id, count(*) FROM sets GROUP BY user_id ORDER BY 1")
    assert [tuple(row) for row in owners] == [(ALICE, 3), (BOB, 2)]
    assert {item.user_id for item in await _all(ALICE)} == {ALICE}
    assert sorted(item.set_number or "" for item in await _all(BOB)) == ["75192-10", "75192-11"]
    assert await _all("nobody") == []
    # A row cannot name another owner: user_id is not an input field.
    with pytest.raises(InvalidInputError) as caught:
        await import_sets(user_id=ALICE, rows=[{"title": "Sneaky", "user_id": BOB}])
    assert [error.field for error in caught.value.errors] == ["rows.0.user_id"]
    assert await raw.fetchval("SELECT count(*) FROM sets WHERE user_id = $1", BOB) == 2


async def test_export_streams_in_batches_newest_first(db: str) -> None:
    for n in range(5):  # one transaction each: created_at increases
        await import_sets(user_id=ALICE, rows=[{"title": f"Set {n}"}])
    await import_sets(user_id=BOB, rows=[{"title": "Bob's"}])

    exported = await _all(ALICE, batch_size=2)

    assert [item.title for item in exported] == [f"Set {n}" for n in reversed(range(5))]
    assert exported == await _all(ALICE, batch_size=1000)
    async with aclosing(export_sets(user_id=ALICE, batch_size=1)) as stream:
        async for first in stream:
            assert first.title == "Set 4"
            break


@pytest.mark.parametrize("batch_size", [0, -1, True])
async def test_export_rejects_a_bad_batch_size(db: str, batch_size: int) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await _all(ALICE, batch_size=batch_size)
    assert caught.value.errors[0].field == "batch_size"


async def test_import_and_export_work_in_row_level_security_mode(
    db: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under RLS PostgreSQL refuses a direct COPY FROM; import stages through a temp table."""
    monkeypatch.setenv("SETS_DB_RLS_ROLE", "sets_db_app")
    settings.cache_clear()
    await import_sets(user_id=BOB, rows=[_full_row(7)])

    assert await import_sets(user_id=ALICE, rows=[_full_row(n) for n in range(3)]) == 3

    assert len(await _all(ALICE)) == 3
    assert [item.set_number for item in await _all(BOB)] == ["75192-7"]
    assert await raw.fetchval("SELECT count(*) FROM set_images") == 8


async def test_many_batches_from_an_async_iterable_in_one_transaction(
    db: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows come in batches; a bad row in the last batch undoes the batches copied before."""
    from sets_db.services import transfer

    monkeypatch.setattr(transfer, "BATCH_ROWS", 3)
    monkeypatch.setattr(transfer, "SLICE_ROWS", 2)

    async def rows(count: int, bad: int | None = None) -> Any:
        for n in range(count):
            yield {"title": "" if n == bad else f"set {n}", "images": [{"image_url": IMAGE}]}

    assert await import_sets(user_id=ALICE, rows=rows(10)) == 10
    assert await _counts(raw) == (10, 10)
    with pytest.raises(InvalidInputError) as caught:
        await import_sets(user_id=ALICE, rows=rows(10, bad=9))
    assert [error.field for error in caught.value.errors] == ["rows.9.title"]
    assert await _counts(raw) == (10, 10)


IMAGE = "https://img.test/1.jpg"


async def test_each_slice_is_sent_as_it_stands_and_the_next_batch_checked_meanwhile(
    db: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COPY sends rows encoded beforehand, each slice in its own message, so the server
    starts on the first slice at once (asyncpg's own encoding sent nothing of a COPY before
    512 kB, and the server waited); the next batch is checked while the server works; the
    first COPY starts after one slice."""
    from sets_db.services import transfer

    monkeypatch.setattr(transfer, "BATCH_ROWS", 8)
    monkeypatch.setattr(transfer, "SLICE_ROWS", 2)
    events: list[str] = []
    messages: list[tuple[str, int]] = []
    copy_to_table = asyncpg.Connection.copy_to_table

    async def observed_copy(self: Any, table: str, **options: Any) -> Any:
        transport = self._transport
        write = transport.write
        sent = 0

        def observed_write(data: Any) -> None:
            nonlocal sent
            sent += bytes(data[:1]) == b"d"  # CopyData
            write(data)

        events.append(f"copy {table}")
        transport.write = observed_write
        try:
            return await copy_to_table(self, table, **options)
        finally:
            transport.write = write
            messages.append((table, sent))
            events.append("copied")

    checked_batch = transfer._checked_batch

    def observed_check(*arguments: Any) -> Any:
        events.append("check")
        return checked_batch(*arguments)

    monkeypatch.setattr(asyncpg.Connection, "copy_to_table", observed_copy)
    monkeypatch.setattr(transfer, "_checked_batch", observed_check)
    rows = [{"title": f"set {n}", "images": [{"image_url": IMAGE}]} for n in range(40)]

    assert await import_sets(user_id=ALICE, rows=rows) == 40

    assert await _counts(raw) == (40, 40)
    assert events[:2] == ["check", "copy sets"]
    # Each slice is a message, and header and trailer are messages of their own.
    for table in ("sets", "set_images"):
        sent = [count for name, count in messages if name == table]
        assert min(sent) >= 3
        assert sum(count - 2 for count in sent) == 20
    copies = [n for n, event in enumerate(events) if event == "copy sets"]
    assert "check" in events[copies[1] : copies[-1]]  # read ahead, not all before or after
    assert events.count("check") == 20


async def test_a_batch_ends_when_the_copier_waits_for_it_or_at_batch_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The copier gets what has been checked as soon as it is done with the last batch, never
    more than BATCH_ROWS; after a bad slice nothing is handed over, but all is read."""
    from sets_db.services import transfer
    from sets_db.services.copy_binary import Encoded

    monkeypatch.setattr(transfer, "BATCH_ROWS", 5)
    read: list[int] = []

    async def slices(bad: int | None = None) -> Any:
        for n in range(12):
            read.append(n)
            yield None if n == bad else Encoded(1, b"set %d" % n, b"")

    def waiting() -> bool:  # the copier is done after slices 3, 4 and 9
        return read[-1] in (3, 4, 9)

    batches = [batch async for batch in transfer.gathered(slices(), waiting)]

    assert [batch.count for batch in batches] == [4, 1, 5, 2]
    assert batches[1].sets == [b"set 4"]
    read.clear()
    assert [batch.count async for batch in transfer.gathered(slices(bad=6), waiting)] == [4, 1]
    assert read == list(range(12))


async def test_checking_resumes_after_the_task_that_ready_io_woke() -> None:
    """Between two slices the copier, woken by the server's reply, goes first: with
    ``asyncio.sleep(0)`` two more slices were checked before it ran."""
    from sets_db.services import transfer

    loop = asyncio.get_running_loop()
    server, client = socket.socketpair()
    server.setblocking(False)
    client.setblocking(False)
    events: list[str] = []

    async def copier() -> None:
        await loop.sock_recv(client, 1)
        events.append("copier")

    async def checking() -> None:
        for n in range(3):
            await transfer._after_ready_io()
            events.append(f"slice {n}")
            if n == 0:
                server.send(b"C")  # the server's reply arrives during slice 0

    try:
        await asyncio.gather(copier(), checking())
    finally:
        server.close()
        client.close()
    assert events == ["slice 0", "copier", "slice 1", "slice 2"]


def test_the_garbage_collector_never_scans_the_checked_rows() -> None:
    """Checking a slice and making its records happen in one pause of the collector: the
    validated sets are dropped before it runs again, so it never scans them."""
    from sets_db.services import transfer

    rows = [_full_row(n) for n in range(100)]
    scanned: list[SetCreate] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            scanned.extend(item for item in gc.get_objects(0) if isinstance(item, SetCreate))

    gc.callbacks.append(watch)
    try:
        records, errors = transfer._checked_batch(ALICE, rows, 0, True)
    finally:
        gc.callbacks.remove(watch)

    assert errors == []
    assert records is not None
    assert scanned == []


async def test_the_first_100_problems_and_the_total_are_reported(db: str, raw: Any) -> None:
    rows = [{"title": f"t{n}", "quantity": 0} for n in range(5000)]
    with pytest.raises(InvalidInputError) as caught:
        await import_sets(user_id=ALICE, rows=rows)
    errors = caught.value.errors
    assert len(errors) == 101
    assert errors[0].field == "rows.0.quantity"
    assert errors[99].field == "rows.99.quantity"
    assert errors[100] == FieldError("rows", "5000 problems in all; the first 100 are listed")
    assert await _counts(raw) == (0, 0)


@pytest.mark.parametrize("rows", [None, "title", {"title": "x"}, 5])
async def test_rows_must_be_an_iterable_of_sets(db: str, rows: Any) -> None:
    with pytest.raises(InvalidInputError, match="rows"):
        await import_sets(user_id=ALICE, rows=rows)


async def _scans_of_sets(raw: Any) -> Any:
    return await raw.fetchrow(
        "SELECT seq_scan + idx_scan AS scans, seq_tup_read FROM pg_stat_user_tables"
        " WHERE relname = 'sets'"
    )


async def _scans_after(raw: Any, before: Any, at_least: int) -> Any:
    """The statistics once the import's backend has reported its scans of ``sets``. An idle
    backend reports within 10 s, or at once when told to: the pool (and PgBouncer) hands out
    the connection released last, the import's. Each query here reads them afresh."""
    await connections.get("default").execute_query("SELECT pg_stat_force_next_flush()")
    for _ in range(150):
        after = await _scans_of_sets(raw)
        if after["scans"] - before["scans"] >= at_least:
            return after
        await asyncio.sleep(0.1)
    raise AssertionError(f"the import's scans were not reported: {before} -> {after}")


@pytest.mark.parametrize("rls_role", [None, "sets_db_app"])
async def test_each_image_finds_its_set_by_index_in_a_table_analyzed_as_small(
    db: str, raw: Any, monkeypatch: pytest.MonkeyPatch, rls_role: str | None
) -> None:
    """An image row's foreign key check looks its set up with a plan the server caches per
    connection. Made while the statistics call ``sets`` small (emptied then VACUUMed, or a
    few sets), it is a sequential scan, kept for the whole import: each image row read every
    set copied so far, quadratic (20,000 sets: 39 s instead of 2 s; 50,000 ran past the
    statement timeout)."""
    if rls_role:  # the import stages its rows and INSERTs them: the same checks
        monkeypatch.setenv("SETS_DB_RLS_ROLE", rls_role)
    await raw.execute("VACUUM sets")  # empty, as autovacuum or an operator leaves it
    for n in range(6):  # past PostgreSQL's five custom plans: the small-table plan is cached
        await create_set(
            user_id=ALICE, data={"title": f"set {n}", "images": [{"image_url": IMAGE}]}
        )
    before = await _scans_of_sets(raw)
    rows = [
        {"title": f"set {n}", "images": [{"image_url": IMAGE}, {"image_url": IMAGE}]}
        for n in range(1500)
    ]

    assert await import_sets(user_id=ALICE, rows=rows) == 1500

    after = await _scans_after(raw, before, at_least=3000)
    assert after["seq_tup_read"] - before["seq_tup_read"] < 1500


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("0E-5000", "0.00"),
        ("12.30" + "0" * 5000, "12.30"),
        ("0E-20000", "0.00"),
        ("1E+3", "1000.00"),
    ],
)
async def test_money_the_rules_accept_is_stored_whatever_its_exponent(
    db: str, raw: Any, given: str, stored: str
) -> None:
    """Money may be written with any number of trailing zeros (the rules count decimal places
    on the normalised value): it is stored at the column's scale, not refused on the way."""
    assert await import_sets(user_id=ALICE, rows=[{"title": "a", "purchase_price": given}]) == 1

    assert await raw.fetchval("SELECT purchase_price::text FROM sets") == stored


async def test_a_cancelled_import_ends_at_once_though_its_source_has_stalled(
    db: str, raw: Any
) -> None:
    """Cancelled while a COPY waits and the read-ahead waits for rows that never come (an
    upload that stopped sending), the import ends, closes the source and writes nothing."""
    closed: list[str] = []

    async def stalled_upload() -> Any:
        try:
            for n in range(150):
                yield {"title": f"set {n}"}
            await asyncio.Event().wait()
        finally:
            closed.append("source")

    blocker = await connect_to(db)
    # The summary's statement trigger takes this lock for ALICE: the first COPY waits on it.
    await blocker.execute("BEGIN")
    await blocker.execute(
        "SELECT pg_advisory_xact_lock(hashtext('set_collection_stats'), hashtext($1))", ALICE
    )
    try:
        task = asyncio.ensure_future(import_sets(user_id=ALICE, rows=stalled_upload()))
        await asyncio.sleep(1)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=10)
    finally:
        await blocker.execute("ROLLBACK")
        await blocker.close()

    assert done
    assert closed == ["source"]
    assert await raw.fetchval("SELECT count(*) FROM sets") == 0
