"""The one file format of ``sets-db import`` / ``export``: CSV or JSON, the same columns.

Columns (CSV header / JSON keys); only ``title`` is required, any other may be left out:

    title, set_number, store, source_url, piece_count, release_date, theme, notes,
    purchase_price, tax, shipping, purchase_date, wishlist_item_id, tags, is_built,
    quantity, image_urls, thumbnail_urls

(``COLUMNS``: SetCreate's writable fields in its order, then the two image columns.)

- money (``purchase_price``, ``tax``, ``shipping``): decimal strings, at most 2 places
  (``"12.30"``); JSON numbers are refused so no float ever rounds a price;
- dates: ISO 8601 with a UTC offset (``2021-11-08T00:00:00+00:00``); a plain date
  (``2021-11-08``) means midnight UTC;
- ``tags``, ``image_urls``, ``thumbnail_urls``: lists; in CSV ``;``-separated, or a JSON
  list (``["a;b", "c"]``) when a value itself contains ``;``. ``thumbnail_urls`` is empty or
  has one entry per image (an empty entry: no thumbnail);
- ``is_built``: true/false (also yes/no, 1/0); empty CSV cells mean "not given" (null);
- CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
  ``@``, tab or CR) are written with a ``'`` in front, and so is a cell that starts with
  ``'`` followed by one of those or by another ``'``; import removes that one ``'``, so the
  mapping is exact both ways.

Files are read as bytes and decoded as UTF-8 (a BOM is skipped); CSV line ends are the csv
module's own business, so a ``\\r`` or ``\\r\\n`` inside a quoted cell is kept as it is.
Reading is incremental (row by row, JSON item by item): memory does not grow with the file.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Annotated, Any, Literal, TextIO, Union, get_args, get_origin
from uuid import UUID

import pydantic
from pydantic import AwareDatetime, BeforeValidator, ConfigDict, ValidationInfo, field_validator

from sets_db.schemas import SetCreate, SetOut

Format = Literal["csv", "json"]


def _base_types(annotation: Any) -> set[Any]:
    """The plain types inside a field's annotation (``Money | None`` -> {Decimal, NoneType})."""
    found: set[Any] = set()
    pending = [annotation]
    while pending:
        current = pending.pop()
        origin = get_origin(current)
        if origin is Annotated:
            pending.append(get_args(current)[0])
        elif origin in (Union, types.UnionType):
            pending.extend(get_args(current))
        else:
            found.add(origin or current)
    return found


# The file's columns are the writable fields of a set (SetCreate), so a column added there
# is read and written here too; the images are two list columns.
_FIELD_TYPES = {
    name: _base_types(field.annotation)
    for name, field in SetCreate.model_fields.items()
    if name != "images"
}
COLUMNS = (
    "title",
    *(name for name in _FIELD_TYPES if name != "title"),
    "image_urls",
    "thumbnail_urls",
)
_LISTS = {name for name, kinds in _FIELD_TYPES.items() if list in kinds} | {
    "image_urls",
    "thumbnail_urls",
}
_MONEY = {name for name, kinds in _FIELD_TYPES.items() if Decimal in kinds}
_DATES = {name for name, kinds in _FIELD_TYPES.items() if kinds & {datetime, AwareDatetime}}
_FLAGS = {name for name, kinds in _FIELD_TYPES.items() if bool in kinds}
_PLAIN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}

# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = frozenset("=+-@\t\r")
_ESCAPE = "'"
# An item of a JSON file: far larger than any valid set (notes, 100 images of 2 URLs), so a
# runaway item is refused instead of buffered.
MAX_ITEM_CHARS = 8 * 1024 * 1024
# Digits of a JSON integer: more than any column holds, far fewer than Python's int limit.
MAX_INT_DIGITS = 30
_CHUNK = 64 * 1024


class SetFileError(ValueError):
    """The file cannot be read as a sets file at all (missing, not CSV/JSON, bad header)."""


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.reason}"


def detect_format(path: Path, given: Format | None = None) -> Format:
    if given is not None:
        return given
    suffix = path.suffix.lower()
    if suffix in {".csv", ".json"}:
        return "csv" if suffix == ".csv" else "json"
    raise SetFileError(f"{path}: cannot tell the format from the name; pass --format csv|json")


