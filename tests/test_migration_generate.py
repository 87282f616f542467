"""The path a developer follows when the schema changes, run for real in a copy of the project:
edit a model, ``aerich migrate``, ``aerich upgrade``, no drift left, ``aerich downgrade``."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from sets_db.migrator import load_migration
from tests.pg import (
    MIGRATIONS_DIR,
    aerich_in,
    copy_project,
    migration_files,
    output_of,
    schema_snapshot,
)

ANCHOR = "    notes = fields.TextField(null=True)\n"
NEW_FIELD = "    condition = fields.TextField(null=True)\n"
NEW_COLUMN = ("sets", "condition", "text", "YES", None)


async def _sql(path: Path) -> tuple[str, str]:
    module = load_migration(path)
    return await module.upgrade(None), await module.downgrade(None)


async def test_add_a_nullable_column_generate_upgrade_no_drift_downgrade(
    empty_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await empty_database()
    project = copy_project(tmp_path / "project")
    folder = project / "migrations" / "models"
    files = [path.name for path in migration_files(folder)]
    real_files = sorted(path.name for path in MIGRATIONS_DIR.iterdir())

    upgraded = output_of(aerich_in(project, url, "upgrade"))
    assert upgraded == [f"Success upgrading to {name}" for name in files]
    before = await schema_snapshot(url)

    # The developer's edit, in the copy's models.
    models = project / "sets_db" / "models.py"
    source = models.read_text()
    assert source.count(ANCHOR) == 1
    models.write_text(source.replace(ANCHOR, ANCHOR + NEW_FIELD))

    created = output_of(aerich_in(project, url, "migrate", "--name", "add_condition"))
    assert len(created) == 1
    match = re.fullmatch(r"Success creating migration file (\S+)", created[0])
    assert match is not None, created
    new = match.group(1)
    assert re.fullmatch(rf"{len(files)}_[0-9]{{14}}_add_condition\.py", new)
    assert [path.name for path in migration_files(folder)] == [*files, new]
    upgrade_sql, downgrade_sql = await _sql(folder / new)
    # The column is in the file: aerich imported the edited copy, not the installed sets_db.
    assert 'ADD "condition" TEXT' in upgrade_sql
    assert 'DROP COLUMN "condition"' in downgrade_sql

    assert output_of(aerich_in(project, url, "upgrade")) == [f"Success upgrading to {new}"]
    added = await schema_snapshot(url)
    columns = [row[:2] + row[3:] for row in added["columns"]]
    assert NEW_COLUMN in columns
    added["columns"] = [row for row in added["columns"] if row[:2] != ("sets", "condition")]
    assert added == before  # only that column changed
    assert output_of(aerich_in(project, url, "heads")) == ["No available heads."]

    # No drift once the new migration is in: nothing more to generate.
    assert output_of(aerich_in(project, url, "migrate")) == ["No changes detected"]
    assert [path.name for path in migration_files(folder)] == [*files, new]

    assert output_of(aerich_in(project, url, "downgrade", "--yes")) == [
        f"Success downgrading to {new}"
    ]
    assert await schema_snapshot(url) == before
    assert output_of(aerich_in(project, url, "heads")) == [new]
    # Nothing of this landed in the real repository.
    assert sorted(path.name for path in MIGRATIONS_DIR.iterdir()) == real_files
