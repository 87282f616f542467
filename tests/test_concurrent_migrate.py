"""Locked migrations: concurrent migrators, and the ``--check`` logic (``pending_or_drift``)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aerich.utils import compress_dict, decompress_dict

from sets_db import migrator as migrate_module
from sets_db.migrator import migrate, migration_versions, pending_or_drift
from tests.pg import REPO_ROOT, catalog, connect, copy_project, migration_files

MIGRATORS = 4
# Each migrator imports everything, says it is ready, then waits for "go" on stdin: the
# test releases all of them at the same moment, so their migrations really overlap.
MIGRATE = (
    "import asyncio, sys, sets_db; print('ready', flush=True); sys.stdin.readline();"
    " asyncio.run(sets_db.migrate({url!r}))"
)


async def test_concurrent_migrators_on_an_empty_database_all_succeed(
    empty_database: Callable[[], Awaitable[str]],
) -> None:
    url = await empty_database()
    reference = await empty_database()
    await migrate(reference)

    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE.format(url=url),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(MIGRATORS)
    ]
    async with asyncio.timeout(180):
        for process in processes:
            assert process.stdout is not None
            assert await process.stdout.readline() == b"ready\n"
        outputs = await asyncio.gather(*(p.communicate(b"go\n") for p in processes))
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, f"a migrator failed:\n{out.decode()}\n{err.decode()}"

    conn = await connect(url)
    try:
        history = [r["version"] for r in await conn.fetch("SELECT version FROM aerich ORDER BY id")]
    finally:
        await conn.close()
    assert history == migration_versions()  # each version once, in order
    assert await catalog(url) == await catalog(reference)  # the schema is complete
    assert await pending_or_drift(url) == []


async def test_check_reports_every_pending_migration(
    empty_database: Callable[[], Awaitable[str]],
) -> None:
    url = await empty_database()
    problems = await pending_or_drift(url)
    assert problems == [f"pending migration: {version}" for version in migration_versions()]
    await migrate(url)
    assert await pending_or_drift(url) == []


async def test_check_reports_a_partially_migrated_database(
    empty_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await empty_database()
    # A checkout whose history stops one migration early, migrated to its own head.
    older = copy_project(tmp_path / "older", upto=len(migration_files()) - 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(migrate_module, "MIGRATIONS_DIR", older / "migrations")
        await migrate(url)
    assert await pending_or_drift(url) == [f"pending migration: {migration_versions()[-1]}"]


async def test_check_reports_versions_the_code_does_not_know(
    empty_database: Callable[[], Awaitable[str]],
) -> None:
    url = await empty_database()
    await migrate(url)
    conn = await connect(url)
    try:
        await conn.execute(
            "INSERT INTO aerich (version, app, content) VALUES ('99_x_future.py', 'models', '{}')"
        )
    finally:
        await conn.close()
    assert await pending_or_drift(url) == ["applied but unknown to this code: 99_x_future.py"]


async def test_check_reports_drift_between_models_and_migrations(
    empty_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """The last migration's MODELS_STATE lacks a column the models have: ``aerich migrate``
    would add it, so the check must fail and name it."""
    url = await empty_database()
    await migrate(url)
    project = copy_project(tmp_path / "drifted")
    last = migration_files(project / "migrations" / "models")[-1]
    namespace: dict[str, object] = {}
    exec(compile(last.read_text(), str(last), "exec"), namespace)  # only to read MODELS_STATE
    state = decompress_dict(str(namespace["MODELS_STATE"]))
    sets = state["models.Set"]
    sets["data_fields"] = [f for f in sets["data_fields"] if f["db_column"] != "notes"]
    text = last.read_text()
    start = text.index("MODELS_STATE = (")
    last.write_text(text[:start] + f"MODELS_STATE = ({compress_dict(state)!r},)[0]\n")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(migrate_module, "MIGRATIONS_DIR", project / "migrations")
        problems = await pending_or_drift(url)
    assert len(problems) == 1, problems
    assert problems[0].startswith("models have drifted"), problems
    assert '"notes"' in problems[0]
    # ...and the repo's own migrations are clean again (no state left behind in aerich).
    assert await pending_or_drift(url) == []


async def test_migrate_targets_its_url_even_with_the_app_connected(
    db: str, empty_database: Callable[[], Awaitable[str]]
) -> None:
    """A process that already ran init_db() (the app's Tortoise is visible everywhere) must
    still migrate, and check, the database it names, not the app's."""
    url = await empty_database()
    assert await migrate(url) == migration_versions()
    assert await pending_or_drift(url) == []
    other = await empty_database()
    assert len(await pending_or_drift(other)) == len(migration_versions())
