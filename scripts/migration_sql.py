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
import importlib.util
import sys
from pathlib import Path
from typing import Any

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "models"


class Recorder:
    """Stands in for aerich's connection: records scripts, answers queries with no rows
    (e.g. "is there an INVALID index left over?" is answered no)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    async def execute_script(self, sql: str) -> None:
        self.statements.append(sql)

    async def execute_query_dict(self, sql: str, values: Any = None) -> list[dict[str, Any]]:
        return []

    async def execute_query(self, sql: str, values: Any = None) -> tuple[int, list[Any]]:
        return 0, []


async def _sql(function: Any) -> str:
    recorder = Recorder()
    returned = await function(recorder)
    parts = [*recorder.statements, returned]
    return "\n".join(part.strip().rstrip(";") + ";" for part in parts if part.strip()) + "\n"


def main(out: Path) -> None:
    for folder in ("in_transaction", "no_transaction"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    files = sorted(
        (p for p in MIGRATIONS.glob("*.py") if p.name.split("_")[0].isdigit()),
        key=lambda p: int(p.name.split("_")[0]),
    )
    for path in files:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        upgrade_folder = (
            "in_transaction" if getattr(module, "RUN_IN_TRANSACTION", True) else "no_transaction"
        )
        upgrade = asyncio.run(_sql(module.upgrade))
        downgrade = asyncio.run(_sql(module.downgrade))
        (out / upgrade_folder / f"{path.stem}.upgrade.sql").write_text(upgrade)
        (out / "in_transaction" / f"{path.stem}.downgrade.sql").write_text(downgrade)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
