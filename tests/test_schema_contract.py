"""The schema the migrations build, checked against the contract (``shared/spec/schema.md``).

Everything here is read back from PostgreSQL (information_schema / pg_catalog), never from
the models: the models could be wrong in the same way as the migrations.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sets_db.models import Set, SetImage
from tests.pg import (
    REPO_ROOT,
    aerich,
    aerich_in,
    catalog,
    connect,
    copy_project,
    create_database,
    drop_database,
    migration_files,
    output_of,
)

Catalog = dict[str, list[tuple[Any, ...]]]

# --- The contract, transcribed from schema.md, in the catalog's own spelling ----------------
# (column, format_type(), NOT NULL, column_default). Spelling: timestamptz is
# "timestamp with time zone", '{}' is "'{}'::text[]".
TZ = "timestamp with time zone"
MONEY = "numeric(10,2)"
CONTRACT: dict[str, list[tuple[str, str, bool, str | None]]] = {
    "sets": [
        ("id", "uuid", True, "gen_random_uuid()"),
        ("user_id", "text", True, None),
        ("title", "text", True, None),
        ("set_number", "text", False, None),
        ("store", "text", False, None),
        ("source_url", "text", False, None),
        ("piece_count", "integer", False, None),
        ("release_date", TZ, False, None),
        ("theme", "text", False, None),
        ("tags", "text[]", False, "'{}'::text[]"),
        ("notes", "text", False, None),
        ("is_built", "boolean", True, "false"),
        ("quantity", "integer", True, "1"),
        ("purchase_price", MONEY, False, None),
        ("tax", MONEY, False, None),
        ("shipping", MONEY, False, None),
        ("purchase_date", TZ, False, None),
        ("wishlist_item_id", "uuid", False, None),
        ("created_at", TZ, True, "now()"),
        ("updated_at", TZ, True, "now()"),
    ],
    "set_images": [
        ("id", "uuid", True, "gen_random_uuid()"),
        ("set_id", "uuid", True, None),
        ("image_url", "text", True, None),
        ("thumbnail_url", "text", False, None),
        ("position", "integer", True, "0"),
        ("created_at", TZ, True, "now()"),
    ],
}
# Named indexes: (table, name, pg_indexes.indexdef). The definition pins the columns, their
# order, the method, uniqueness and the absence of a predicate.
BTREE = "CREATE INDEX {name} ON public.{table} USING btree ({columns})"
CONTRACT_INDEXES = [
    (table, name, BTREE.format(name=name, table=table, columns=columns))
    for table, name, columns in [
        ("sets", "sets_user_id_idx", "user_id"),
        ("sets", "sets_set_number_idx", "set_number"),
        ("sets", "sets_theme_idx", "theme"),
        ("set_images", "set_images_set_id_idx", "set_id"),
    ]
]
# Constraints: (table, contype, definition, confdeltype). 'c' = ON DELETE CASCADE. No other
# FK: user_id and wishlist_item_id reference nothing (yet).
CONTRACT_CONSTRAINTS = [
    ("set_images", b"f", "FOREIGN KEY (set_id) REFERENCES sets(id) ON DELETE CASCADE", b"c"),
    ("set_images", b"p", "PRIMARY KEY (id)", b" "),
    ("sets", b"p", "PRIMARY KEY (id)", b" "),
]
# ``seed-drizzle-reference.sql`` from the spec folder (what drizzle-kit 0.31 generates from the
# story's schema), copied here so a clone without ../shared still runs every test;
# test_the_drizzle_copy_is_the_spec_file keeps the two in step.
DRIZZLE_SPEC_FILE = REPO_ROOT.parent / "shared" / "spec" / "seed-drizzle-reference.sql"
DRIZZLE_REFERENCE_SQL = """
CREATE TABLE "set_images" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "set_id" uuid NOT NULL,
    "image_url" text NOT NULL,
    "thumbnail_url" text,
    "position" integer DEFAULT 0 NOT NULL,
    "created_at" timestamp DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sets" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "user_id" text NOT NULL,
    "title" text NOT NULL,
    "set_number" text,
    "store" text,
    "source_url" text,
    "piece_count" integer,
    "release_date" timestamp,
    "theme" text,
    "tags" text[] DEFAULT '{}',
    "notes" text,
    "is_built" boolean DEFAULT false NOT NULL,
    "quantity" integer DEFAULT 1 NOT NULL,
    "purchase_price" numeric(10, 2),
    "tax" numeric(10, 2),
    "shipping" numeric(10, 2),
    "purchase_date" timestamp,
    "wishlist_item_id" uuid,
    "created_at" timestamp DEFAULT now() NOT NULL,
    "updated_at" timestamp DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "set_images" ADD CONSTRAINT "set_images_set_id_sets_id_fk"
    FOREIGN KEY ("set_id") REFERENCES "public"."sets"("id") ON DELETE cascade
    ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "set_images_set_id_idx" ON "set_images" USING btree ("set_id");--> statement-breakpoint
