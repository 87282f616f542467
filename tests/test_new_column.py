"""A column added the way a developer adds one (the model, the two DTOs, ``aerich migrate``)
reaches every path that lists columns: create, read, update, list, the COPY import, the
streamed export and the CSV/JSON file format, with no other file edited."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.pg import aerich_in, copy_project, output_of

EDITS = {
    "sets_db/models.py": (
        "    notes = fields.TextField(null=True)\n",
        "    condition = fields.TextField(null=True)\n",
    ),
    # SetFields (create and update) and SetOut (read).
    "sets_db/schemas.py": (
        "    wishlist_item_id: Uuid | None = None\n",
        "    condition: ShortText | None = None\n",
    ),
}
SET_OUT_ANCHOR = "    wishlist_item_id: UUID | None\n"

SCRIPT = textwrap.dedent(
    """
    import asyncio, io, json, pathlib, sys, tempfile
    from sets_db import close_db, init_db, services
    from sets_db.set_files import COLUMNS, Writer, read_rows, check_row

    async def main():
        await init_db()
        try:
            made = await services.create_set(user_id="u", data={"title": "a", "condition": "new"})
            assert made.condition == "new", made
            changed = await services.update_set(
                user_id="u", set_id=made.id, changes={"condition": "used"}
            )
            assert (await services.get_set(user_id="u", set_id=made.id)).condition == "used"
            assert await services.import_sets(
                user_id="u", rows=[{"title": "b", "condition": "sealed"}]
            ) == 1
            page = await services.list_sets(user_id="u", sort="title")
            assert [item.condition for item in page.items] == ["used", "sealed"], page
            exported = [item async for item in services.export_sets(user_id="u")]
            assert sorted(item.condition for item in exported) == ["sealed", "used"]
            assert "condition" in COLUMNS
            folder = pathlib.Path(tempfile.mkdtemp())
            for file_format in ("csv", "json"):
                path = folder / f"sets.{file_format}"
                with path.open("w", encoding="utf-8", newline="") as stream:
                    writer = Writer(stream, file_format)
                    for item in exported:
                        writer.write(item)
                    writer.close()
                with read_rows(path, file_format) as opened:
                    rows = [
                        check_row(n, record, csv_cells=file_format == "csv")
                        for n, record in opened.rows
                    ]
                assert sorted(row.condition for row in rows) == ["sealed", "used"], rows
                await services.import_sets(user_id="v", rows=rows)
            again = await services.list_sets(user_id="v", sort="title")
            assert sorted(item.condition for item in again.items) == ["sealed"] * 2 + ["used"] * 2
            print("ok")
        finally:
            await close_db()

    asyncio.run(main())
    """
)


async def test_a_new_column_reaches_every_path(
    empty_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await empty_database()
    project = copy_project(tmp_path / "project")
    output_of(aerich_in(project, url, "upgrade"))  # aerich generates against an up-to-date db
    for name, (anchor, added) in EDITS.items():
        path = project / name
        source = path.read_text()
        assert source.count(anchor) == 1, name
        path.write_text(source.replace(anchor, anchor + added))
    schemas = project / "sets_db" / "schemas.py"
    source = schemas.read_text()
    assert source.count(SET_OUT_ANCHOR) == 1
    schemas.write_text(
        source.replace(SET_OUT_ANCHOR, SET_OUT_ANCHOR + "    condition: str | None\n")
    )

    output_of(aerich_in(project, url, "migrate", "--name", "add_condition"))
    output_of(aerich_in(project, url, "upgrade"))
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(project)}
    env.pop("DATABASE_READ_URL", None)
    result = subprocess.run(  # noqa: ASYNC221 - the test waits for it, nothing else runs
        [sys.executable, "-c", SCRIPT],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert output_of(result) == ["ok"]
