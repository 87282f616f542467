"""``sets-db``, run as a user runs it: the console script in a subprocess, against a
throwaway database handed over in ``DATABASE_URL``."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sets_db.set_files import COLUMNS
from tests import pg
from tests.pg import REPO_ROOT, connect, service_env
from tests.test_cli_usage import one_error

SETS_DB = str(Path(sys.executable).with_name("sets-db"))
MakeDatabase = Callable[[], Awaitable[str]]


def sets_db(url: str, *args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **service_env(url), "COLUMNS": "200"}
    return subprocess.run(
        [SETS_DB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


def fails(result: subprocess.CompletedProcess[str]) -> list[str]:
    """A clean failure: exit 1, no traceback; its stderr lines."""
    assert result.returncode == 1, f"{result.args}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()


async def fetch(url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in await pg.fetch(url, query, *args)]


async def count_sets(url: str, user_id: str | None = None) -> int:
    rows = await fetch(
        url, "SELECT count(*) AS n FROM sets WHERE $1::text IS NULL OR user_id = $1", user_id
    )
    return int(rows[0]["n"])


@pytest.fixture
async def migrated(migrated_database: MakeDatabase) -> str:
    return await migrated_database()


# Every column filled, with the awkward cases: ; and [ in tags, a newline, quotes and a
# comma in text, cents, an image without thumbnail between two with, unicode.
FULL_SET = {
    "title": 'Lamborghini Sián "FKP 37", 1:8',
    "set_number": "42115",
    "theme": "Technic",
    "tags": ["car", "semi;colon", "[bracket", "Ultimate"],
    "piece_count": 3696,
    "release_date": "2020-06-01T00:00:00+00:00",
    "is_built": True,
    "quantity": 2,
    "purchase_price": "379.90",
    "tax": "0.10",
    "shipping": "0.00",
    "purchase_date": "2021-03-04T05:06:07.123456+00:00",
    "store": "LEGO Store, Berlin",
    "source_url": "https://www.lego.com/product/42115?x=1;y=2",
    "notes": "line one\nline two, with a comma",
    "wishlist_item_id": "6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
    "image_urls": ["https://img.example/1.jpg", "https://img.example/2.jpg", "https://img.example/3.jpg"],
    "thumbnail_urls": ["https://img.example/t1.jpg", "", "https://img.example/t3.jpg"],
}  # fmt: skip
SMALL_SET = {"title": "Bonsai Tree", "set_number": "10281", "purchase_price": "49.99"}


async def test_demo_twice_adds_nothing_and_b_cannot_see_a(empty_database: MakeDatabase) -> None:
    url = await empty_database()
    first = ok(sets_db(url, "demo"))
    assert "database: postgres://postgres@127.0.0.1" in first.stderr.splitlines()[0]
    counts = {user: await count_sets(url, user) for user in ("demo-user-a", "demo-user-b")}
    assert counts == {"demo-user-a": 13, "demo-user-b": 2}

    second = ok(sets_db(url, "demo"))
    assert "sample sets created: demo-user-a 0, demo-user-b 0" in second.stderr
    assert {user: await count_sets(url, user) for user in counts} == counts
    for title in ("Collection of demo-user-a", "Stats of demo-user-a", "Duplicate lookup"):
        assert title in second.stdout
    assert "Millennium Falcon" in second.stdout
    # The proof: user B's get_set on A's set raises SetNotFoundError.
    assert "SetNotFoundError: set" in second.stdout
    assert "VISIBLE" not in second.stdout


async def test_migrate_check_and_status(empty_database: MakeDatabase) -> None:
    url = await empty_database()
    assert "pending" in ok(sets_db(url, "status")).stdout
    problems = fails(sets_db(url, "migrate", "--check"))
    assert any(line.startswith("pending migration: 0_") for line in problems)
    assert await fetch(url, "SELECT to_regclass('sets') AS t") == [{"t": None}]

    applied = ok(sets_db(url, "migrate")).stdout
    assert "applied 0_" in applied
    assert "pending" not in ok(sets_db(url, "status")).stdout
    assert "up to date" in ok(sets_db(url, "migrate", "--check")).stdout
    assert "0 migration(s) applied" in ok(sets_db(url, "migrate")).stdout


async def test_commands_refuse_an_unmigrated_database(empty_database: MakeDatabase) -> None:
    url = await empty_database()
    lines = fails(sets_db(url, "stats", "--user", "a"))
    assert lines[-1].startswith("error: the database has")
    assert "sets-db migrate" in lines[-1]


def write_csv(path: Path, records: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path


async def test_invalid_rows_are_reported_and_nothing_is_imported(
    migrated: str, tmp_path: Path
) -> None:
    rows = [
        {"title": "Fine", "purchase_price": "10.00", "image_urls": "https://x/1.jpg"},
        {"title": "Bad price", "purchase_price": "12.345", "image_urls": ""},
        {"title": "", "purchase_price": "1", "image_urls": "ftp://x/1.jpg"},
    ]
    path = write_csv(tmp_path / "sets.csv", rows)
    lines = fails(sets_db(migrated, "import", str(path), "--user", "a"))
    assert any(line.startswith("row 2, column purchase_price:") for line in lines), lines
    assert any(line.startswith("row 3, column title:") for line in lines), lines
    assert any(line.startswith("row 3, column image_urls (item 1):") for line in lines), lines
    assert lines[-1] == f"error: {path}: 3 problem(s) found; nothing was imported"
    assert await count_sets(migrated) == 0

    # JSON: money must be a decimal string, never a float.
    json_path = tmp_path / "sets.json"
    json_path.write_text(json.dumps([{"title": "Float", "purchase_price": 9.99}]))
    lines = fails(sets_db(migrated, "import", str(json_path), "--user", "a"))
    assert "row 1, column purchase_price: must be a decimal string" in "\n".join(lines)
    assert await count_sets(migrated) == 0


async def test_bad_files_fail_in_one_line(migrated: str, tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("[{")
    (tmp_path / "odd.csv").write_text("title,colour\nA,red\n")
    for name, expected in [
        ("missing.csv", "cannot read"),
        ("broken.json", "not valid JSON"),
        ("odd.csv", "unknown column(s) 'colour'"),
    ]:
        lines = fails(sets_db(migrated, "import", str(tmp_path / name), "--user", "a"))
        assert len(lines) == 1
        assert lines[0].startswith("error: ")
        assert expected in lines[0]
    unreachable = "postgres://postgres:secret@127.0.0.1:1/nowhere"
    lines = fails(sets_db(unreachable, "stats", "--user", "a"))
    assert lines[0] == "database: postgres://postgres:***@127.0.0.1:1/nowhere (DATABASE_URL)"
    assert len(lines) == 2
    assert lines[1].startswith("error: ")


async def test_dry_run_validates_only(migrated: str, tmp_path: Path) -> None:
    path = tmp_path / "sets.json"
    path.write_text(json.dumps([FULL_SET, SMALL_SET]))
    result = ok(sets_db(migrated, "import", str(path), "--user", "a", "--dry-run"))
    assert "2 set(s) are valid; nothing was imported (dry run)" in result.stdout
    assert await count_sets(migrated) == 0


SET_COLUMNS = (
    "title, set_number, store, source_url, piece_count, release_date, theme, tags, notes,"
    " is_built, quantity, purchase_price, tax, shipping, purchase_date, wishlist_item_id"
)


async def collection(url: str, user_id: str) -> list[Any]:
    """Everything the user owns, minus what identifies the row (ids, owner, timestamps)."""
    sets = await fetch(
        url, f"SELECT id, {SET_COLUMNS} FROM sets WHERE user_id = $1 ORDER BY title", user_id
    )
    result = []
    for row in sets:
        images = await fetch(
            url,
            "SELECT image_url, thumbnail_url, position FROM set_images"
            " WHERE set_id = $1 ORDER BY position",
            row.pop("id"),
        )
        result.append((row, images))
    return result


@pytest.mark.parametrize("file_format", ["csv", "json"])
async def test_export_import_round_trip(migrated: str, tmp_path: Path, file_format: str) -> None:
    source = tmp_path / "source.json"
    source.write_text(json.dumps([FULL_SET, SMALL_SET]))
    ok(sets_db(migrated, "import", str(source), "--user", "a"))

    exported = tmp_path / f"a.{file_format}"
    ok(sets_db(migrated, "export", "--user", "a", "--format", file_format, "-o", str(exported)))
    ok(sets_db(migrated, "import", str(exported), "--user", "b"))
    again = ok(sets_db(migrated, "export", "--user", "b", "--format", file_format)).stdout

    # The same file again (sets created in one transaction may come out in either order).
    assert records(again, file_format) == records(exported.read_text(), file_format)
    a, b = await collection(migrated, "a"), await collection(migrated, "b")
    assert len(a) == 2
    assert a == b
    full = next(row for row, _ in a if row["set_number"] == "42115")
    assert full["tags"] == FULL_SET["tags"]
    assert str(full["tax"]) == "0.10"
    assert str(full["wishlist_item_id"]) == FULL_SET["wishlist_item_id"]
    if file_format == "json":
        assert next(r for r in json.loads(again) if r["set_number"] == "42115") == FULL_SET


def records(text: str, file_format: str) -> list[Any]:
    if file_format == "json":
        return sorted(json.loads(text), key=lambda record: record["title"])
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert tuple(header) == COLUMNS
    return sorted(rows)


async def test_stats_table(migrated: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", [{**SMALL_SET, "theme": "Icons"}])
    ok(sets_db(migrated, "import", str(path), "--user", "a"))
    result = ok(sets_db(migrated, "stats", "--user", "a"))
    assert "Stats of a" in result.stdout
    assert "Icons" in result.stdout
    assert "49.99" in result.stdout
    empty = ok(sets_db(migrated, "stats", "--user", "nobody")).stdout
    assert "49.99" not in empty


PATHOLOGICAL = {
    "deep.json": "[" * 100_000 + "]" * 100_000,
    "digits.json": '[{"title": "x", "piece_count": ' + "9" * 5000 + "}]",
    "brackets.csv": 'title,tags\nx,"' + "[" * 50_000 + '"\n',
    "dupes.csv": "title,title\na,b\n",
    "short.csv": "title,theme\na\n",
    "latin1.csv": "title\nCaf\xe9\n",
}


async def test_pathological_files_are_one_error_line(migrated: str, tmp_path: Path) -> None:
    for name, text in PATHOLOGICAL.items():
        path = tmp_path / name
        path.write_bytes(text.encode("latin-1" if "latin1" in name else "utf-8"))
        for extra in (["--dry-run"], []):
            result = sets_db(migrated, "import", str(path), "--user", "a", *extra)
            assert one_error(result).startswith("error: "), name
    assert await count_sets(migrated) == 0


async def test_at_most_100_row_errors_are_listed(migrated: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("title,quantity\n" + "x,0\n" * 5000 + "fine,1\n")
    result = sets_db(migrated, "import", str(path), "--user", "a")
    line = one_error(result)
    assert line == f"error: {path}: 5000 problem(s) found; nothing was imported"
    rows = [line for line in result.stderr.splitlines() if line.startswith("row ")]
    assert len(rows) == 100
    assert rows[0].startswith("row 1, column quantity:")
    assert "(the first 100 of 5000 problems are listed)" in result.stderr
    assert await count_sets(migrated) == 0


# --- exact CSV round trip through the command line ----------------------------------------

AWKWARD: list[dict[str, Any]] = [
    {"title": "CR in notes", "notes": "line1\r\nline2\rline3\nline4\ttab"},
    {"title": "quotes \"x\" 'y'", "notes": "  inner  spaces  ", "store": "a, b; c"},
    {"title": "planes a\u00e9\u4e2d\U0001f9f1\U00020000\U00030000\U000f0000\U00100000"},
    {"title": "=cmd|' /C calc'!A0", "theme": "@SUM(1+1)", "set_number": "+1", "store": "-2+3"},
    {"title": "'=quoted", "tags": ["=a", "'b", "''", "+c"], "notes": "'"},
    {"title": "empty text", "set_number": "", "notes": ""},
]


async def test_csv_round_trip_is_exact(migrated: str, tmp_path: Path) -> None:
    source = tmp_path / "source.json"
    source.write_text(json.dumps(AWKWARD), encoding="utf-8")
    ok(sets_db(migrated, "import", str(source), "--user", "a"))
    exported = tmp_path / "a.csv"
    ok(sets_db(migrated, "export", "--user", "a", "-o", str(exported)))
    data = exported.read_bytes()
    assert b'"line1\r\nline2\rline3\nline4\ttab"' in data
    for cell in (b"'=cmd|", b"'@SUM(1+1)", b"'+1", b"'-2+3", b"''=quoted"):
        assert cell in data, cell

    ok(sets_db(migrated, "import", str(exported), "--user", "b"))
    a, b = await collection(migrated, "a"), await collection(migrated, "b")
    assert len(a) == len(AWKWARD)
    # CSV keeps an empty text and a missing one apart only in JSON (README).
    empty = next(row for row, _ in a if row["title"] == "empty text")
    assert (empty["set_number"], empty["notes"]) == ("", "")
    for row, _ in b:
        if row["title"] == "empty text":
            assert (row["set_number"], row["notes"]) == (None, None)
            row["set_number"] = row["notes"] = ""
    assert a == b
    stdout = ok(sets_db(migrated, "export", "--user", "b", "--format", "json")).stdout
    titles = {record["title"] for record in json.loads(stdout)}
    assert titles == {record["title"] for record in AWKWARD}


async def test_export_to_a_closed_pipe_is_quiet(migrated: str, tmp_path: Path) -> None:
    rows = [{"title": f"set {n}", "notes": "n" * 2000} for n in range(300)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(rows))
    ok(sets_db(migrated, "import", str(path), "--user", "a"))
    status, stderr = read_100_bytes_then_close(migrated)
    assert status in {0, 1}
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    assert len([line for line in stderr.splitlines() if line.startswith("error:")]) <= 1


def read_100_bytes_then_close(url: str) -> tuple[int, str]:
    """``sets-db export | head -c 100``: its exit status and stderr."""
    env = {**os.environ, "DATABASE_URL": url}
    with subprocess.Popen(
        [SETS_DB, "export", "--user", "a"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert len(process.stdout.read(100)) == 100
        process.stdout.close()
        stderr = process.stderr.read().decode()
        return process.wait(timeout=120), stderr


async def test_stored_control_characters_are_escaped(migrated: str) -> None:
    conn = await connect(migrated)
    try:
        await conn.execute(
            "INSERT INTO sets (id, user_id, title, theme, tags, is_built, quantity)"
            " VALUES (gen_random_uuid(), 'a', 'x', $1, '{}', false, 1)",
            "\x1b[31mred\x1b]0;title\x07",
        )
    finally:
        await conn.close()
    stdout = ok(sets_db(migrated, "stats", "--user", "a")).stdout
    assert "\x1b" not in stdout
    assert "\x07" not in stdout
    assert "\\x1b[31mred" in stdout
