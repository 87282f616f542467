"""Tortoise models for the two tables of the schema contract (``../shared/spec/schema.md``).

Every default lives in the database (``db_default``), so a row inserted by plain SQL from
another client gets exactly the values a row created through the ORM gets.
"""

from __future__ import annotations

from decimal import Decimal

from tortoise import fields
from tortoise.contrib.postgres.fields import ArrayField
from tortoise.contrib.postgres.indexes import GinIndex
from tortoise.fields.db_defaults import SqlDefault
from tortoise.indexes import Index
from tortoise.models import Model

NOW = SqlDefault("now()")
RANDOM_UUID = SqlDefault("gen_random_uuid()")


def _money() -> fields.DecimalField[Decimal | None]:
    # numeric(10,2): whole cents, never float.
    return fields.DecimalField(max_digits=10, decimal_places=2, null=True)


class Set(Model):
    """One LEGO set in one user's collection."""

    # No ``#:`` field comments here: without this Tortoise parses this module's source with
    # ``inspect.getsource`` for each model at import (12 ms each, on every cold start).
    _no_comments = True

    id = fields.UUIDField(primary_key=True, db_default=RANDOM_UUID)
    user_id = fields.TextField()
    title = fields.TextField()
    set_number = fields.TextField(null=True)
    store = fields.TextField(null=True)
    source_url = fields.TextField(null=True)
    piece_count = fields.IntField(null=True)
    release_date = fields.DatetimeField(null=True)
    theme = fields.TextField(null=True)
    tags = ArrayField(element_type="text", null=True, db_default=SqlDefault("'{}'"))
    notes = fields.TextField(null=True)
    is_built = fields.BooleanField(db_default=SqlDefault("false"))
    quantity = fields.IntField(db_default=SqlDefault("1"))
    purchase_price = _money()
    tax = _money()
    shipping = _money()
    purchase_date = fields.DatetimeField(null=True)
    wishlist_item_id = fields.UUIDField(null=True)
    created_at = fields.DatetimeField(db_default=NOW)
    updated_at = fields.DatetimeField(db_default=NOW)

    images: fields.ReverseRelation[SetImage]

    class Meta:
        table = "sets"
        # Explicit, so editing the docstring never shows up as a schema change.
        table_description = "LEGO sets: one row per set in one user's collection"
        indexes = (
            Index(fields=("user_id",), name="sets_user_id_idx"),
            Index(fields=("set_number",), name="sets_set_number_idx"),
            Index(fields=("theme",), name="sets_theme_idx"),
            # Each for a measured query; their migration builds them CONCURRENTLY, so that
            # adding them to a table with data blocks no writer.
            # The default page (newest first, a backward scan) and its keyset cursor: the
            # index order is list_sets' ORDER BY, so a page at any depth reads only its rows.
            Index(fields=("user_id", "created_at", "id"), name="sets_user_created_idx"),
            # find_duplicates / list_duplicate_groups: one owner's sets with one number.
            Index(fields=("user_id", "set_number"), name="sets_user_set_number_idx"),
            # tags @> ...: a rare tag is found without reading all of an owner's sets.
            GinIndex(fields=("tags",), name="sets_tags_gin_idx"),
            # The sorts of list_sets in their default order (ascending, NULLS LAST), so a
            # big collection's first page reads 51 index entries, not every row. Migration 5
            # also adds what cannot be declared here: the trigram index for search and the
            # total_cost sort (an expression), and a covering index for the stats that
            # migration 9 drops; migration 6 the title sort's prefix index (an expression).
            Index(fields=("user_id", "piece_count", "id"), name="sets_user_piece_count_idx"),
            Index(fields=("user_id", "release_date", "id"), name="sets_user_release_date_idx"),
            Index(fields=("user_id", "purchase_date", "id"), name="sets_user_purchase_date_idx"),
            # A theme's page in the default order (migration 9): a prepared statement's
            # generic plan guesses a theme's share of an owner's sets from the average, and
            # for a big collection's largest theme then read and sorted all of its rows.
            Index(
                fields=("user_id", "theme", "created_at", "id"), name="sets_user_theme_created_idx"
            ),
        )


class SetImage(Model):
    """One picture of a set; ``position`` orders them (0 is the cover)."""

    _no_comments = True

    id = fields.UUIDField(primary_key=True, db_default=RANDOM_UUID)
    set: fields.ForeignKeyRelation[Set] = fields.ForeignKeyField(
        "models.Set", related_name="images", on_delete=fields.CASCADE
    )
    image_url = fields.TextField()
    thumbnail_url = fields.TextField(null=True)
    position = fields.IntField(db_default=SqlDefault("0"))
    created_at = fields.DatetimeField(db_default=NOW)

    class Meta:
        table = "set_images"
        table_description = "Pictures of a set, ordered by position (0 is the cover)"
        indexes = (Index(fields=("set_id",), name="set_images_set_id_idx"),)
