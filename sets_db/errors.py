"""One exception tree for everything a caller of sets-db can get.

Driver and ORM exceptions never escape a service: ``sets_db.services._base`` translates
them here, in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class SetsDbError(Exception):
    """Root of every sets-db error; ``detail`` is safe to show to the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(SetsDbError):
    """The row does not exist, or belongs to someone else (never told apart)."""


class SetNotFoundError(NotFoundError):
    def __init__(self, set_id: object) -> None:
        super().__init__(f"set {set_id} not found")


class ImageNotFoundError(NotFoundError):
    def __init__(self, image_id: object) -> None:
        super().__init__(f"image {image_id} not found")


@dataclass(frozen=True)
class FieldError:
    """One rejected input: where (``field``, dotted path) and why (``message``)."""

    field: str
    message: str


class InvalidInputError(SetsDbError):
    """The input was rejected before anything was written."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{error.field}: {error.message}" for error in self.errors))

    @classmethod
    def single(cls, field: str, message: str) -> InvalidInputError:
        return cls([FieldError(field, message)])


class ConflictError(SetsDbError):
    """The write collides with the current state (a constraint, a concurrent change)."""


class DatabaseUnavailableError(SetsDbError):
    """The server could not be reached or the connection was lost; safe to retry."""


class QueryTimeoutError(SetsDbError):
    """The statement ran past the configured statement timeout and was cancelled."""


class ReadOnlyDatabaseError(DatabaseUnavailableError):
    """A write reached a read-only server (a replica, or a primary being demoted during a
    failover); nothing was written and a retry on the new primary may succeed."""


class PoolExhaustedError(DatabaseUnavailableError):
    """No pooled connection became free within the configured wait (``SETS_DB_POOL_TIMEOUT_S``)."""


class SchemaMismatchError(SetsDbError):
    """The database's tables differ from the schema sets-db was built for (a column's type,
    say: another client changed it); ``sets-db migrate --check`` lists every difference. A
    retry fails the same way."""


class ConfigurationError(SetsDbError):
    """A setting (environment variable) is missing or invalid; the detail names it."""
