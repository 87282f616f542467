"""The import/export file format in process: exact CSV round trips, formula neutralisation,
strict structure, and pathological files that must fail as a ``SetFileError`` or row error."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sets_db.schemas import SetCreate, SetOut
from sets_db.set_files import (
    COLUMNS,
    FORMULA_STARTS,
    Format,
    RowError,
    SetFileError,
    Writer,
    check_rows,
    neutralised,
    read_rows,
    unneutralised,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
# Visible characters from every plane that has assigned ones (BMP, SMP, SIP, TIP, SSP tags
# are invisible so they ride along with visible ones, PUA-A/B).
EVERY_PLANE = "a\u00e9\u4e2d\U0001f9f1\U00020000\U00030000\U000e0041\U000f0000\U00100000"
TRICKY_TEXTS = [
    "CR only\rinside",
    "line1\r\nline2\rline3\nline4",
    "tab\there",
    "quotes \"double\" and 'single'",
    "comma, semicolon; [bracket",
    "inner  spaces   kept",
    EVERY_PLANE,
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "+1",
    "-2+3",
    "'quoted start",
    "'=already escaped",
    "''",
    "'",
]


def stored(**fields: Any) -> SetOut:
    """A set as the database would hand it out (fields default to empty)."""
    base: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": "u",
        "title": "t",
        "set_number": None,
        "store": None,
        "source_url": None,
        "piece_count": None,
        "release_date": None,
        "theme": None,
        "tags": [],
        "notes": None,
        "is_built": False,
        "quantity": 1,
        "purchase_price": None,
        "tax": None,
        "shipping": None,
        "purchase_date": None,
        "wishlist_item_id": None,
        "created_at": NOW,
        "updated_at": NOW,
        "images": [],
    }
    return SetOut.model_validate({**base, **fields})


def write(items: list[SetOut], file_format: Format, path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = Writer(stream, file_format)
        for item in items:
            writer.write(item)
        writer.close()
    return path


def read(path: Path, file_format: Format) -> tuple[list[SetCreate], list[RowError]]:
    with read_rows(path, file_format) as file:
        sets, errors = check_rows(list(file.rows), csv_cells=file_format == "csv")
    return sets, errors


WRITABLE = [name for name in SetCreate.model_fields if name != "images"]


def same_fields(item: SetOut, again: SetCreate) -> None:
    for name in WRITABLE:
        assert getattr(again, name) == getattr(item, name), name


@pytest.mark.parametrize("file_format", ["csv", "json"])
def test_tricky_text_round_trips_byte_for_byte(tmp_path: Path, file_format: Format) -> None:
    items = [
        stored(title=text.replace("\r", " ").replace("\n", " ").replace("\t", " "), notes=text)
        for text in TRICKY_TEXTS
        if text.strip("'")
    ]
    items += [
        stored(title=text, theme=text, store=text, tags=[text, "x"]) for text in ("=1+1", "-x")
    ]
    items.append(
        stored(
            title="full",
            set_number="42115",
            piece_count=3696,
            release_date=datetime(2020, 6, 1, tzinfo=UTC),
            is_built=True,
            quantity=2,
            purchase_price=Decimal("379.90"),
            tax=Decimal("0.10"),
            shipping=Decimal("0.00"),
            purchase_date=datetime(2021, 3, 4, 5, 6, 7, 123456, tzinfo=UTC),
            source_url="https://www.lego.com/p?x=1;y=2",
            wishlist_item_id=uuid.uuid4(),
            tags=["semi;colon", "[bracket"],
            images=[
                image(0, "https://i.test/1.jpg", None),
                image(1, "https://i.test/2", "https://i.test/t"),
            ],
        )
    )
    path = write(items, file_format, tmp_path / f"sets.{file_format}")
    sets, errors = read(path, file_format)
    assert errors == []
    assert len(sets) == len(items)
    for item, again in zip(items, sets, strict=True):
        same_fields(item, again)
        assert [(i.image_url, i.thumbnail_url) for i in again.images] == [
            (i.image_url, i.thumbnail_url) for i in item.images
        ]


def image(position: int, url: str, thumbnail: str | None) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "set_id": uuid.uuid4(),
        "image_url": url,
        "thumbnail_url": thumbnail,
        "position": position,
        "created_at": NOW,
    }


def test_a_lone_cr_is_quoted_and_formulas_are_neutralised(tmp_path: Path) -> None:
    items = [stored(title="=cmd|' /C calc'!A0", notes="a\rb", tags=["@SUM(1+1)"], theme="+1")]
    text = write(items, "csv", tmp_path / "s.csv").read_bytes().decode()
    assert '"a\rb"' in text
    for cell in ("'=cmd|' /C calc'!A0", "'@SUM(1+1)", "'+1"):
        assert cell in text
    json_text = write(items, "json", tmp_path / "s.json").read_text()
    assert json.loads(json_text)[0]["title"] == "=cmd|' /C calc'!A0"


@given(st.text(alphabet=st.sampled_from(["'", "=", "+", "-", "@", "\t", "\r", "a", " "])))
def test_neutralising_is_undone_exactly(cell: str) -> None:
    assert unneutralised(neutralised(cell)) == cell
    first = neutralised(cell)[:1]
    assert first not in FORMULA_STARTS or not first


def test_files_with_bom_and_crlf_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(b'\xef\xbb\xbftitle,notes\r\nA,"x\r\ny"\r\nB,\r\n')
    sets, errors = read(path, "csv")
    assert errors == []
    assert [(s.title, s.notes) for s in sets] == [("A", "x\r\ny"), ("B", None)]
    path.write_bytes('[{"title": "J"}]'.encode("utf-8-sig"))
    assert [s.title for s in read(path, "json")[0]] == ["J"]


def test_duplicate_header_and_wrong_cell_counts(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("title,theme,title\nA,B,C\n")
    with pytest.raises(SetFileError, match="'title' twice"):
        read(path, "csv")
    path.write_text("title,theme\nA,B\nshort\nA,B,extra\n")
    _, errors = read(path, "csv")
    assert [str(error) for error in errors] == [
        "row 2, column -: has 1 cell(s); the header has 2",
        "row 3, column -: has 3 cell(s); the header has 2",
    ]


def test_pathological_files_fail_in_one_sentence(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SetFileError, match="nested too deeply"):
        read(deep, "json")
    digits = tmp_path / "digits.json"
    digits.write_text('[{"title": "x", "piece_count": ' + "9" * 5000 + "}]")
    with pytest.raises(SetFileError, match="more than 30 digits"):
        read(digits, "json")
    for text in ("[{}] x", "{}", "[1,]", '[{"title": "a"}'):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(SetFileError, match="not valid JSON"):
            read(tmp_path / "bad.json", "json")
    cell = tmp_path / "cell.csv"
    cell.write_text('title,tags\nx,"' + "[" * 50_000 + '"\n')
    _, errors = read(cell, "csv")
    assert [(e.row, e.column) for e in errors] == [(1, "tags")]
    cell.write_text("title,piece_count,purchase_price\nx," + "9" * 5000 + "," + "9" * 5000 + "\n")
    _, errors = read(cell, "csv")
    assert [(e.row, e.column) for e in errors] == [(1, "piece_count"), (1, "purchase_price")]
    (tmp_path / "latin1.csv").write_bytes(b"title\nCaf\xe9\n")
    with pytest.raises(SetFileError, match="not UTF-8"):
        read(tmp_path / "latin1.csv", "csv")


def test_json_items_across_read_chunks(tmp_path: Path) -> None:
    """Items, numbers and strings that straddle the reader's 64 KiB chunks come out whole."""
    records = [
        {"title": f"set {n}", "piece_count": 10**6 + n, "notes": "x" * (n * 37 % 5000)}
        for n in range(400)
    ]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(records, indent=n % 3 if (n := 1) else None))
    sets, errors = read(path, "json")
    assert errors == []
    assert [(s.title, s.piece_count, s.notes or "") for s in sets] == [
        (r["title"], r["piece_count"], r["notes"]) for r in records
    ]


def test_row_errors_name_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            [
                {"title": "ok"},
                {"title": "bad", "purchase_price": 9.99, "tags": "a;b"},
                "not an object",
                {"title": "t", "image_urls": ["https://a.test/1"], "thumbnail_urls": ["", ""]},
                {"title": "", "is_built": "maybe", "quantity": True},
            ]
        )
    )
    sets, errors = read(path, "json")
    assert [s.title for s in sets] == ["ok"]
    assert {(e.row, e.column) for e in errors} == {
        (2, "purchase_price"),
        (3, "-"),
        (4, "thumbnail_urls"),
        (5, "title"),
        (5, "is_built"),
        (5, "quantity"),
    }


def test_columns_are_the_writable_fields() -> None:
    assert set(COLUMNS) == {*WRITABLE, "image_urls", "thumbnail_urls"}


def test_writer_to_memory_is_crlf_csv() -> None:
    stream = io.StringIO(newline="")
    Writer(stream, "csv").close()
    assert stream.getvalue() == ",".join(COLUMNS) + "\r\n"
