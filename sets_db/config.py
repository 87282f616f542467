"""Settings, read here and nowhere else.

The database is named by ``DATABASE_URL``, or by the ``POSTGRES_*`` variables the original
story uses; one function turns that into the Tortoise config that the app, the tests and
aerich share. With nothing configured, ``resolve_database()`` (the CLI and the tests) looks
for a server on 127.0.0.1:5432 and otherwise starts the embedded one (``sets_db.embedded``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from tortoise.backends.base.config_generator import expand_db_url

MODEL_MODULES = ["sets_db.models", "aerich.models"]
APP_LABEL = "models"
# A runaway query is cancelled by the server after this long (and surfaces as
# QueryTimeoutError) instead of holding a pooled connection forever.
DEFAULT_STATEMENT_TIMEOUT_MS = 30_000

_DEFAULTS = {
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": "5432",
    "POSTGRES_USER": "postgres",
    "POSTGRES_PASSWORD": "",
    "POSTGRES_DB": "postgres",
}


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """The URL to connect to: ``DATABASE_URL`` wins, else the ``POSTGRES_*`` parts."""
    env = os.environ if environ is None else environ
    url = env.get("DATABASE_URL", "").strip()
    if url:
        return url
    part = {name: env.get(name) or default for name, default in _DEFAULTS.items()}
    credentials = quote(part["POSTGRES_USER"], safe="")
    if part["POSTGRES_PASSWORD"]:
        credentials += ":" + quote(part["POSTGRES_PASSWORD"], safe="")
    return (
        f"postgres://{credentials}@{part['POSTGRES_HOST']}:{part['POSTGRES_PORT']}"
        f"/{quote(part['POSTGRES_DB'], safe='')}"
    )


def statement_timeout_ms(environ: Mapping[str, str] | None = None) -> int:
    """``SETS_DB_STATEMENT_TIMEOUT_MS``: a server-side cap per statement; 0 turns it off."""
    env = os.environ if environ is None else environ
    raw = env.get("SETS_DB_STATEMENT_TIMEOUT_MS", "").strip() or str(DEFAULT_STATEMENT_TIMEOUT_MS)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"SETS_DB_STATEMENT_TIMEOUT_MS must be an integer, not {raw!r}") from None
    if value < 0:
        raise ValueError("SETS_DB_STATEMENT_TIMEOUT_MS must be >= 0 (0 turns the cap off)")
    return value


def rls_role(environ: Mapping[str, str] | None = None) -> str | None:
    """``SETS_DB_RLS_ROLE``: the role every service transaction assumes (``SET LOCAL ROLE``),
    so PostgreSQL row-level security applies to it; unset or empty: RLS mode off.

    The role is created by the ``row_level_security`` migration as ``sets_db_app``; the
    login the app connects with must be a member of it (``GRANT sets_db_app TO <login>``).
    """
    env = os.environ if environ is None else environ
    return env.get("SETS_DB_RLS_ROLE", "").strip() or None


def asyncpg_dsn(url: str) -> str:
    """The same URL in the form asyncpg accepts (Tortoise also knows ``asyncpg://``)."""
    scheme, rest = url.split("://", 1)
    if scheme not in {"postgres", "postgresql", "asyncpg"}:
        raise ValueError(f"not a PostgreSQL URL: {redact(url)}")
    return "postgresql://" + rest


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def tortoise_config(
    url: str | None = None, *, statement_timeout: int | None = None
) -> dict[str, Any]:
    """The one Tortoise config: models, aerich's table, and the asyncpg connection.

    ``statement_timeout`` (milliseconds, 0 = none) defaults to ``statement_timeout_ms()``;
    it is sent as a server setting when each pooled connection opens, so it costs no
    round trip per query.
    """
    connection = expand_db_url(url or database_url())
    timeout = statement_timeout_ms() if statement_timeout is None else statement_timeout
    credentials = connection["credentials"]
    credentials["server_settings"] = {
        **(credentials.get("server_settings") or {}),
        "statement_timeout": str(timeout),
    }
    return {
        "connections": {"default": connection},
        "apps": {APP_LABEL: {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


# --- Which database: configured, else a local server, else the embedded one --------------

# Where a local server is looked for when nothing is configured (the tests point the probe
# at an unused port to simulate a machine without one).
_LOCAL_DEFAULTS = {"SETS_DB_LOCAL_HOST": "127.0.0.1", "SETS_DB_LOCAL_PORT": "5432"}
LOCAL_PROBE_TIMEOUT_S = 0.3
DATA_DIR_NAME = ".sets-db"


@dataclass(frozen=True)
class ResolvedDatabase:
    url: str
    # How it was found, for the "database in use" line every command prints.
    source: str

    def describe(self) -> str:
        return f"{redact(self.url)} ({self.source})"


def embedded_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``SETS_DB_DATA_DIR``, else ``.sets-db/`` in the project around the current directory
    (the nearest one with a pyproject.toml or .git), else the user's cache directory."""
    env = os.environ if environ is None else environ
    configured = env.get("SETS_DB_DATA_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder / DATA_DIR_NAME
    cache = env.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache) / "sets-db"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=LOCAL_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def resolve_database(environ: Mapping[str, str] | None = None) -> ResolvedDatabase:
    """``DATABASE_URL``; else ``POSTGRES_*`` if any is set; else a server answering on
    ``127.0.0.1:5432`` (``SETS_DB_LOCAL_HOST/PORT``); else the embedded server, started now."""
    env = os.environ if environ is None else environ
    if env.get("DATABASE_URL", "").strip():
        return ResolvedDatabase(database_url(env), "DATABASE_URL")
    if any(env.get(name) for name in _DEFAULTS):
        return ResolvedDatabase(database_url(env), "POSTGRES_* variables")
    host = env.get("SETS_DB_LOCAL_HOST", "").strip() or _LOCAL_DEFAULTS["SETS_DB_LOCAL_HOST"]
    port = int(env.get("SETS_DB_LOCAL_PORT", "").strip() or _LOCAL_DEFAULTS["SETS_DB_LOCAL_PORT"])
    if _answers(host, port):
        local = database_url({"POSTGRES_HOST": host, "POSTGRES_PORT": str(port)})
        return ResolvedDatabase(local, "local server")
    from sets_db import embedded

    data_dir = embedded_data_dir(env)
    return ResolvedDatabase(embedded.start(data_dir), f"embedded, data in {data_dir}")


def server_url_for_tests(environ: Mapping[str, str] | None = None) -> str:
    """The server the test suite creates its throwaway databases on.

    ``SETS_DB_TEST_URL`` wins, then the same resolution as the app (``resolve_database``):
    with no server configured or reachable, that is the embedded one.
    Only the server is taken from it: every run creates and drops databases of its own.
    """
    env = os.environ if environ is None else environ
    return env.get("SETS_DB_TEST_URL", "").strip() or resolve_database(env).url


# aerich reads this by dotted path (``[tool.aerich]`` in pyproject.toml and aerich.ini).
# Migrations get no statement timeout: building an index on a big table may take a while.
TORTOISE_ORM = tortoise_config(statement_timeout=0)
