"""The read side's shared pieces: which columns a set and an image are, the SQL that
fetches a set with its images in one statement, and stored rows turned into DTOs.

Column lists come from the output DTOs, so a column added to ``SetOut``/``ImageOut`` (and
the model and a migration) reaches every statement without editing them. Tables are
schema-qualified: a temporary table named ``sets`` on a pooled connection cannot shadow them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import asyncpg
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


@functools.cache
def image_order(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in IMAGE_ORDER)


@functools.cache
def set_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in SET_FIELDS)


@functools.cache  # built into a statement on every list_sets call
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


def _schema_error(name: str, problem: str) -> SetsDbError:
    # A row can only fail if the schema drifted (another client altered a column): that is
    # still a sets-db error, never a pydantic one.
    return SetsDbError(f"stored data does not fit the schema ({name}): {problem}")


def _accepted_types(annotation: Any) -> tuple[type, ...]:
    """The Python types a stored value may have for a DTO field: ``X | None`` gives
    ``(X, NoneType)``, ``list[X]`` gives ``(list,)``."""
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    return tuple(get_origin(option) or option for option in options or (annotation,))


def _dict_maker(fields: Sequence[str], *, by_name: bool = False) -> Callable[[Any], dict[str, Any]]:
    """A function turning a row (a tuple or a Record; by position, or by column name) into a
    dict of ``fields``.

    Generated, as ``namedtuple`` generates its methods, so the dict is one dict display:
    measured 3x faster than ``dict(zip(fields, row))``, which a page does ~200 times.
    """
    assert all(name.isidentifier() for name in fields), fields
    items = ", ".join(
        f"{name!r}: row[{name!r}]" if by_name else f"{name!r}: row[{index}]"
        for index, name in enumerate(fields)
    )
    maker: Callable[[Any], dict[str, Any]] = eval(f"lambda row: {{{items}}}")
    return maker


class RowShape:
    """How rows of one output DTO become instances without pydantic validating each field.

    Every value of a result column has the column's type, which asyncpg decodes to one
    Python type; so the types are checked on the first row of each result, and every row
    is then built as pydantic's ``model_construct`` builds (whose per-field Python loop was
    measured 2x slower than validating): the same DTOs (equal, same ``model_fields_set``)
    for a page at about half the cost of validating it.
    """

    __slots__ = ("fields", "fields_set", "model", "ordered_types", "types", "values_of")

    def __init__(self, model: type[pydantic.BaseModel]) -> None:
        # Only for frozen models without private attributes or extra fields: their
        # instances hold exactly their fields in __dict__, and nothing ever changes their
        # fields set in place (model_copy copies it first), so all of them share one.
        assert model.model_config.get("frozen"), model
        assert not model.__private_attributes__, model
        assert model.model_config.get("extra") != "allow", model
        self.model = model
        self.fields_set = set(model.model_fields)
        self.types = {
            name: _accepted_types(info.annotation) for name, info in model.model_fields.items()
        }
        self.fields = tuple(self.types)
        self.ordered_types = tuple(self.types.values())
        # A row's values of these fields, by column name (a row may have other columns).
        self.values_of = _dict_maker(self.fields, by_name=True)

    def check(self, values: Mapping[str, Any]) -> None:
        # The common case in one C-level pass; the problems are only named when there are.
        if values.keys() == self.fields_set and all(
            map(isinstance, map(values.get, self.fields), self.ordered_types)
        ):
            return
        problems = [f"unexpected column {name}" for name in values.keys() - self.fields_set]
        problems += [
            f"{name} is {type(values.get(name)).__name__}"
            for name, accepted in self.types.items()
            if not isinstance(values.get(name), accepted)
        ]
        raise _schema_error(self.model.__name__, ", ".join(problems))

    def build(self, values: dict[str, Any]) -> Any:
        """An instance holding ``values`` (every field, of its type)."""
        dto = _new(self.model)
        _set_attribute(dto, "__dict__", values)
        _set_attribute(dto, "__pydantic_fields_set__", self.fields_set)
        _set_attribute(dto, "__pydantic_extra__", None)
        _set_attribute(dto, "__pydantic_private__", None)
        return dto


_new = object.__new__
_set_attribute = object.__setattr__
_SET = RowShape(SetOut)
_IMAGE = RowShape(ImageOut)
_SHAPES: dict[type[pydantic.BaseModel], RowShape] = {SetOut: _SET, ImageOut: _IMAGE}


def _shape(model: type[pydantic.BaseModel]) -> RowShape:
    return _SHAPES.get(model) or _SHAPES.setdefault(model, RowShape(model))


def build_dtos(model: type[Out], values: list[dict[str, Any]]) -> list[Out]:
    """DTOs holding ``values`` (one dict of every field per DTO, all from one result); the
    types checked on the first."""
    if not values:
        return []
    shape = _shape(model)
    shape.check(values[0])
    build = shape.build
    return [build(dto_values) for dto_values in values]


def to_dtos(model: type[Out], rows: Sequence[Mapping[str, Any]]) -> list[Out]:
    """Rows of one result (holding the DTO's fields as columns, by name) as DTOs; the types
    checked on the first row."""
    values_of = _shape(model).values_of
    try:
        values = [values_of(row) for row in rows]
    except KeyError as missing:
        raise _schema_error(model.__name__, f"no column {missing}") from None
    return build_dtos(model, values)


def to_dto(model: type[Out], row: Mapping[str, Any]) -> Out:
    """A database row (holding the DTO's fields as columns) as a DTO, its types checked."""
    return to_dtos(model, [row])[0]


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


_SET_VALUES = _dict_maker(_SET.fields)
# The SQL builds each image ROW() from IMAGE_FIELDS, in order.
_IMAGE_VALUES = _dict_maker(IMAGE_FIELDS)


def _set_values(row: Sequence[Any]) -> dict[str, Any]:
    """A row of ``SELECT set_with_images(...)`` as ``SetOut``'s values, its images' rows
    as DTOs."""
    values = _SET_VALUES(row)
    tags = values["tags"]
    if tags is None or None in tags or (tags and isinstance(tags[0], list)):
        values["tags"] = _flat_tags(tags)
    # _IMAGE.build written out: a page builds ~150 images, and the call was 10% of the page.
    images = []
    for image in values["images"] or ():
        dto = _new(ImageOut)
        _set_attribute(dto, "__dict__", _IMAGE_VALUES(image))
        _set_attribute(dto, "__pydantic_fields_set__", _IMAGE.fields_set)
        _set_attribute(dto, "__pydantic_extra__", None)
        _set_attribute(dto, "__pydantic_private__", None)
        images.append(dto)
    values["images"] = images
    return values


def to_sets(rows: Sequence[asyncpg.Record]) -> list[SetOut]:
    """Rows of one ``SELECT set_with_images(...)`` as DTOs, in order; the types checked on
    the first row and its first image (every row of a result has the same column types)."""
    if not rows:
        return []
    build = _SET.build
    return [to_set(rows[0]), *(build(_set_values(row)) for row in rows[1:])]


def to_set(row: asyncpg.Record) -> SetOut:
    """A row of ``SELECT set_with_images(...)`` as a DTO, its types checked."""
    if tuple(row.keys()) != _SET.fields:  # the statement's columns, by position
        raise _schema_error(SetOut.__name__, f"columns {', '.join(row.keys())}")
    values = _set_values(row)
    _SET.check(values)
    if values["images"]:
        _IMAGE.check(values["images"][0].__dict__)
    built: SetOut = _SET.build(values)
    return built


FETCH_SET_SQL = f"SELECT {set_with_images('s')} FROM {SETS} s WHERE s.id = $1 AND s.user_id = $2"
