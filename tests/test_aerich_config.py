"""aerich reads ``[tool.aerich]`` from pyproject.toml by default and from aerich.ini with
``-c aerich.ini``: both must say the same, and both must drive the same history."""

from __future__ import annotations

import tomllib
from typing import Any

from sets_db.config import TORTOISE_ORM, tortoise_config
from tests.pg import REPO_ROOT, aerich, migration_files, output_of


def _aerich_section(name: str) -> dict[str, Any]:
    # aerich parses its -c file with tomllib, whatever the file is called.
    with (REPO_ROOT / name).open("rb") as file:
        section: dict[str, Any] = tomllib.load(file)["tool"]["aerich"]
    return section


def test_both_config_files_say_the_same() -> None:
    pyproject = _aerich_section("pyproject.toml")
    ini = _aerich_section("aerich.ini")
    assert ini == pyproject
    assert pyproject["tortoise_orm"] == "sets_db.config.TORTOISE_ORM"
    assert pyproject["location"] == "./migrations"
    # The dotted path names the project's Tortoise config: the same apps and models.
    assert TORTOISE_ORM["apps"] == tortoise_config(migrations=True)["apps"]


def test_both_configs_drive_the_same_history(database_url: str) -> None:
    files = [path.name for path in migration_files()]
    assert output_of(aerich(database_url, "history")) == files
    assert output_of(aerich(database_url, "-c", "aerich.ini", "history")) == files
    # heads reads the database through the config: both find it at head.
    assert output_of(aerich(database_url, "-c", "aerich.ini", "heads")) == ["No available heads."]
    assert output_of(aerich(database_url, "heads")) == ["No available heads."]
