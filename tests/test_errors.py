"""The error tree (sets_db.errors): a caller catches every sets-db error with one class."""

from __future__ import annotations

import inspect

from sets_db import errors
from sets_db.errors import SetNotFoundError, SetsDbError


def test_every_error_class_in_the_errors_module_is_a_sets_db_error() -> None:
    defined = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if cls.__module__ == errors.__name__ and issubclass(cls, BaseException)
    ]
    assert SetNotFoundError in defined  # the discovery finds the module's classes
    assert [cls.__name__ for cls in defined if not issubclass(cls, SetsDbError)] == []