# --- reading --------------------------------------------------------------------------------

# A file row: its number (1 = the first set, the header not counted) and its raw mapping, or
# the reason the row cannot even be split into columns.
FileRow = tuple[int, dict[str, Any] | RowError]


@dataclass(frozen=True)
class OpenFile:
    rows: Iterator[FileRow]
    format: Format
    size: int
    bytes_read: Callable[[], int]


@contextmanager
def read_rows(path: Path, file_format: Format) -> Iterator[OpenFile]:
    """The file's rows, read lazily; the file is closed when the block ends.

    The header and the first row are read at once, so that a file that is not a sets file
    at all fails here, before anything else is done."""
    try:
        binary = path.open("rb")
        size = os.fstat(binary.fileno()).st_size
    except OSError as error:
        raise SetFileError(f"cannot read {path}: {error.strerror or error}") from None
    # newline="": the csv module sees every \r and \n and keeps those inside quoted cells.
    with binary, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as text:
        rows = _decoding(
            path, _csv_rows(path, text) if file_format == "csv" else _json_rows(path, text)
        )
        first = list(itertools.islice(rows, 1))
        yield OpenFile(itertools.chain(first, rows), file_format, size, binary.tell)


def _decoding(path: Path, rows: Iterator[FileRow]) -> Iterator[FileRow]:
    try:
        yield from rows
    except UnicodeDecodeError as error:
        raise SetFileError(f"{path} is not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise SetFileError(f"cannot read {path}: {error.strerror or error}") from None


def _csv_rows(path: Path, text: TextIO) -> Iterator[FileRow]:
    reader = csv.reader(text, strict=True)
    try:
        header = _header(path, next(reader, None))
        number = 0
        for cells in reader:
            if not cells:  # a blank line
                continue
            number += 1
            if len(cells) != len(header):
                yield (
                    number,
                    RowError(
                        number, "-", f"has {len(cells)} cell(s); the header has {len(header)}"
                    ),
                )
                continue
            # Empty cells mean "not given".
            cells_of = zip(header, cells, strict=True)
            yield number, {key: value for key, value in cells_of if value != ""}
    except csv.Error as error:
        raise SetFileError(f"{path}, line {reader.line_num}: {error}") from None


def _header(path: Path, header: list[str] | None) -> list[str]:
    if not header:
        raise SetFileError(f"{path} is empty; the first line must be the column names")
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise SetFileError(
            f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"the columns are: {', '.join(COLUMNS)}"
        )
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise SetFileError(f"{path}: the header names {', '.join(map(repr, twice))} twice")
    if "title" not in header:
        raise SetFileError(f"{path}: the header has no 'title' column")
    return header


def _bounded_int(digits: str) -> int:
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"a number has more than {MAX_INT_DIGITS} digits")
    return int(digits)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_JSON = json.JSONDecoder(parse_int=_bounded_int, parse_constant=_no_constant)
_SPACE = re.compile(r"[ \t\n\r]*")


class _JsonItems:
    """The items of a top-level JSON list, decoded one at a time from a text stream."""

    def __init__(self, path: Path, stream: IO[str]) -> None:
        self.path, self.stream = path, stream
        self.buffer, self.pos, self.eof = "", 0, False

    def _fill(self) -> None:
        chunk = self.stream.read(max(_CHUNK, len(self.buffer) - self.pos))
        self.eof = not chunk
        self.buffer = self.buffer[self.pos :] + chunk
        self.pos = 0

    def _next_char(self) -> str:
        """The next non-blank character (not consumed); "" at the end of the file."""
        while True:
            self.pos = _SPACE.match(self.buffer, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buffer) or self.eof:
                return self.buffer[self.pos : self.pos + 1]
            self._fill()

    def _fail(self, what: str) -> SetFileError:
        return SetFileError(f"{self.path} is not valid JSON: {what}")

    def _expect(self, allowed: str, what: str) -> str:
        char = self._next_char()
        if not char or char not in allowed:
            raise self._fail(f"expected {what}")
        self.pos += 1
        return char

    def _value(self, number: int) -> Any:
        self._next_char()
        while True:
            try:
                value, end = _JSON.raw_decode(self.buffer, self.pos)
            except RecursionError:
                raise self._fail(f"item {number} is nested too deeply") from None
            except json.JSONDecodeError as error:
                if self.eof or len(self.buffer) - self.pos > MAX_ITEM_CHARS:
                    raise self._fail(f"item {number}: {error.msg}") from None
            except ValueError as error:
                raise self._fail(f"item {number}: {error}") from None
            else:
                # A number that ends where the buffer ends may go on in the next chunk.
                if end < len(self.buffer) or self.eof:
                    self.pos = end
                    return value
            self._fill()

    def __iter__(self) -> Iterator[Any]:
        self._expect("[", "a list of sets")
        if self._next_char() == "]":
            self.pos += 1
        else:
            number = 0
            while True:
                number += 1
                yield self._value(number)
                if self._expect(",]", "',' or ']' after an item") == "]":
                    break
        if self._next_char():
            raise self._fail("text after the end of the list")


