"""What ``sets-db`` says before it touches a database: help, usage errors, a bad setting or a
bad user, each as the user meets it (the console script in a subprocess, help in-process).
None of these reach a server, so the pooler leg (tests/test_pooler.py) does not repeat them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sets_db.cli import app

SETS_DB = str(Path(sys.executable).with_name("sets-db"))


def test_help_on_every_command() -> None:
    runner = CliRunner()
    for command in ([], ["demo"], ["migrate"], ["status"], ["import"], ["export"], ["stats"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output
    assert "--check" in runner.invoke(app, ["migrate", "--help"]).output
    assert "--dry-run" in runner.invoke(app, ["import", "--help"]).output


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    environ = {**os.environ, "COLUMNS": "200", **(env or {})}
    environ = {name: value for name, value in environ.items() if value is not None}
    return subprocess.run(
        [SETS_DB, *args], env=environ, capture_output=True, text=True, timeout=120, input=stdin
    )


def one_error(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The failure's single ``error:`` line (exit ``status``, no traceback)."""
    assert result.returncode == status, f"{result.args}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://x/y"),
        ("DATABASE_URL", "garbage"),
        ("DATABASE_URL", "postgres://127.0.0.1:99999/db"),
        ("SETS_DB_STATEMENT_TIMEOUT_MS", "abc"),
        ("SETS_DB_STATEMENT_TIMEOUT_MS", "-1"),
        ("SETS_DB_LOCAL_PORT", "abc"),
    ],
)
def test_a_bad_setting_is_one_error_line(variable: str, value: str) -> None:
    env = {"DATABASE_URL": "postgres://127.0.0.1:1/none", variable: value}
    if variable == "SETS_DB_LOCAL_PORT":
        env["DATABASE_URL"] = ""
    line = one_error(run("stats", "--user", "a", env=env))
    assert variable in line
    # Help never reads a setting.
    assert run("--help", env=env).returncode == 0
    assert run("export", "--help", env=env).returncode == 0


@pytest.mark.parametrize("user", ["", "   ", "x" * 600])
def test_a_bad_user_is_one_error_line(user: str) -> None:
    for command in (["stats"], ["export"], ["import", "missing.csv"]):
        line = one_error(run(*command, "--user", user, env={"DATABASE_URL": "garbage"}))
        assert "--user" in line


@pytest.mark.parametrize("target", ["/", ".", "", ".."])
def test_export_to_a_directory_is_one_error_line(target: str) -> None:
    line = one_error(run("export", "--user", "a", "-o", target))
    assert "directory" in line


def test_usage_errors_exit_2() -> None:
    assert run("export").returncode == 2
    assert run("import", "--user", "a").returncode == 2
    assert run("export", "--user", "a", "--format", "xml").returncode == 2
