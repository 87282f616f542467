"""The read side's shared pieces: which columns a set and an image are, the SQL that
fetches a set with its images in one statement, and stored rows turned into DTOs.

Column lists come from the output DTOs, so a column added to ``SetOut``/``ImageOut`` (and
the model and a migration) reaches every statement without editing them. Tables are
schema-qualified: a temporary table named ``sets`` on a pooled connection cannot shadow them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import pydantic

from sets_db.errors import SetsDbError
from sets_db.models import Set, SetImage
from sets_db.schemas import ImageOut, SetOut

SETS = f"public.{Set._meta.db_table}"
IMAGES = f"public.{SetImage._meta.db_table}"
# No model: written only by triggers on sets (migration 7), read by list_tags.
TAG_COUNTS = "public.set_tag_counts"
# No model either: per owner and theme, written only by triggers on sets (migration 8), read
# by collection_stats.
COLLECTION_STATS = "public.set_collection_stats"

SET_FIELDS = tuple(name for name in SetOut.model_fields if name != "images")
IMAGE_FIELDS = tuple(ImageOut.model_fields)
# Positions are unique within a set, so the id only settles what a concurrent writer left.
IMAGE_ORDER = ("position", "id")
IMAGE_COLUMNS = ", ".join(IMAGE_FIELDS)


def image_order(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in IMAGE_ORDER)


def set_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in SET_FIELDS)


def set_with_images(alias: str) -> str:
    """The set's columns plus its images (``IMAGE_ORDER``) as one array of rows: one round
    trip. An array of ROW()s, not JSON: asyncpg decodes it in binary, already as UUID and
    datetime (NULL when the set has no images). Its fields are ``IMAGE_FIELDS``, in order.
    """
    image_row = ", ".join(f"i.{name}" for name in IMAGE_FIELDS)
    return f"""{set_columns(alias)}, (
        SELECT array_agg(ROW({image_row}) ORDER BY {image_order("i")})
        FROM {IMAGES} i WHERE i.set_id = {alias}.id
    ) AS images"""


Out = TypeVar("Out", bound=pydantic.BaseModel)


def _schema_error(name: str, error: pydantic.ValidationError) -> SetsDbError:
    # A row can only fail if another client stored something outside the contract: that is
    # still a sets-db error, never a pydantic one.
    return SetsDbError(f"stored data does not fit the schema ({name}): {error}")


def to_dto(model: type[Out], row: Mapping[str, Any]) -> Out:
    """A database row as an output DTO (pydantic-core measured 2x faster than
    ``model_construct``, and it re-checks the row's types for free)."""
    try:
        return model.model_validate(dict(row))
    except pydantic.ValidationError as error:
        raise _schema_error(model.__name__, error) from None


def _flat_tags(tags: Iterable[Any] | None) -> list[str]:
    """Tags as the contract has them, whatever another client stored: NULL elements and
    nested (multi-dimensional) arrays are flattened away rather than failing the read."""
    flat: list[str] = []
    for tag in tags or ():
        if isinstance(tag, list):
            flat += _flat_tags(tag)
        elif tag is not None:
            flat.append(tag)
    return flat


def _set_data(row: Mapping[str, Any], columns: Sequence[str] | None = None) -> dict[str, Any]:
    """A row of ``SELECT set_with_images(...)`` as the dict ``SetOut`` validates: one copy of
    the row (zipped with ``columns`` when the caller knows them: measured 30% faster than
    ``dict(record)``), the images' rows zipped with their field names."""
    data = dict(zip(columns, row.values(), strict=True)) if columns else dict(row)
    tags = data["tags"]
    if tags is None or None in tags or (tags and isinstance(tags[0], list)):
        data["tags"] = _flat_tags(tags)
    # The SQL builds each image ROW() from IMAGE_FIELDS: same length, no strict check needed.
    data["images"] = [dict(zip(IMAGE_FIELDS, image)) for image in data["images"] or ()]  # noqa: B905
    return data


def to_set(row: Mapping[str, Any]) -> SetOut:
    """A row of ``SELECT set_with_images(...)`` as a DTO."""
    try:
        return SetOut.model_validate(_set_data(row))
    except pydantic.ValidationError as error:
        raise _schema_error(SetOut.__name__, error) from None


# One validator call for a whole page: measured about 20% faster than one per row, same DTOs.
_SET_LIST = pydantic.TypeAdapter(list[SetOut], config=pydantic.ConfigDict(defer_build=True))


def to_sets(rows: Sequence[Mapping[str, Any]]) -> list[SetOut]:
    """Rows of one ``SELECT set_with_images(...)`` as DTOs, in order."""
    columns = tuple(rows[0].keys()) if rows else ()
    try:
        return _SET_LIST.validate_python([_set_data(row, columns) for row in rows])
    except pydantic.ValidationError as error:
        raise _schema_error(SetOut.__name__, error) from None


FETCH_SET_SQL = f"SELECT {set_with_images('s')} FROM {SETS} s WHERE s.id = $1 AND s.user_id = $2"
