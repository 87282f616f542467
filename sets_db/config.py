"""Settings, read here and nowhere else: one validated ``Settings`` object.

Nothing is read at import time: ``settings()`` reads the environment on first use and keeps
the result, so ``sets-db --help`` works whatever the environment holds, and a bad value is
one ``ConfigurationError`` sentence naming the variable.

``Settings`` is a pydantic model validated from the environment variables it names (each
field's ``validation_alias``). It was a pydantic-settings ``BaseSettings``: importing that
package (dotenv, argparse, email and ~70 modules in all) cost 30-35 ms of a ~360 ms cold
start, for what one ``model_validate`` of the environment does here (no .env file,
secrets directory, prefix or nested variables are used).

Which URL is used for what:
- ``DATABASE_URL`` (or the ``POSTGRES_*`` parts): every service call; may be a pooler;
- ``DATABASE_DIRECT_URL``: a session-capable connection for migrations, ``status`` and
  ``adopt`` (Prisma's ``directUrl``); defaults to ``DATABASE_URL``;
- ``DATABASE_READ_URL``: a reader endpoint for the read-only service calls (optional).
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import pydantic
from pydantic import AfterValidator, ConfigDict, Field

from sets_db.errors import ConfigurationError

MODEL_MODULES = ["sets_db.models"]
# aerich's own history table: a model only migrations need (importing aerich costs a
# cold start ~25 ms, so the services' Tortoise never loads it).
MIGRATION_MODEL_MODULES = [*MODEL_MODULES, "aerich.models"]
APP_LABEL = "models"
DEFAULT_CONNECTION = "default"
READ_CONNECTION = "replica"
# A runaway query is cancelled by the server after this long (and surfaces as
# QueryTimeoutError) instead of holding a pooled connection forever.
DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "asyncpg"})


def checked_url(url: str) -> str:
    """A PostgreSQL URL whose scheme, host and port make sense (ValueError otherwise)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ValueError(f"must be a postgres:// URL, not {redact(url)!r}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port range only when asked
    except ValueError as error:
        raise ValueError(f"has an invalid port ({error})") from None
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError(f"names no host: {redact(url)!r}")
    return url.strip()


PostgresUrl = Annotated[str, AfterValidator(checked_url)]


class Settings(pydantic.BaseModel):
    """Every setting sets-db reads, by environment variable name."""

    # extra="ignore": the environment holds every other variable of the process too.
    model_config = ConfigDict(frozen=True, extra="ignore")

    database_url: PostgresUrl | None = Field(None, validation_alias="DATABASE_URL")
    direct_url: PostgresUrl | None = Field(None, validation_alias="DATABASE_DIRECT_URL")
    read_url: PostgresUrl | None = Field(None, validation_alias="DATABASE_READ_URL")
    postgres_host: str | None = Field(None, validation_alias="POSTGRES_HOST")
    postgres_port: int | None = Field(None, validation_alias="POSTGRES_PORT", ge=1, le=65535)
    postgres_user: str | None = Field(None, validation_alias="POSTGRES_USER")
    postgres_password: str | None = Field(None, validation_alias="POSTGRES_PASSWORD")
    postgres_db: str | None = Field(None, validation_alias="POSTGRES_DB")
    # transaction: behind a transaction-mode pooler (PgBouncer, RDS Proxy, Supavisor).
    pooler: Literal["none", "transaction"] = Field("none", validation_alias="SETS_DB_POOLER")
    statement_timeout_ms: int = Field(
        DEFAULT_STATEMENT_TIMEOUT_MS,
        validation_alias="SETS_DB_STATEMENT_TIMEOUT_MS",
        ge=0,
        le=2**31 - 1,
    )
    rls_role: str | None = Field(None, validation_alias="SETS_DB_RLS_ROLE")
    pool_size: int = Field(10, validation_alias="SETS_DB_POOL_SIZE", ge=1, le=1000)
    # How long a call waits for a pooled connection before DatabaseUnavailableError.
    pool_timeout_s: float = Field(10.0, validation_alias="SETS_DB_POOL_TIMEOUT_S", gt=0, le=3600)
    # A replica further behind than this is skipped: its reads go to the primary.
    replica_max_lag_s: float = Field(
        5.0, validation_alias="SETS_DB_REPLICA_MAX_LAG_S", ge=0, le=86400
    )
    local_host: str = Field("127.0.0.1", validation_alias="SETS_DB_LOCAL_HOST")
    local_port: int = Field(5432, validation_alias="SETS_DB_LOCAL_PORT", ge=1, le=65535)
    data_dir: Path | None = Field(None, validation_alias="SETS_DB_DATA_DIR")
    cache_home: Path | None = Field(None, validation_alias="XDG_CACHE_HOME")
    test_url: PostgresUrl | None = Field(None, validation_alias="SETS_DB_TEST_URL")

    @property
    def behind_pooler(self) -> bool:
        return self.pooler == "transaction"

    @property
    def parts_given(self) -> bool:
        return any(
            value is not None
            for value in (
                self.postgres_host,
                self.postgres_port,
                self.postgres_user,
                self.postgres_password,
                self.postgres_db,
            )
        )

    def url(self) -> str:
        """The service URL: ``DATABASE_URL`` wins, else the ``POSTGRES_*`` parts."""
        if self.database_url:
            return self.database_url
        return postgres_url(
            host=self.postgres_host or "127.0.0.1",
            port=self.postgres_port or 5432,
            user=self.postgres_user or "postgres",
            password=self.postgres_password or "",
            database=self.postgres_db or "postgres",
        )

    def for_migrations(self) -> Settings:
        """These settings as migrations use them: a direct session (``migration_url()``, so
        asyncpg's statement cache is fine) and no statement timeout (an index build on a
        big table may rightly take long)."""
        return self.model_copy(update={"pooler": "none", "statement_timeout_ms": 0})

    def migration_url(self, service_url: str | None = None) -> str:
        """Where migrations run: the direct URL, else the service URL (refused behind a
        transaction pooler, where a session lock cannot hold)."""
        if self.direct_url:
            return self.direct_url
        if self.behind_pooler:
            raise ConfigurationError(
                "SETS_DB_POOLER=transaction needs DATABASE_DIRECT_URL for migrations: a "
                "transaction-mode pooler cannot hold the migration lock's session"
            )
        return service_url or self.url()


def postgres_url(*, host: str, port: int, user: str, password: str, database: str) -> str:
    credentials = quote(user, safe="")
    if password:
        credentials += ":" + quote(password, safe="")
    return f"postgres://{credentials}@{host}:{port}/{quote(database, safe='')}"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the process environment, or from ``environ`` alone when given; an empty
    (or blank) variable counts as not set."""
    source = os.environ if environ is None else environ
    try:
        given = {name: value for name, value in source.items() if value.strip()}
        return Settings.model_validate(given)
    except pydantic.ValidationError as error:
        raise ConfigurationError(_sentence(error)) from None


def _sentence(error: pydantic.ValidationError) -> str:
    aliases = {
        name: str(field.validation_alias or name) for name, field in Settings.model_fields.items()
    }
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "settings"
        variable = aliases.get(name, name)
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{variable} {message[:1].lower()}{message[1:]} (got {item['input']!r})")
    return "invalid setting " + "; ".join(problems)


@functools.cache
def settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return load_settings()


def asyncpg_dsn(url: str) -> str:
    """The same URL in the form asyncpg accepts (Tortoise also knows ``asyncpg://``)."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in POSTGRES_SCHEMES:
        raise ConfigurationError(f"not a PostgreSQL URL: {redact(url)}")
    return "postgresql://" + rest


def with_database(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name``."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and messages."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password is None:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def connect_options(config: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for a plain ``asyncpg.connect()`` to the service URL, which may be
    a transaction pooler: then no statement cache (its names would outlive the server
    connection). The migrator's own connections go to the direct URL and need none.
    """
    config = config or settings()
    return {"statement_cache_size": 0} if config.behind_pooler else {}


# --- Which database: configured, else a local server, else the embedded one --------------

LOCAL_PROBE_TIMEOUT_S = 0.3
DATA_DIR_NAME = ".sets-db"


@dataclass(frozen=True)
class ResolvedDatabase:
    url: str
    # How it was found, for the "database in use" line every command prints.
    source: str

    def describe(self) -> str:
        return f"{redact(self.url)} ({self.source})"


def embedded_data_dir(config: Settings | None = None) -> Path:
    """``SETS_DB_DATA_DIR``, else ``.sets-db/`` in the project around the current directory
    (the nearest one with a pyproject.toml or .git), else the user's cache directory."""
    config = config or settings()
    if config.data_dir is not None:
        return config.data_dir.expanduser()
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder / DATA_DIR_NAME
    return (config.cache_home or Path.home() / ".cache") / "sets-db"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=LOCAL_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def resolve_database(config: Settings | None = None) -> ResolvedDatabase:
    """``DATABASE_URL``; else ``POSTGRES_*`` if any is set; else a server answering on
    ``127.0.0.1:5432`` (``SETS_DB_LOCAL_HOST/PORT``); else the embedded server, started now."""
    config = config or settings()
    if config.database_url:
        return ResolvedDatabase(config.database_url, "DATABASE_URL")
    if config.parts_given:
        return ResolvedDatabase(config.url(), "POSTGRES_* variables")
    if _answers(config.local_host, config.local_port):
        local = postgres_url(
            host=config.local_host,
            port=config.local_port,
            user="postgres",
            password="",
            database="postgres",
        )
        return ResolvedDatabase(local, "local server")
    from sets_db import embedded

    data_dir = embedded_data_dir(config)
    return ResolvedDatabase(embedded.start(data_dir), f"embedded, data in {data_dir}")


def server_url_for_tests(config: Settings | None = None) -> str:
    """The server the test suite creates its throwaway databases on.

    ``SETS_DB_TEST_URL`` wins, then the same resolution as the app (``resolve_database``):
    with no server configured or reachable, that is the embedded one.
    Only the server is taken from it: every run creates and drops databases of its own.
    """
    config = config or settings()
    return config.test_url or resolve_database(config).url


def tortoise_config(
    url: str | None = None,
    *,
    read_url: str | None = None,
    config: Settings | None = None,
    migrations: bool = False,
) -> dict[str, Any]:
    """The Tortoise config of the app and aerich: the models and the asyncpg pool(s).

    ``read_url`` (default: ``DATABASE_READ_URL`` when ``url`` is not given) adds the reader
    connection that the read-only services use; ``migrations`` adds aerich's own model.
    """
    from sets_db.pool import connection_config  # the pool module needs asyncpg; load late

    config = config or settings()
    connections = {DEFAULT_CONNECTION: connection_config(url or config.url(), config)}
    read_url = read_url or (config.read_url if url is None else None)
    if read_url:
        connections[READ_CONNECTION] = connection_config(read_url, config)
    return {
        "connections": connections,
        "apps": {
            APP_LABEL: {
                "models": MIGRATION_MODEL_MODULES if migrations else MODEL_MODULES,
                "default_connection": DEFAULT_CONNECTION,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    # aerich reads ``sets_db.config.TORTOISE_ORM`` by dotted path; it is computed when asked
    # for, never at import.
    if name == "TORTOISE_ORM":
        config = settings()
        return tortoise_config(
            config.migration_url(), config=config.for_migrations(), migrations=True
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "APP_LABEL",
    "MODEL_MODULES",
    "ResolvedDatabase",
    "Settings",
    "asyncpg_dsn",
    "load_settings",
    "redact",
    "resolve_database",
    "settings",
    "tortoise_config",
]
