"""The no-server path: nothing configured, nothing on the local port -> the embedded server.

"Nothing answers on 127.0.0.1:5432" is simulated by pointing the probe at a port that no
one listens on (``SETS_DB_LOCAL_PORT``), so these tests pass whether or not the machine
runs its own PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sets_db.config import load_settings, resolve_database
from tests.clusters import free_port
from tests.pg import REPO_ROOT

SETS_DB = str(Path(sys.executable).with_name("sets-db"))
CONFIG_VARIABLES = (
    "DATABASE_URL",
    "SETS_DB_TEST_URL",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
)


def no_server_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    return {
        **env,
        "SETS_DB_LOCAL_PORT": str(free_port()),
        "SETS_DB_DATA_DIR": str(data_dir),
        "COLUMNS": "200",
    }


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """A directory for the embedded server's files, outside pytest's temp root: as root the
    server runs as another OS user that must traverse its parents, and every pytest process
    that starts meanwhile (another worker, a child run) resets that root to mode 0700."""
    with tempfile.TemporaryDirectory(prefix="sets-db-embedded-") as home:
        yield Path(home)


@pytest.fixture
def listening() -> Iterator[int]:
    """A TCP port something answers on (it need not speak PostgreSQL for the probe)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_resolution_order(listening: int, tmp_path: Path) -> None:
    url = "postgres://u:pw@db.example:5433/app"
    assert resolve_database(load_settings({"DATABASE_URL": url, "POSTGRES_HOST": "x"})).url == url
    by_parts = resolve_database(
        load_settings({"POSTGRES_HOST": "db.example", "POSTGRES_DB": "app"})
    )
    assert by_parts.url == "postgres://postgres@db.example:5432/app"
    assert by_parts.source == "POSTGRES_* variables"
    local = resolve_database(load_settings({"SETS_DB_LOCAL_PORT": str(listening)}))
    assert local.url == f"postgres://postgres@127.0.0.1:{listening}/postgres"
    assert local.source == "local server"
    assert resolve_database(load_settings({"DATABASE_URL": "postgres://u:pw@h/d"})).describe() == (
        "postgres://u:***@h/d (DATABASE_URL)"
    )


def test_demo_without_any_server_uses_the_embedded_one(embedded_home: Path) -> None:
    data_dir = embedded_home / ".sets-db"
    env = no_server_env(data_dir)
    result = subprocess.run(
        [SETS_DB, "demo"], cwd=embedded_home, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith("database: postgres://postgres@/postgres?host=")
    assert f"(embedded, data in {data_dir})" in first_line
    assert "SetNotFoundError: set" in result.stdout
    assert (data_dir / "embedded_postgres" / "PG_VERSION").is_file()
    # The server stops with the process that started it.
    assert not (data_dir / "embedded_postgres" / "postmaster.pid").exists()


def test_test_suite_falls_back_to_the_embedded_server(embedded_home: Path) -> None:
    """The harness itself (tests/conftest.py) runs with no server configured or reachable."""
    env = no_server_env(embedded_home / ".sets-db")
    # -n 0: one process; workers would each start the embedded server in the same directory.
    pytest_command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*pytest_command, "tests/test_smoke.py"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert (embedded_home / ".sets-db" / "embedded_postgres" / "PG_VERSION").is_file()
