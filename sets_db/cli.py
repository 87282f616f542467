"""``sets-db``: the command line (typer for commands, rich for tables and progress bars).

Every command first says which database it uses (password hidden), on stderr so that
``sets-db export`` can stream to stdout. Expected failures (a sets-db error, a bad file, an
unreachable server) print one ``error:`` line and exit 1, without a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from sets_db import services
from sets_db.adopt import adopt, server_timezone
from sets_db.config import ResolvedDatabase, resolve_database, settings
from sets_db.db import lifespan
from sets_db.embedded import EmbeddedServerError
from sets_db.errors import InvalidInputError, SetNotFoundError, SetsDbError
from sets_db.migrator import applied_versions, migrate, migration_versions, pending_or_drift
from sets_db.schemas import CollectionStats, SetCreate, SetOut
from sets_db.set_files import Format, RowError, SetFileError, Writer, detect_format, parse_all
from sets_db.set_files import read_records as read_set_records

T = TypeVar("T")

app = typer.Typer(
    help="sets-db: a LEGO-set collection in PostgreSQL (embedded by default).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# markup off: titles and tags are user data and may contain [brackets].
out = Console(markup=False, highlight=False)
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

# A file with more rows than this gets a progress bar.
PROGRESS_THRESHOLD = 500

User = Annotated[str, typer.Option("--user", "-u", help="The owner's id (Cognito sub).")]


class CliError(Exception):
    """An expected failure, already worded for the user."""


# Everything that is the user's or the environment's fault, not a bug: one line, exit 1.
_EXPECTED = (
    CliError,
    SetsDbError,
    SetFileError,
    EmbeddedServerError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


@contextmanager
def _clean_errors() -> Iterator[None]:
    try:
        yield
    except _EXPECTED as error:
        detail = error.detail if isinstance(error, SetsDbError) else str(error)
        err.print(f"error: {detail or type(error).__name__}")
        raise typer.Exit(1) from None


def _database() -> ResolvedDatabase:
    database = resolve_database()
    err.print(f"database: {database.describe()}")
    return database


def _migration_url(database: ResolvedDatabase) -> str:
    """Where migrations and their history are read: ``DATABASE_DIRECT_URL``, else the
    database in use (refused behind a transaction pooler)."""
    return settings().migration_url(database.url)


def _run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(work)


@asynccontextmanager
async def _connected(url: str) -> AsyncIterator[None]:
    """Tortoise connected to ``url``, after checking the schema is at head."""
    applied = await applied_versions(settings().direct_url or url)
    pending = [v for v in migration_versions() if v not in applied]
    if pending:
        raise CliError(
            f"the database has {len(pending)} pending migration(s); run `sets-db migrate` first"
        )
    async with lifespan(url):
        yield


# --- demo -----------------------------------------------------------------------------------


@app.command()
def demo() -> None:
    """Migrate, load a sample collection for two users, and show what the services return."""
    with _clean_errors():
        database = _database()
        _run(_demo(database.url, _migration_url(database)))


async def _demo(url: str, migration_url: str) -> None:
    from sets_db import demo_data

    applied = await migrate(migration_url)
    err.print(f"migrations applied: {len(applied)}")
    async with _connected(url):
        created = await demo_data.load_demo_collections()
        err.print("sample sets created: " + ", ".join(f"{u} {n}" for u, n in created.items()))
        user_a, user_b = demo_data.USER_A, demo_data.USER_B

        page = await services.list_sets(user_id=user_a, sort="title", limit=100)
        out.print(_sets_table(f"Collection of {user_a}", page.items))
        out.print(_stats_table(user_a, await services.collection_stats(user_id=user_a)))

        number = demo_data.DUPLICATE_SET_NUMBER
        twins = await services.find_duplicates(user_id=user_a, set_number=number)
        out.print(_sets_table(f"Duplicate lookup: {user_a}'s copies of set {number}", twins))

        target = page.items[0]
        isolation = Table(title=f"Isolation: {user_b} asks for {user_a}'s set")
        for column in ("set id", "title", f"get_set as {user_a}", f"get_set as {user_b}"):
            isolation.add_column(column)
        owner_view = await services.get_set(user_id=user_a, set_id=target.id)
        try:
            await services.get_set(user_id=user_b, set_id=target.id)
            stranger_view = "VISIBLE (ownership is broken!)"
        except SetNotFoundError as error:
            stranger_view = f"SetNotFoundError: {error.detail}"
        isolation.add_row(str(target.id), target.title, f"found: {owner_view.title}", stranger_view)
        out.print(isolation)
        if not stranger_view.startswith("SetNotFoundError"):
            raise CliError(f"{user_b} could read {user_a}'s set")


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _sets_table(title: str, items: list[SetOut]) -> Table:
    table = Table(title=title)
    for column in ("set", "title", "theme", "pieces", "built", "qty", "price", "tags", "images"):
        justify = "right" if column in {"pieces", "qty", "price", "images"} else "left"
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for item in items:
        table.add_row(
            item.set_number or "",
            item.title,
            item.theme or "",
            "" if item.piece_count is None else f"{item.piece_count:,}",
            "yes" if item.is_built else "no",
            str(item.quantity),
            _money(item.purchase_price),
            ", ".join(item.tags),
            str(len(item.images)),
        )
    return table


def _stats_table(user_id: str, stats: CollectionStats) -> Table:
    table = Table(title=f"Stats of {user_id}")
    for column in ("theme", "sets", "quantity", "pieces", "money spent"):
        table.add_column(column, justify="left" if column == "theme" else "right")
    for theme in stats.themes:
        table.add_row(
            theme.theme or "(no theme)",
            str(theme.set_count),
            str(theme.total_quantity),
            f"{theme.total_pieces:,}",
            _money(theme.money_spent),
        )
    table.add_section()
    table.add_row(
        f"total ({stats.built_count} built, {stats.not_built_count} not built)",
        str(stats.set_count),
        str(stats.total_quantity),
        f"{stats.total_pieces:,}",
        _money(stats.money_spent),
    )
    return table


# --- migrate / status -----------------------------------------------------------------------


@app.command("migrate")
def migrate_command(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Change nothing; exit 1 if migrations are pending or the models drifted.",
        ),
    ] = False,
) -> None:
    """Apply the pending migrations (or, with --check, only report them)."""
    with _clean_errors():
        database = _database()
        if check:
            problems = _run(pending_or_drift(_migration_url(database)))
            for problem in problems:
                err.print(problem)
            if problems:
                raise typer.Exit(1)
            out.print("up to date: no pending migrations, no model drift")
            return
        applied = _run(migrate(_migration_url(database)))
        for version in applied:
            out.print(f"applied {version}")
        out.print(f"{len(applied)} migration(s) applied; the database is at head")


@app.command()
def status() -> None:
    """Show the applied and the pending migrations."""
    with _clean_errors():
        database = _database()
        applied = _run(applied_versions(_migration_url(database)))
        table = Table(title="Migrations")
        table.add_column("version")
        table.add_column("state")
        for version in migration_versions():
            table.add_row(version, "applied" if version in applied else "pending")
        for version in applied:
            if version not in migration_versions():
                table.add_row(version, "applied, unknown to this code")
        out.print(table)


# --- adopt ----------------------------------------------------------------------------------


@app.command("adopt")
def adopt_command(
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            help="The zone the stored timestamps were written in (default: the server's).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print every statement; change nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm the server's zone without a prompt.")
    ] = False,
) -> None:
    """Take over a database made by the story's Drizzle migrations, data intact."""
    with _clean_errors():
        url = settings().migration_url(_database().url)
        zone = timezone or _confirmed_server_zone(url, confirmed=yes or dry_run)
        result = _run(adopt(url, timezone=zone, dry_run=dry_run))
        for line in result.lines:
            out.print(line)


