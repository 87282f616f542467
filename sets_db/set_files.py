"""The one file format of ``sets-db import`` / ``export``: CSV or JSON, the same columns.

Columns (CSV header / JSON keys); only ``title`` is required, any other may be left out:

    title, set_number, theme, tags, piece_count, release_date, is_built, quantity,
    purchase_price, tax, shipping, purchase_date, store, source_url, notes,
    wishlist_item_id, image_urls, thumbnail_urls

- money (``purchase_price``, ``tax``, ``shipping``): decimal strings, at most 2 places
  (``"12.30"``); JSON numbers are refused so no float ever rounds a price;
- dates: ISO 8601 with a UTC offset (``2021-11-08T00:00:00+00:00``); a plain date
  (``2021-11-08``) means midnight UTC;
- ``tags``, ``image_urls``, ``thumbnail_urls``: lists; in CSV ``;``-separated, or a JSON
  list (``["a;b", "c"]``) when a value itself contains ``;``. ``thumbnail_urls`` is empty or
  has one entry per image (an empty entry: no thumbnail);
- ``is_built``: true/false (also yes/no, 1/0); empty CSV cells mean "not given" (null).

Export writes exactly these columns, so export -> import round-trips every field (in CSV an
empty text and a missing one are the same empty cell; JSON keeps them apart).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import pydantic

from sets_db.schemas import SetCreate, SetOut

Format = Literal["csv", "json"]

COLUMNS = (
    "title",
    "set_number",
    "theme",
    "tags",
    "piece_count",
    "release_date",
    "is_built",
    "quantity",
    "purchase_price",
    "tax",
    "shipping",
    "purchase_date",
    "store",
    "source_url",
    "notes",
    "wishlist_item_id",
    "image_urls",
    "thumbnail_urls",
)
_LISTS = {"tags", "image_urls", "thumbnail_urls"}
_MONEY = {"purchase_price", "tax", "shipping"}
_DATES = {"release_date", "purchase_date"}
_PLAIN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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


def read_records(path: Path, file_format: Format) -> list[dict[str, Any]]:
    """The file's rows as raw mappings (row 1 is the first set, the header not counted)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise SetFileError(f"cannot read {path}: {error}") from None
    if file_format == "json":
        return _json_records(path, text)
    return _csv_records(path, text)


def _json_records(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SetFileError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, list):
        raise SetFileError(f"{path}: expected a JSON list of sets")
    return [item if isinstance(item, dict) else {"": item} for item in data]


def _csv_records(path: Path, text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="", strict=True)
    try:
        header = reader.fieldnames
        if not header:
            raise SetFileError(f"{path} is empty; the first line must be the column names")
        unknown = [name for name in header if name not in COLUMNS]
        if unknown:
            raise SetFileError(
                f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; "
                f"the columns are: {', '.join(COLUMNS)}"
            )
        if "title" not in header:
            raise SetFileError(f"{path}: the header has no 'title' column")
        # Empty cells mean "not given".
        return [{key: value for key, value in row.items() if value != ""} for row in reader]
    except csv.Error as error:
        raise SetFileError(f"{path}, line {reader.line_num}: {error}") from None


def _split(value: Any) -> Any:
    """A CSV list cell: ``a;b`` or a JSON list; JSON values pass through."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value.split(";")


def parse_row(row: int, record: dict[str, Any]) -> SetCreate | list[RowError]:
    """One raw record as a validated ``SetCreate``, or every reason it is not one."""
    errors: list[RowError] = []
    if "" in record:  # a CSV row with extra cells, or a JSON item that is not an object
        errors.append(RowError(row, "-", "expected one value per column (an object in JSON)"))
    unknown = [key for key in record if key and key not in COLUMNS]
    errors += [RowError(row, key, "unknown column") for key in unknown]
    data: dict[str, Any] = {}
    for column in COLUMNS:
        if column not in record or record[column] is None:
            continue
        value = record[column]
        if column in _LISTS:
            value = _split(value)
        elif column in _MONEY and not isinstance(value, str):
            errors.append(RowError(row, column, 'must be a decimal string such as "12.30"'))
            continue
        elif column in _DATES and isinstance(value, str) and _PLAIN_DATE.fullmatch(value):
            value += "T00:00:00+00:00"
        data[column] = value
    image_urls = data.pop("image_urls", [])
    thumbnail_urls = data.pop("thumbnail_urls", [])
    if not isinstance(image_urls, list) or not isinstance(thumbnail_urls, list):
        errors.append(RowError(row, "image_urls", "must be a list of URLs"))
    elif thumbnail_urls and len(thumbnail_urls) != len(image_urls):
        errors.append(RowError(row, "thumbnail_urls", "must have one entry per image URL"))
    else:
        data["images"] = [
            {"image_url": url, "thumbnail_url": thumbnail_urls[index] or None}
            if thumbnail_urls
            else {"image_url": url}
            for index, url in enumerate(image_urls)
        ]
    if errors:
        return errors
    try:
        return SetCreate.model_validate(data)
    except pydantic.ValidationError as error:
        return [RowError(row, _column(item["loc"]), item["msg"]) for item in error.errors()]


def _column(location: tuple[int | str, ...]) -> str:
    if not location:
        return "-"
    if location[0] == "images" and len(location) >= 3:
        column = "image_urls" if location[2] == "image_url" else "thumbnail_urls"
        return f"{column} (item {int(location[1]) + 1})"
    if location[0] == "tags" and len(location) >= 2:
        return f"tags (item {int(location[1]) + 1})"
    return str(location[0])


# --- export ---------------------------------------------------------------------------------


def record_of(item: SetOut) -> dict[str, Any]:
    """A set as a JSON-ready record of ``COLUMNS`` (money and dates as strings)."""
    record: dict[str, Any] = {}
    for column in COLUMNS:
        if column == "image_urls":
            record[column] = [image.image_url for image in item.images]
        elif column == "thumbnail_urls":
            thumbnails = [image.thumbnail_url or "" for image in item.images]
            record[column] = thumbnails if any(thumbnails) else []
        else:
            value = getattr(item, column)
            if value is not None and column in _MONEY:
                value = str(value)
            elif value is not None and column in _DATES:
                value = value.isoformat()
            elif value is not None and column == "wishlist_item_id":
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
            self._csv = csv.writer(out, lineterminator="\n")
            self._csv.writerow(COLUMNS)
        else:
            out.write("[")

    def write(self, item: SetOut) -> None:
        record = record_of(item)
        if self.format == "csv":
            self._csv.writerow([_cell(column, record[column]) for column in COLUMNS])
        else:
            self.out.write(("," if self.count else "") + "\n  ")
            self.out.write(json.dumps(record, ensure_ascii=False))
        self.count += 1

    def close(self) -> None:
        if self.format == "json":
            self.out.write("\n]\n" if self.count else "]\n")
        self.out.flush()


def parse_all(
    records: Iterable[dict[str, Any]],
) -> Iterator[tuple[int, SetCreate | list[RowError]]]:
    for row, record in enumerate(records, start=1):
        yield row, parse_row(row, record)
