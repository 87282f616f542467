"""Settings, read here and nowhere else.

The database is named by ``DATABASE_URL``, or by the ``POSTGRES_*`` variables the original
story uses; one function turns that into the Tortoise config that the app, the tests and
aerich share.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

MODEL_MODULES = ["sets_db.models", "aerich.models"]
APP_LABEL = "models"

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
    return int(env.get("SETS_DB_STATEMENT_TIMEOUT_MS", "30000"))


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


def tortoise_config(url: str | None = None) -> dict[str, Any]:
    """The one Tortoise config: models, aerich's table, and the asyncpg connection."""
    return {
        "connections": {"default": url or database_url()},
        "apps": {APP_LABEL: {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


def server_url_for_tests(environ: Mapping[str, str] | None = None) -> str:
    """The server the test suite creates its throwaway databases on.

    ``SETS_DB_TEST_URL`` wins, then ``DATABASE_URL`` / ``POSTGRES_*`` as for the app.
    Only the server is taken from it: every run creates and drops databases of its own.
    """
    env = os.environ if environ is None else environ
    return env.get("SETS_DB_TEST_URL", "").strip() or database_url(env)


# aerich reads this by dotted path (``[tool.aerich]`` in pyproject.toml and aerich.ini).
TORTOISE_ORM = tortoise_config()