CREATE INDEX "sets_user_id_idx" ON "sets" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "sets_set_number_idx" ON "sets" USING btree ("set_number");--> statement-breakpoint
CREATE INDEX "sets_theme_idx" ON "sets" USING btree ("theme");
"""


def _columns(cat: Catalog, table: str) -> list[tuple[str, str, bool, str | None]]:
    """``table``'s columns as (name, type, NOT NULL, default), in contract order."""
    rows = [
        (name, type_, nullable == "NO", default)
        for table_name, name, _position, type_, nullable, default in cat["columns"]
        if table_name == table
    ]
    order = [name for name, *_ in CONTRACT.get(table, [])]
    return sorted(rows, key=lambda row: (order.index(row[0]) if row[0] in order else 99, row[0]))


def _constraints(cat: Catalog, tables: tuple[str, ...] = ("sets", "set_images")) -> list[Any]:
    """Keys without their names (drizzle and aerich name the FK differently). The CHECK
    constraints of migration 4 are not the story's; tests/test_constraints.py covers them."""
    return sorted(
        (table, contype, definition, deltype)
        for table, _name, contype, definition, deltype in cat["constraints"]
        if table in tables and contype != b"c"
    )


# --- Databases shared by the read-only checks of this module --------------------------------


@pytest.fixture(scope="module")
async def head(server_url: str) -> AsyncIterator[tuple[str, list[str]]]:
    """An empty database taken to head by the real ``aerich upgrade``; (url, its output)."""
    url = await create_database(server_url, "head")
    try:
        yield url, output_of(aerich(url, "upgrade"))
    finally:
        await drop_database(url)


@pytest.fixture(scope="module")
async def head_catalog(head: tuple[str, list[str]]) -> Catalog:
    return await catalog(head[0])


@pytest.fixture(scope="module")
async def drizzle_catalog(server_url: str) -> AsyncIterator[Catalog]:
    """What the story's own tool builds: the reference DDL applied to an empty database."""
    url = await create_database(server_url, "drizzle")
    try:
        conn = await connect(url)
        try:
            await conn.execute(DRIZZLE_REFERENCE_SQL)  # "--> statement-breakpoint" is a comment
        finally:
            await conn.close()
        yield await catalog(url)
    finally:
        await drop_database(url)


# --- 2. Upgrade on an empty database reaches head and matches the contract -----------------


async def test_cli_upgrade_on_an_empty_database_reaches_head(head: tuple[str, list[str]]) -> None:
    url, upgrade_output = head
    files = [path.name for path in migration_files()]
    assert upgrade_output == [f"Success upgrading to {name}" for name in files]
    assert output_of(aerich(url, "heads")) == ["No available heads."]
    assert output_of(aerich(url, "upgrade")) == ["No upgrade items found"]


@pytest.mark.parametrize("table", list(CONTRACT))
def test_columns_match_the_contract(head_catalog: Catalog, table: str) -> None:
    assert _columns(head_catalog, table) == CONTRACT[table]


def test_contract_indexes_exist_with_their_definition(head_catalog: Catalog) -> None:
    """Later migrations may add indexes; the contract's ones must stay exactly as they are."""
    indexes = {(table, name): definition for table, name, definition in head_catalog["indexes"]}
    for table, name, definition in CONTRACT_INDEXES:
        assert indexes.get((table, name)) == definition, name


def test_keys_and_the_delete_rule_match_the_contract(head_catalog: Catalog) -> None:
    assert _constraints(head_catalog) == sorted(CONTRACT_CONSTRAINTS)


