"""An import's rows in PostgreSQL's binary COPY format, encoded while they are checked.

asyncpg's ``copy_records_to_table`` encodes records as it sends them, and sends nothing of a
COPY before it has 512 kB (about 2,000 sets): the server waited 20-40 ms at the start of every
COPY of an import, 4-5% of its time. Encoded here, in the time the checking of the next batch
has anyway (the server is busy with the last one), a COPY only sends ready bytes, which the
server starts on at once. The client's CPU is what it was: 13-19 us a set with its images,
against 14-19 for building asyncpg's records and asyncpg's encoding of them.

One encoder per column type, chosen by the models' field types (the tables' types), so a new
column gets its encoder or fails at import. Each takes a value the input DTOs have already
checked (``schemas``: text PostgreSQL can store, integers and moments in range, finite money),
``None`` for NULL, and returns the field as the server reads it: a 4-byte length, then the
type's binary form (``*send``/``*recv`` in PostgreSQL's sources).
"""

from __future__ import annotations

import functools
import operator
import os
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple
from uuid import UUID

from tortoise import fields
from tortoise.contrib.postgres.fields import ArrayField
from tortoise.models import Model

from sets_db.models import Set, SetImage
from sets_db.schemas import SetCreate

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
TRAILER = b"\xff\xff"

_NULL = b"\xff\xff\xff\xff"
_int32 = struct.Struct(">i").pack
_int4 = struct.Struct(">ii").pack  # length 4, value
_int8 = struct.Struct(">iq").pack  # length 8, value
_TRUE, _FALSE = b"\x00\x00\x00\x01\x01", b"\x00\x00\x00\x01\x00"
_UUID_LENGTH = _int32(16)
# timestamptz: microseconds since 2000-01-01 00:00 UTC.
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# text[]: dimensions, has-nulls flag, element type (text's OID), then per dimension its
# length and lower bound; an empty array has no dimensions.
_TEXT_OID = 25
_array_head = struct.Struct(">iiiiii").pack
_EMPTY_TEXT_ARRAY = struct.pack(">iiii", 12, 0, 0, _TEXT_OID)
# numeric: digit count, weight (of the first digit, in powers of 10000), sign, display scale,
# then base-10000 digits, most significant first.
_NUMERIC_NEGATIVE = 0x4000

Encoder = Callable[[Any], bytes]


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return _int32(len(data)) + data


def _integer(value: int | None) -> bytes:
    return _NULL if value is None else _int4(4, value)


def _boolean(value: bool | None) -> bytes:
    if value is None:
        return _NULL
    return _TRUE if value else _FALSE


def _uuid(value: UUID | None) -> bytes:
    return _NULL if value is None else _UUID_LENGTH + value.bytes