def _json_rows(path: Path, text: TextIO) -> Iterator[FileRow]:
    for number, item in enumerate(_JsonItems(path, text), start=1):
        if isinstance(item, dict):
            yield number, item
        else:
            yield number, RowError(number, "-", "expected an object (one set)")


# --- one row: file cells -> the input of SetCreate -------------------------------------------


def unneutralised(cell: str) -> str:
    """A CSV cell as written before ``neutralised()``."""
    if cell[:1] == _ESCAPE and (cell[1:2] in FORMULA_STARTS or cell[1:2] == _ESCAPE):
        return cell[1:]
    return cell


def neutralised(cell: str) -> str:
    """The cell with a ``'`` in front when a spreadsheet would run it as a formula, or when
    ``unneutralised()`` would take a ``'`` off it."""
    first = cell[:1]
    if (first and first in FORMULA_STARTS) or unneutralised(cell) != cell:
        return _ESCAPE + cell
    return cell


def _list_cell(value: Any) -> Any:
    """A list cell: ``a;b`` or a JSON list (for items holding ``;``); JSON lists pass."""
    if not isinstance(value, str):
        return value
    if not value.lstrip().startswith("["):
        return value.split(";")
    try:
        items = json.loads(value, parse_int=_bounded_int, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("is nested too deeply") from None
    except ValueError:
        raise ValueError('must be a ;-separated list or a JSON list such as ["a;b", "c"]') from None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("must be a JSON list of texts")
    return items


def _money_cell(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "12.30"')
    return value


def _date_cell(value: Any) -> Any:
    if isinstance(value, str) and _PLAIN_DATE.fullmatch(value):
        return value + "T00:00:00+00:00"
    return value


def _boolean_cell(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
        return _BOOLEAN_WORDS[value.strip().lower()]
    return value


ListCell = Annotated[list[str] | None, BeforeValidator(_list_cell)]
MoneyCell = Annotated[str | None, BeforeValidator(_money_cell)]
DateCell = Annotated[Any, BeforeValidator(_date_cell)]


BooleanCell = Annotated[Any, BeforeValidator(_boolean_cell)]


def _cell_type(column: str) -> Any:
    for kinds, cell in ((_LISTS, ListCell), (_MONEY, MoneyCell), (_DATES, DateCell)):
        if column in kinds:
            return cell
    return BooleanCell if column in _FLAGS else Any


class _FileRecord(pydantic.BaseModel):
    """One row of a file, turned into what ``SetCreate`` takes (its rules are checked there,
    once): lists split, plain dates completed, yes/no read, image columns joined."""

    model_config = ConfigDict(extra="forbid")

    image_urls: list[str] | None = None
    thumbnail_urls: list[str] | None = None

    @field_validator("thumbnail_urls")
    @classmethod
    def _one_per_image(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value and len(value) != len(info.data.get("image_urls") or []):
            raise ValueError("must have one entry per image URL")
        return value

    def set_input(self) -> dict[str, Any]:
        data = {
            name: value
            for name, value in self
            if value is not None and name not in {"image_urls", "thumbnail_urls"}
        }
        thumbnails = self.thumbnail_urls or []
        data["images"] = [
            {"image_url": url, "thumbnail_url": thumbnails[index] or None}
            if thumbnails
            else {"image_url": url}
            for index, url in enumerate(self.image_urls or [])
        ]
        return data


# A field per column, in COLUMNS order (the image columns last, as they are declared above).
_CELLS: dict[str, Any] = {column: (_cell_type(column), None) for column in COLUMNS}
FileRecord = pydantic.create_model("FileRecord", __base__=_FileRecord, **_CELLS)


def _given(record: dict[str, Any], csv_cells: bool) -> dict[str, Any]:
    """The cells that hold a value (JSON null: not given), CSV cells un-neutralised."""
    if csv_cells:
        return {key: unneutralised(value) for key, value in record.items()}
    return {key: value for key, value in record.items() if value is not None}


def check_row(
    row: int, record: dict[str, Any] | RowError, *, csv_cells: bool
) -> SetCreate | list[RowError]:
    """One raw record as a validated ``SetCreate``, or every reason it is not one."""
    if isinstance(record, RowError):
        return [record]
    try:
        converted = FileRecord.model_validate(_given(record, csv_cells))
        return SetCreate.model_validate(converted.set_input())
    except pydantic.ValidationError as error:
        return [RowError(row, _column(item["loc"]), _message(item)) for item in error.errors()]


def _message(item: Any) -> str:
    message: str = item["msg"]
    return message.removeprefix("Value error, ")


def _column(location: tuple[int | str, ...]) -> str:
    if not location:
        return "-"
    if location[0] == "images" and len(location) >= 3:
        column = "image_urls" if location[2] == "image_url" else "thumbnail_urls"
        return f"{column} (item {int(location[1]) + 1})"
    if location[0] in _LISTS and len(location) >= 2 and isinstance(location[1], int):
        return f"{location[0]} (item {location[1] + 1})"
    if location[0] == "images":
        return "image_urls"
    return str(location[0])


def check_rows(rows: list[FileRow], *, csv_cells: bool) -> tuple[list[SetCreate], list[RowError]]:
    """A batch of file rows checked: the valid sets and the errors of the others."""
    sets: list[SetCreate] = []
    errors: list[RowError] = []
    for number, record in rows:
        checked = check_row(number, record, csv_cells=csv_cells)
        if isinstance(checked, list):
            errors += checked
        else:
            sets.append(checked)
    return sets, errors


# --- export ---------------------------------------------------------------------------------


def record_of(item: SetOut) -> dict[str, Any]:
    """A set as a JSON-ready record of ``COLUMNS`` (money, ids and dates as strings)."""
    record: dict[str, Any] = {}
    for column in COLUMNS:
        if column == "image_urls":
            record[column] = [image.image_url for image in item.images]
        elif column == "thumbnail_urls":
            thumbnails = [image.thumbnail_url or "" for image in item.images]
            record[column] = thumbnails if any(thumbnails) else []
        else:
            value = getattr(item, column)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Decimal | UUID):
                value = str(value)
            record[column] = value
    return record


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column in _LISTS:
        items: list[str] = value
        # ``;`` inside an item (or a leading ``[``) would be read back differently.
        if any(";" in item for item in items) or (items and items[0].lstrip().startswith("[")):
            return json.dumps(items, ensure_ascii=False)
        return ";".join(items)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Writer:
    """Streams records to ``out`` as CSV (header first) or as one JSON list."""

    def __init__(self, out: TextIO, file_format: Format) -> None:
        self.out = out
        self.format = file_format
        self.count = 0
        if file_format == "csv":
            # QUOTE_MINIMAL quotes \n but not a lone \r; every reader splits lines on it.
            self._csv = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
            self._csv.writerow(COLUMNS)
        else:
            out.write("[")

    def write(self, item: SetOut) -> None:
        record = record_of(item)
        if self.format == "csv":
            self._csv.writerow([neutralised(_cell(column, record[column])) for column in COLUMNS])
        else:
            self.out.write(("," if self.count else "") + "\n  ")
            self.out.write(json.dumps(record, ensure_ascii=False))
        self.count += 1

    def close(self) -> None:
        if self.format == "json":
            self.out.write("\n]\n" if self.count else "]\n")
        self.out.flush()
