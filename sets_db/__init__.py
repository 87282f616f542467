"""sets-db: the async data-access layer for a LEGO-set collection."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sets_db.db import close_db, init_db, lifespan
    from sets_db.migrator import migrate

__all__ = ["close_db", "init_db", "lifespan", "migrate"]

# Imported on first use: a process that never connects (``sets-db --help``, a bad setting)
# does not pay for Tortoise, and only a process that migrates pays for aerich.
_HOMES = {"close_db": "db", "init_db": "db", "lifespan": "db", "migrate": "migrator"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"sets_db.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