def _timestamptz(value: datetime | None) -> bytes:
    if value is None:
        return _NULL
    delta = value - _PG_EPOCH  # aware: the DTOs accept no naive moment
    return _int8(8, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _text_array(values: Sequence[str] | None) -> bytes:
    if values is None:
        return _NULL
    if not values:
        return _EMPTY_TEXT_ARRAY
    body = b"".join([_text(value) for value in values])
    return _array_head(20 + len(body), 1, 0, _TEXT_OID, len(values), 1) + body


def _numeric(scale: int) -> Encoder:
    """The encoder of a numeric column of this scale. A value is sent as the column stores it,
    rounded to its scale as the server rounds (half away from zero): the rules count decimal
    places on the normalised value, so 12.30 written with 5,000 more zeros (an exponent of
    -5002) is valid, and the server would round it to 12.30 anyway."""
    exponent = Decimal(1).scaleb(-scale)

    def encode(value: Decimal | None) -> bytes:
        if value is None:
            return _NULL
        if not value.is_finite():
            raise ValueError(f"cannot store {value} in a numeric column")
        text = str(value.quantize(exponent, rounding=ROUND_HALF_UP))
        sign = 0
        if text[0] == "-":
            sign, text = _NUMERIC_NEGATIVE, text[1:]
        whole, _, fraction = text.partition(".")
        # The digits as one integer, scaled so that the point falls between two base-10000
        # digits.
        coefficient = int(whole + fraction) * 10 ** (-len(fraction) % 4)
        digits: list[int] = []  # least significant first, without the trailing zero digits
        count = 0
        while coefficient:
            coefficient, digit = divmod(coefficient, 10_000)
            count += 1
            if digit or digits:
                digits.append(digit)
        digits.reverse()
        weight = count - 1 - (len(fraction) + 3) // 4 if digits else 0
        return _numeric_struct(len(digits)).pack(
            8 + 2 * len(digits), len(digits), weight, sign if digits else 0, scale, *digits
        )

    return encode


@functools.cache
def _numeric_struct(digits: int) -> struct.Struct:
    return struct.Struct(f">ihhhh{digits}h")


class Column(NamedTuple):
    """How a column is encoded, and the column type (as ``regtype`` spells it) that is for:
    the server reads a binary field as its column's type, so a column of another type (an
    int8 for an int4) fails the COPY, or takes the same bytes to mean something else (a
    timestamp for a timestamptz)."""

    encode: Encoder
    type_name: str


_BY_FIELD_TYPE: dict[type[fields.Field[Any]], Column] = {
    fields.TextField: Column(_text, "text"),
    fields.IntField: Column(_integer, "integer"),
    fields.BooleanField: Column(_boolean, "boolean"),
    fields.UUIDField: Column(_uuid, "uuid"),
    fields.DatetimeField: Column(_timestamptz, "timestamp with time zone"),
}


def _column(model: type[Model], name: str) -> Column:
    """How a model's column is encoded, by its field's type."""
    field = model._meta.fields_map[name]
    if isinstance(field, ArrayField) and field.element_type == "TEXT":
        return Column(_text_array, "text[]")
    if isinstance(field, fields.DecimalField):
        return Column(_numeric(field.decimal_places), "numeric")
    return _BY_FIELD_TYPE[type(field)]


# Every column the import writes, in this order (COPY's column list); id is made here (the
# images must point at it), the rest come from the database defaults as for ``create_set``.
WRITABLE_FIELDS = tuple(name for name in SetCreate.model_fields if name != "images")
SET_COLUMNS = ("id", "user_id", *WRITABLE_FIELDS)
IMAGE_COLUMNS = ("set_id", "image_url", "thumbnail_url", "position")
_SETS, _IMAGES = Set._meta.db_table, SetImage._meta.db_table
_COLUMNS = {
    **{(_SETS, name): _column(Set, name) for name in SET_COLUMNS},
    (_IMAGES, "set_id"): _column(Set, "id"),  # the foreign key: a set's id
    **{(_IMAGES, name): _column(SetImage, name) for name in IMAGE_COLUMNS[1:]},
}
# (table, column) -> the type the encoded rows are for.
COLUMN_TYPES = {key: column.type_name for key, column in _COLUMNS.items()}

_writable_values = operator.attrgetter(*WRITABLE_FIELDS)
_WRITABLE_ENCODERS = tuple(_COLUMNS[_SETS, name].encode for name in WRITABLE_FIELDS)
_SET_HEAD = struct.pack(">h", len(SET_COLUMNS))
_IMAGE_HEAD = struct.pack(">h", len(IMAGE_COLUMNS)) + _UUID_LENGTH
_owner = _COLUMNS[_SETS, "user_id"].encode
_image_url = _COLUMNS[_IMAGES, "image_url"].encode
_thumbnail_url = _COLUMNS[_IMAGES, "thumbnail_url"].encode
_position = _COLUMNS[_IMAGES, "position"].encode


def mismatched_columns(live: dict[tuple[str, str], str]) -> list[str]:
    """The columns whose live type (``live``: (table, column) -> its ``regtype``) is not the
    one the encoded rows are for, as "table.column is <live>, not <expected>"."""
    return [
        f"{table}.{column} is {live.get((table, column), 'missing')}, not {expected}"
        for (table, column), expected in COLUMN_TYPES.items()
        if live.get((table, column)) != expected
    ]


def new_ids(count: int) -> list[bytes]:
    """``count`` random version 4 UUIDs (what ``gen_random_uuid()`` makes), 16 bytes each: one
    ``os.urandom`` call for all of them, 0.3 us an id where ``uuid.uuid4()`` took 2.8-4.3."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(byte & 0x0F | 0x40 for byte in raw[6::16])  # version 4
    raw[8::16] = bytes(byte & 0x3F | 0x80 for byte in raw[8::16])  # RFC 4122 variant
    whole = bytes(raw)
    return [whole[start : start + 16] for start in range(0, 16 * count, 16)]


class Encoded(NamedTuple):
    """Checked sets in COPY's binary format: their rows, and their images' rows."""

    set_count: int
    sets: bytes
    images: bytes


def encode(user_id: str, sets: Sequence[SetCreate]) -> Encoded:
    """The COPY rows (without header or trailer) of checked sets, under new ids, and of their
    images, which point at those ids."""
    owner = _owner(user_id)
    set_rows: list[bytes] = []
    image_rows: list[bytes] = []
    for data, set_id in zip(sets, new_ids(len(sets)), strict=True):
        values = _writable_values(data)  # as many as _WRITABLE_ENCODERS: both are by field
        set_rows.append(_SET_HEAD)
        set_rows.append(_UUID_LENGTH)
        set_rows.append(set_id)
        set_rows.append(owner)
        set_rows.extend(map(operator.call, _WRITABLE_ENCODERS, values))
        for position, image in enumerate(data.images):
            image_rows.append(_IMAGE_HEAD)
            image_rows.append(set_id)
            image_rows.append(_image_url(image.image_url))
            image_rows.append(_thumbnail_url(image.thumbnail_url))
            image_rows.append(_position(position))
    return Encoded(len(sets), b"".join(set_rows), b"".join(image_rows))