async def test_schema_at_migration_1_is_exactly_the_contract(
    server_url: str, tmp_path: Path
) -> None:
    """After migrations 0 and 1 (a copy of the project whose history stops there), the schema
    is the contract plus aerich's table: nothing more, nothing less."""
    project = copy_project(tmp_path / "at-1", upto=2)
    url = await create_database(server_url, "at1")
    try:
        output_of(aerich_in(project, url, "upgrade"))
        cat = await catalog(url)
    finally:
        await drop_database(url)

    tables = sorted(name for name, kind in cat["relations"] if kind == b"r")
    assert tables == ["aerich", "set_images", "sets"]
    assert sorted(name for name, kind in cat["relations"] if kind == b"S") == ["aerich_id_seq"]
    for table, expected in CONTRACT.items():
        assert _columns(cat, table) == expected
    pkeys = [(t, f"{t}_pkey", f"CREATE UNIQUE INDEX {t}_pkey ON public.{t} USING btree (id)")
             for t in ("aerich", "set_images", "sets")]  # fmt: skip
    assert sorted(cat["indexes"]) == sorted(CONTRACT_INDEXES + pkeys)
    assert _constraints(cat, ("aerich", "sets", "set_images")) == sorted(
        [*CONTRACT_CONSTRAINTS, ("aerich", b"p", "PRIMARY KEY (id)", b" ")]
    )


def test_the_drizzle_copy_is_the_spec_file() -> None:
    if DRIZZLE_SPEC_FILE.exists():  # beside the repo in the workspace; absent in a bare clone
        assert DRIZZLE_SPEC_FILE.read_text().split() == DRIZZLE_REFERENCE_SQL.split()


def test_catalog_matches_the_drizzle_reference(
    head_catalog: Catalog, drizzle_catalog: Catalog
) -> None:
    """Column by column the same as the story's drizzle-kit DDL, except timestamp vs
    timestamptz (the one deliberate difference); same indexes, keys and delete rule."""
    differences = []
    for table in ("sets", "set_images"):
        ours = {row[0]: row for row in _columns(head_catalog, table)}
        theirs = {row[0]: row for row in _columns(drizzle_catalog, table)}
        assert sorted(ours) == sorted(theirs), table
        for name, (_, type_, not_null, default) in theirs.items():
            if type_ == "timestamp without time zone":
                differences.append((table, name))
                type_ = TZ
            assert ours[name] == (name, type_, not_null, default), (table, name)
    # The deliberate difference is exactly the timestamps, and it is there.
    assert sorted(differences) == [
        ("set_images", "created_at"),
        ("sets", "created_at"),
        ("sets", "purchase_date"),
        ("sets", "release_date"),
        ("sets", "updated_at"),
    ]
    assert set(drizzle_catalog["indexes"]) <= set(head_catalog["indexes"])
    assert _constraints(head_catalog) == _constraints(drizzle_catalog)


# --- 6. Round trips and database defaults --------------------------------------------------

PLUS_0530 = timezone(timedelta(hours=5, minutes=30))
MINUS_0800 = timezone(timedelta(hours=-8))


def _every_set_field() -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "user_id": "cognito-sub-\u00e9",
        "title": "Millennium Falcon \u2014 UCS",
        "set_number": "75192-1",
        "store": "LEGO Store",
        "source_url": "https://www.lego.com/product/75192?x='1'",
        "piece_count": 7541,
        "release_date": datetime(2017, 10, 1, 0, 0, 0, 1, tzinfo=PLUS_0530),
        "theme": "Star Wars",
        "tags": ["zeta", "alpha", "mid", "alpha", "with space", 'q"uote', "\u00fc"],
        "notes": "Line one\nline two: O'Brien's \"box\" \U0001f9f1",
        "is_built": True,
        "quantity": 3,
        "purchase_price": Decimal("12345678.99"),
        "tax": Decimal("0.01"),
        "shipping": Decimal("99999999.99"),
        "purchase_date": datetime(2023, 11, 24, 23, 30, 15, 123456, tzinfo=MINUS_0800),
        "wishlist_item_id": uuid.uuid4(),
        "created_at": datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=PLUS_0530),
        "updated_at": datetime(2024, 6, 7, 8, 9, 10, 111213, tzinfo=UTC),
    }


