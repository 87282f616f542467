"""Write the SQL of every aerich migration to .sql files, for squawk (see .ci/run).

Usage: python scripts/migration_sql.py OUT_DIR

Each migration's ``upgrade()`` and ``downgrade()`` is run against a recorder instead of a
database: everything it would execute (the returned script, and any statement it runs
itself, e.g. a ``CREATE INDEX CONCURRENTLY`` outside a transaction) is written, in order, to
``OUT_DIR/in_transaction/`` or ``OUT_DIR/no_transaction/``, by how aerich would run it
(a downgrade always runs in a transaction).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from sets_db.config import APP_LABEL
from sets_db.migrator import (
    MIGRATIONS_DIR,
    RecordingConnection,
    load_migration,
    migration_versions,
)


async def _sql(function: Callable[[RecordingConnection], Awaitable[str]]) -> str:
    recorder = RecordingConnection()
    returned = await function(recorder)
    parts = [*recorder.statements, returned]
    return "\n".join(part.strip().rstrip(";") + ";" for part in parts if part.strip()) + "\n"


def main(out: Path) -> None:
    for folder in ("in_transaction", "no_transaction"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for version in migration_versions():
        path = MIGRATIONS_DIR / APP_LABEL / version
        module = load_migration(path)
        upgrade_folder = (
            "in_transaction" if getattr(module, "RUN_IN_TRANSACTION", True) else "no_transaction"
        )
        upgrade = asyncio.run(_sql(module.upgrade))
        downgrade = asyncio.run(_sql(module.downgrade))
        (out / upgrade_folder / f"{path.stem}.upgrade.sql").write_text(upgrade)
        (out / "in_transaction" / f"{path.stem}.downgrade.sql").write_text(downgrade)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
