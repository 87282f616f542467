"""The read side's shared pieces: which columns a set and an image are, the SQL that
fetches a set with its images in one statement, and stored rows turned into DTOs.

Column lists come from the output DTOs, so a column added to ``SetOut``/``ImageOut`` (and
the model and a migration) reaches every statement without editing them. Tables are
schema-qualified: a temporary table named ``sets`` on a pooled connection cannot shadow them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import asyncpg
import pydantic
from pydantic_core import SchemaValidator, core_schema

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


# An image's fields in a set's row: its set_id is the set's id, not sent again (122 UUIDs
# fewer to send, decode and collect on a page of 50).
IMAGE_ROW_FIELDS = tuple(name for name in IMAGE_FIELDS if name != "set_id")


@functools.cache  # built into a statement on every list_sets call
def set_with_images(alias: str) -> str:
    """The set's columns plus its images (``IMAGE_ORDER``) as one array of rows: one round
    trip. An array of ROW()s, not JSON: asyncpg decodes it in binary, already as UUID and
    datetime; empty, not NULL, when the set has no images (every row's is a list). Its
    fields are ``IMAGE_ROW_FIELDS``.
    """
    image_row = ", ".join(f"i.{name}" for name in IMAGE_ROW_FIELDS)
    return f"""{set_columns(alias)}, COALESCE((
        SELECT array_agg(ROW({image_row}) ORDER BY {image_order("i")})
        FROM {IMAGES} i WHERE i.set_id = {alias}.id
    ), '{{}}') AS images"""


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


def _dict_maker(fields: Sequence[str]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A function turning a row (a Record or a mapping) into a dict of ``fields``, by name.

    Generated, as ``namedtuple`` generates its methods, so the dict is one dict display.
    """
    assert all(name.isidentifier() for name in fields), fields
    items = ", ".join(f"{name!r}: row[{name!r}]" for name in fields)
    namespace: dict[str, Any] = {}
    exec(f"def make(row):\n    return {{{items}}}", namespace)
    maker: Callable[[Mapping[str, Any]], dict[str, Any]] = namespace["make"]
    return maker


Built = tuple[dict[str, Any], None, set[str]]  # what pydantic-core's model builder takes


class RowShape:
    """How rows of one output DTO become instances without pydantic validating each field.

    Every value of a result column has the column's type, which asyncpg decodes to one
    Python type; so the types are checked on the first row of each result, and every row
    is then built as ``model_construct`` builds (whose per-field Python loop was measured
    2x slower than validating): the same DTOs (equal, same ``model_fields_set``). A page of
    50 sets from its Records, in a loop on the box this was first measured on: 118 us,
    where making the dicts took 145 and validating them 175 more.
    """

    __slots__ = (
        "fields",
        "fields_set",
        "instances",
        "model",
        "ordered_types",
        "types",
        "values_of",
    )

    def __init__(self, model: type[pydantic.BaseModel]) -> None:
        # Only for frozen models without private attributes, extra fields or a post-init
        # hook: their instances hold exactly their fields in __dict__, and nothing ever
        # changes their fields set in place (model_copy copies it first), so all of them
        # share one.
        assert model.model_config.get("frozen"), model
        assert not model.__private_attributes__, model
        assert model.model_config.get("extra") != "allow", model
        assert model.__pydantic_post_init__ is None, model
        self.model = model
        self.fields_set = set(model.model_fields)
        self.types = {
            name: _accepted_types(info.annotation) for name, info in model.model_fields.items()
        }
        self.fields = tuple(self.types)
        self.ordered_types = tuple(self.types.values())
        # A row's values of these fields, by column name (a row may have other columns).
        self.values_of = _dict_maker(self.fields)
        # pydantic-core's own model builder (what validation ends in: allocate the instance,
        # set __dict__, __pydantic_extra__, __pydantic_private__, __pydantic_fields_set__)
        # fed a list of (values, extra, fields set) triples that an ``any`` schema passes
        # through untouched: 0.25 us an instance against 0.5 for the same four writes in
        # Python, and one call for a whole list 13% less than one call per instance.
        self.instances = SchemaValidator(
            core_schema.list_schema(core_schema.model_schema(model, core_schema.any_schema()))
        ).validate_python

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

    def built(self, triples: list[Built]) -> list[Any]:
        """Instances from pydantic-core's (values, extra, fields set) triples, in order; the
        types checked on the first (every row of one result has the same column types)."""
        if triples:
            self.check(triples[0][0])
        instances: list[Any] = self.instances(triples)
        return instances

    def unchecked(self, values: dict[str, Any]) -> Any:
        """An instance holding ``values`` (a dict of every field), its types not checked:
        for values sets-db made itself of the right types."""
        return self.instances([(values, None, self.fields_set)])[0]

    def build(self, values: Iterable[dict[str, Any]]) -> list[Any]:
        """Instances holding ``values`` (each a dict of every field, of its type), in order;
        the types checked on the first."""
        return self.built(list(zip(values, repeat(None), repeat(self.fields_set))))


_SET = RowShape(SetOut)
_IMAGE = RowShape(ImageOut)
_SHAPES: dict[type[pydantic.BaseModel], RowShape] = {SetOut: _SET, ImageOut: _IMAGE}


def _shape(model: type[pydantic.BaseModel]) -> RowShape:
    return _SHAPES.get(model) or _SHAPES.setdefault(model, RowShape(model))


def build_dtos(model: type[Out], values: list[dict[str, Any]]) -> list[Out]:
    """DTOs holding ``values`` (one dict of every field per DTO, all from one result); the
    types checked on the first."""
    return _shape(model).build(values) if values else []


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


_IMAGES_AT = _SET.fields.index("images")


class _SetValues:
    """A set's values, as attributes: the ``__dict__`` of every instance shares one table of
    keys (CPython's key-sharing instance dicts), so making one writes the 21 values alone,
    where a dict display inserts 21 keys: 12.7 against 27.5 us for 50 sets, and 240 against
    464 bytes a dict. The DTO is given that dict; it is an ordinary dict in every other way
    (past 30 keys CPython 3.11 stops sharing them: still correct, only slower). A set's
    image has 6 fields: there the display is as fast."""


def _row_makers() -> tuple[
    Callable[[Sequence[asyncpg.Record]], list[Built]],
    Callable[[Sequence[asyncpg.Record], list[ImageOut]], list[Built]],
]:
    """Two functions for rows of ``set_with_images``: the (values, extra, fields set) of
    every image of the rows, in order (each with its set's id, which their ROW()s do not
    repeat), and those of every set given the rows' images in that order (each set takes
    as many as its row holds), odd tags flattened.

    Generated, as ``namedtuple`` generates its methods: a row is unpacked by position into
    local names, an image's dict is one dict display and a set's the dict of a
    ``_SetValues``, in one loop over the page. Unpacking by
    position: 0.7 us a set against 0.86 for indexing it field by field. One loop handing
    out each set's slice and making its triple: ``to_sets`` of a freshly fetched page 8-9%
    less than C-level ``accumulate`` and ``slice`` passes over the rows, then the sets'
    dicts, then their triples (each pass over fresh rows meets cold memory).
    """
    local = {name: f"v{index}" for index, name in enumerate(_SET.fields)}
    image_local = {name: f"i{index}" for index, name in enumerate(IMAGE_ROW_FIELDS)}
    tags = local["tags"]
    # In the DTO's field order (a dump follows it), the set's id as the image's set_id.
    image_value = {**image_local, "set_id": "set_id"}
    image = ", ".join(f"{name!r}: {image_value[name]}" for name in IMAGE_FIELDS)
    set_attributes = "\n        ".join(
        f"values.{name} = {'images[start:end]' if name == 'images' else value}"
        for name, value in local.items()
    )
    source = f"""def image_values(rows):
    return [
        ({{{image}}}, None, image_fields)
        for row in rows
        for set_id in [row[{_SET.fields.index("id")}]]
        for {", ".join(image_local.values())}, in row[{_IMAGES_AT}]
    ]

def set_values(rows, images):
    triples = []
    end = 0
    for row in rows:
        {", ".join(local.values())}, = row
        start, end = end, end + len({local["images"]})
        try:
            "".join({tags})  # succeeds for a flat list of text: no NULL, no nested array
        except TypeError:
            {tags} = flat_tags({tags})
        values = new(SetValues)
        {set_attributes}
        triples.append((values.__dict__, None, set_fields))
    return triples
"""
    namespace: dict[str, Any] = {
        "flat_tags": _flat_tags,
        "image_fields": _IMAGE.fields_set,
        "set_fields": _SET.fields_set,
        "new": object.__new__,
        "SetValues": _SetValues,
    }
    exec(source, namespace)
    return namespace["image_values"], namespace["set_values"]


_IMAGE_VALUES, _SET_VALUES = _row_makers()


def _images(rows: Sequence[asyncpg.Record]) -> list[ImageOut]:
    """The images of rows of one ``SELECT set_with_images(...)``, in order, made at once
    (one pydantic-core call); the columns checked on the first row, the types on the first
    image (every row of a result has the same column types)."""
    if tuple(rows[0].keys()) != _SET.fields:  # the statement's columns, by position
        raise _schema_error(SetOut.__name__, f"columns {', '.join(rows[0].keys())}")
    images: list[ImageOut] = _IMAGE.built(_IMAGE_VALUES(rows))
    return images


def to_sets(rows: list[asyncpg.Record]) -> list[SetOut]:
    """Rows of one ``SELECT set_with_images(...)`` as DTOs, in order; the types checked on
    the first row and the first image.

    The page's images are made at once and handed out as slices, one per set: 10% less
    than a call per set. Empties ``rows``: a Record is garbage once its values are in a
    dict, and freeing them before the sets' DTOs are allocated keeps a page from setting
    off the collector (measured in the benchmark: a young collection, ~50 us, in 15 of 400
    page calls, was about half).
    """
    if not rows:
        return []
    values = _SET_VALUES(rows, _images(rows))
    rows.clear()
    sets: list[SetOut] = _SET.built(values)
    return sets


def to_set(row: asyncpg.Record) -> SetOut:
    """A row of ``SELECT set_with_images(...)`` as a DTO, its types checked."""
    (item,) = to_sets([row])
    return item


FETCH_SET_SQL = f"SELECT {set_with_images('s')} FROM {SETS} s WHERE s.id = $1 AND s.user_id = $2"