def _confirmed_server_zone(url: str, *, confirmed: bool) -> str:
    # The wrong zone would shift every stored date: the default must be seen and confirmed.
    zone = _run(server_timezone(url))
    err.print(f"stored timestamps will be read as wall times in {zone} (the server's TimeZone)")
    if confirmed or (sys.stdin.isatty() and typer.confirm("Were they written in that zone?")):
        return zone
    raise CliError(f"confirm the zone {zone} with --yes, or name the right one with --timezone")


# --- stats ----------------------------------------------------------------------------------


@app.command()
def stats(user: User) -> None:
    """The collection stats of one user, in total and per theme."""
    with _clean_errors():
        database = _database()
        out.print(_stats_table(user, _run(_stats(database.url, user))))


async def _stats(url: str, user_id: str) -> CollectionStats:
    async with _connected(url):
        return await services.collection_stats(user_id=user_id)


# --- import / export ------------------------------------------------------------------------


FormatOption = Annotated[
    Format | None,
    typer.Option("--format", "-f", help="csv or json (default: from the file name)."),
]


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A .csv or .json file (see README for columns).")],
    user: User,
    file_format: FormatOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate the file only; write nothing.")
    ] = False,
) -> None:
    """Import sets for a user: all rows or, if any row is invalid, none."""
    with _clean_errors():
        records = read_set_records(file, detect_format(file, file_format))
        rows, errors = _validate(records)
        if errors:
            for error in errors:
                err.print(str(error))
            raise CliError(f"{file}: {len(errors)} problem(s) found; nothing was imported")
        if dry_run:
            err.print("database: none (a dry run only validates the file)")
            out.print(f"{file}: {len(rows)} set(s) are valid; nothing was imported (dry run)")
            return
        database = _database()
        count = _run(_import(database.url, user, rows))
        out.print(f"imported {count} set(s) for {user}")


