"""sets-db: the async data-access layer for a LEGO-set collection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sets_db.db import close_db, init_db, lifespan

if TYPE_CHECKING:
    from sets_db.migrator import migrate

__all__ = ["close_db", "init_db", "lifespan", "migrate"]


def __getattr__(name: str) -> Any:
    # The migrator imports aerich: only a process that migrates pays for it.
    if name == "migrate":
        from sets_db.migrator import migrate

        return migrate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