async def test_a_record_with_every_field_round_trips_exactly(db: str, raw: Any) -> None:
    values = _every_set_field()
    assert set(values) == set(Set._meta.fields_map) - {"images"}  # every field, none left out
    await Set.create(**values)
    loaded = await Set.get(id=values["id"])
    for name, value in values.items():
        got = getattr(loaded, name)
        assert got == value, name  # datetimes: the same instant, whatever the offset
        assert isinstance(got, type(value)), name  # asyncpg's UUID subclasses uuid.UUID
        if isinstance(value, Decimal):
            assert str(got) == str(value), name  # cents, not a float and not rescaled
        if isinstance(value, datetime):
            assert got.tzinfo is not None, name
    # And what the server holds, read without the ORM.
    row = await raw.fetchrow(
        "SELECT purchase_price::text AS p, tax::text AS t, shipping::text AS s, tags, "
        "wishlist_item_id, release_date, created_at FROM sets WHERE id = $1",
        values["id"],
    )
    assert (row["p"], row["t"], row["s"]) == ("12345678.99", "0.01", "99999999.99")
    assert row["tags"] == values["tags"]
    assert row["wishlist_item_id"] == values["wishlist_item_id"]
    assert row["release_date"] == values["release_date"]
    assert row["created_at"] == values["created_at"]

    image: dict[str, Any] = {
        "id": uuid.uuid4(),
        "image_url": "https://img/1.jpg",
        "thumbnail_url": "https://img/1-thumb.jpg",
        "position": 7,
        "created_at": datetime(2024, 2, 29, 12, 0, tzinfo=MINUS_0800),
    }
    await SetImage.create(set_id=values["id"], **image)
    loaded_image = await SetImage.get(id=image["id"])
    for name, value in image.items():
        assert getattr(loaded_image, name) == value, name
    assert loaded_image.set_id == values["id"]  # type: ignore[attr-defined]
    assert [i.id for i in await loaded.images.all()] == [image["id"]]


async def test_plain_sql_inserts_get_the_database_defaults(raw: Any) -> None:
    async with raw.transaction():
        now = await raw.fetchval("SELECT now()")  # now() is the transaction's start
        row = await raw.fetchrow("INSERT INTO sets (user_id, title) VALUES ('u1', 'T') RETURNING *")
        other = await raw.fetchval(
            "INSERT INTO sets (user_id, title) VALUES ('u1', 'T2') RETURNING id"
        )
        image = await raw.fetchrow(
            "INSERT INTO set_images (set_id, image_url) VALUES ($1, 'x') RETURNING *", row["id"]
        )
    assert isinstance(row["id"], uuid.UUID)
    assert other != row["id"]
    assert row["tags"] == []
    assert row["is_built"] is False
    assert row["quantity"] == 1
    assert row["created_at"] == now
    assert row["updated_at"] == now
    for name in ("set_number", "store", "source_url", "piece_count", "release_date", "theme",
                 "notes", "purchase_price", "tax", "shipping", "purchase_date",
                 "wishlist_item_id"):  # fmt: skip
        assert row[name] is None, name
    assert isinstance(image["id"], uuid.UUID)
    assert image["position"] == 0
    assert image["thumbnail_url"] is None
    assert image["created_at"] == now
    # The ORM reads such a row back with the same values.
    loaded = await Set.get(id=row["id"])
    assert (loaded.tags, loaded.is_built, loaded.quantity) == ([], False, 1)
    assert loaded.created_at == now


async def test_orm_creates_get_the_same_defaults(db: str, raw: Any) -> None:
    created = await Set.create(user_id="u1", title="T")
    image = await SetImage.create(set=created, image_url="x")
    row = await raw.fetchrow("SELECT * FROM sets WHERE id = $1", created.id)
    assert (row["tags"], row["is_built"], row["quantity"]) == ([], False, 1)
    assert row["created_at"] == row["updated_at"]
    assert abs(row["created_at"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert await raw.fetchval("SELECT position FROM set_images WHERE id = $1", image.id) == 0


# --- 7. Cascade ----------------------------------------------------------------------------


async def _two_sets_with_images() -> tuple[Set, Set]:
    doomed = await Set.create(user_id="u1", title="Doomed")
    kept = await Set.create(user_id="u1", title="Kept")
    for position in range(3):
        await SetImage.create(set=doomed, image_url=f"https://x/{position}", position=position)
    await SetImage.create(set=kept, image_url="https://x/kept")
    return doomed, kept


async def test_deleting_a_set_through_the_orm_removes_its_images(db: str, raw: Any) -> None:
    doomed, kept = await _two_sets_with_images()
    await doomed.delete()
    assert await raw.fetchval("SELECT count(*) FROM set_images WHERE set_id = $1", doomed.id) == 0
    assert await raw.fetchval("SELECT count(*) FROM set_images WHERE set_id = $1", kept.id) == 1
    assert await SetImage.filter(set_id=kept.id).count() == 1


async def test_deleting_a_set_through_plain_sql_removes_its_images(db: str, raw: Any) -> None:
    doomed, kept = await _two_sets_with_images()
    assert await raw.execute("DELETE FROM sets WHERE id = $1", doomed.id) == "DELETE 1"
    assert await raw.fetchval("SELECT count(*) FROM set_images WHERE set_id = $1", doomed.id) == 0
    assert await raw.fetchval("SELECT count(*) FROM set_images WHERE set_id = $1", kept.id) == 1