def _validate(records: list[dict[str, Any]]) -> tuple[list[SetCreate], list[RowError]]:
    rows: list[SetCreate] = []
    errors: list[RowError] = []
    with _progress(len(records), "validating") as advance:
        for _, parsed in parse_all(records):
            if isinstance(parsed, list):
                errors += parsed
            else:
                rows.append(parsed)
            advance()
    return rows, errors


@contextmanager
def _progress(total: int, label: str) -> Iterator[Any]:
    if total < PROGRESS_THRESHOLD:
        yield lambda: None
        return
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


async def _import(url: str, user_id: str, rows: list[SetCreate]) -> int:
    async with _connected(url):
        with _progress(len(rows), "importing") as advance:

            def counted() -> Iterator[SetCreate]:
                for row in rows:
                    yield row
                    advance()

            try:
                await services.import_sets(user_id=user_id, rows=counted())
            except InvalidInputError as error:
                for field_error in error.errors:
                    err.print(f"{field_error.field}: {field_error.message}")
                raise CliError(f"{len(error.errors)} problem(s); nothing was imported") from None
    return len(rows)


@app.command("export")
def export_command(
    user: User,
    file_format: Annotated[Format, typer.Option("--format", "-f", help="csv or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Stream a user's collection as CSV or JSON (the format `import` reads)."""
    with _clean_errors():
        database = _database()
        if output is None:
            count = _run(_export(database.url, user, sys.stdout, file_format))
        else:
            # Written next to the target and renamed at the end: no half-written file.
            partial = output.with_name(output.name + ".partial")
            try:
                with partial.open("w", encoding="utf-8", newline="") as stream:
                    count = _run(_export(database.url, user, stream, file_format))
                os.replace(partial, output)
            finally:
                partial.unlink(missing_ok=True)
        err.print(f"exported {count} set(s) of {user}")


async def _export(url: str, user_id: str, stream: TextIO, file_format: Format) -> int:
    async with _connected(url):
        writer = Writer(stream, file_format)
        async for item in services.export_sets(user_id=user_id):
            writer.write(item)
        writer.close()
    return writer.count


def main() -> None:
    """The ``sets-db`` console script."""
    app()
