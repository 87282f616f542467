"""sets-db: the async data-access layer for a LEGO-set collection."""

from sets_db.db import close_db, init_db, lifespan
from sets_db.migrator import migrate

__all__ = ["close_db", "init_db", "lifespan", "migrate"]
