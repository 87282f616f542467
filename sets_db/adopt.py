"""Take over a database that the story's Drizzle migrations made, data intact.

Such a database has the contract's tables with zoneless ``timestamp`` columns, the FK under
drizzle-kit's name and nothing of what sets-db's later migrations add. ``adopt()``:

1. takes the migration lock (the migrator's own), so no ``sets-db migrate`` runs meanwhile;
2. compares the live catalog with the Drizzle DDL (``drizzle_schema.json``), tolerating
   what sets-db itself adds, and refuses with one line per difference otherwise;
3. in ONE transaction, under a short ``lock_timeout`` so it never queues behind live
   traffic: converts the five timestamp columns to ``timestamptz`` reading the stored wall
   times in the confirmed zone (in UTC a catalog-only change: PostgreSQL skips the rewrite
   when the session zone is UTC; any other zone rewrites the table with ``AT TIME ZONE``),
   renames the FK, sets the table comments, records migrations 0 and 1 in aerich's table
   (their tables exist, so they count as applied), and checks a per-row checksum of every row
   (timestamps as instants) before and after: any difference rolls everything back;
4. applies the remaining migrations through the normal migrator (indexes ``CONCURRENTLY``,
   which cannot run in a transaction, row-level security, CHECK constraints).

Existing rows that would break a CHECK constraint are counted first: adopt refuses before
changing anything (and ``dry_run`` lists them). A database already managed by sets-db is
left alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import asyncpg
from aerich.utils import decompress_dict

from sets_db.config import APP_LABEL, settings
from sets_db.errors import SetsDbError
from sets_db.migrator import (
    MIGRATIONS_DIR,
    RecordingConnection,
    _wait_for_lock,
    applied_versions,
    connect_direct,
    load_migration,
    migrate,
    migration_versions,
)
from sets_db.schema_check import Catalog, drizzle_schema, expected_schema, read_catalog
from sets_db.translation import translate_errors

ADOPTED_TABLES = ("sets", "set_images")
TIMESTAMP_COLUMNS = {
    "sets": ("release_date", "purchase_date", "created_at", "updated_at"),
    "set_images": ("created_at",),
}
NAIVE = "timestamp without time zone"
DRIZZLE_FK = "set_images_set_id_sets_id_fk"
OUR_FK = "set_images_set_id_fkey"
# Migrations 0 and 1 create the contract's tables, which the Drizzle database already has.
ADOPTED_MIGRATIONS = 2
# Zones whose offset is zero at every instant: with one of these the conversion needs no
# rewrite (Europe/London is not one: it has summer time).
UTC_ZONES = frozenset(
    {"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu",
     "GMT", "Etc/GMT", "GMT0", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "Greenwich",
     "Etc/Greenwich"}
)  # fmt: skip
DEFAULT_LOCK_TIMEOUT_MS = 5000
AERICH_TABLE = """CREATE TABLE "aerich" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSONB NOT NULL
)"""


class AdoptionError(SetsDbError):
    """The database cannot be adopted as it is; nothing was changed."""


@dataclass(frozen=True)
class Step:
    """One statement of the plan; ``args`` are bound as $1.. (shown abbreviated)."""

    sql: str
    args: tuple[Any, ...] = ()
    shown_args: str = ""

    def text(self) -> str:
        return self.sql + ";" + (f"  -- {self.shown_args}" if self.shown_args else "")


@dataclass
class AdoptResult:
    """What adopt found, planned and did; ``lines`` is the human account of it."""

    state: str  # "managed" (nothing to do), "planned" (dry run) or "adopted"
    timezone: str = ""
    plan: list[str] = field(default_factory=list)
    migrations_after: list[str] = field(default_factory=list)
    violations: dict[str, int] = field(default_factory=dict)
    verified_rows: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


async def server_timezone(url: str | None = None) -> str:
    """The server's ``TimeZone`` as a new session sees it (the zone Drizzle's sessions had)."""
    with translate_errors():
        conn = await connect_direct(url or settings().migration_url())
        try:
            zone: str = await conn.fetchval("SELECT current_setting('TimeZone')")
            return zone
        finally:
            await conn.close()


async def adopt(
    url: str | None = None,
    *,
    timezone: str,
    dry_run: bool = False,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
) -> AdoptResult:
    """Adopt the Drizzle-made database at ``url`` (default: the migration URL).

    ``timezone`` is the zone the stored wall times were written in (confirmed by the caller).
    Raises AdoptionError, changing nothing, when the database is not what it expects.
    """
    url = url or settings().migration_url()
    with translate_errors():
        conn = await connect_direct(url)
        try:
            await _wait_for_lock(conn)
            result = await _adopt_locked(conn, url, timezone, dry_run, lock_timeout_ms)
        finally:
            # Closing the session releases the lock, which the migrator below takes again.
            await conn.close()
    if result.state == "adopted":
        applied = await migrate(url)
        result.lines += [f"applied {version}" for version in applied]
        result.lines.append("adopted: the database is at head and managed by sets-db")
    return result


async def _adopt_locked(
    conn: Any, url: str, timezone: str, dry_run: bool, lock_timeout_ms: int
) -> AdoptResult:
    live = await read_catalog(conn)
    applied = await applied_versions(url)
    if "table sets" not in live:
        raise AdoptionError("there is no sets table to adopt; `sets-db migrate` creates one")
    if applied and not _naive_columns(live):
        return _managed(applied)
    problems = drizzle_differences(live)
    if problems:
        raise AdoptionError(
            "the database is not the story's Drizzle schema; differences:\n  "
            + "\n  ".join(problems)
        )
    zone = await checked_zone(conn, timezone)
    files = migration_versions()
    steps = plan(live, applied, zone, lock_timeout_ms)
    after = [v for v in files[ADOPTED_MIGRATIONS:] if v not in applied]
    result = AdoptResult(
        "planned" if dry_run else "adopted",
        timezone=zone,
        plan=[step.text() for step in steps],
        migrations_after=after,
        violations=await constraint_violations(conn, after),
    )
    result.lines = _describe(result)
    if dry_run:
        result.lines += ["BEGIN;", *result.plan, "COMMIT;"]
        result.lines += await migration_sql(after)
        result.lines.append("dry run: nothing was changed")
        return result
    if result.violations:
        raise AdoptionError(_violation_text(result.violations))
    result.verified_rows = await _convert(conn, steps, zone)
    result.lines += [
        f"verified {count} row(s) of {table}: identical before and after (timestamps as instants)"
        for table, count in result.verified_rows.items()
    ]
    return result


def _managed(applied: list[str]) -> AdoptResult:
    pending = [v for v in migration_versions() if v not in applied]
    lines = ["this database is already managed by sets-db: nothing to adopt"]
    if pending:
        lines.append(f"{len(pending)} migration(s) pending: run `sets-db migrate`")
    return AdoptResult("managed", lines=lines)


def _describe(result: AdoptResult) -> list[str]:
    lines = [
        f"stored timestamps are read as wall times in {result.timezone}"
        + (" (no table rewrite)" if result.timezone in UTC_ZONES else " (rewrites the tables)")
    ]
    if result.violations:
        lines.append(_violation_text(result.violations))
    if result.migrations_after:
        lines.append("then the migrator applies: " + ", ".join(result.migrations_after))
    return lines


def _violation_text(violations: dict[str, int]) -> str:
    found = ", ".join(f"{name} ({count} rows)" for name, count in violations.items())
    return f"existing rows violate constraint(s) sets-db adds: {found}; fix them first"


# --- What the database must look like -------------------------------------------------------


def _adopted(key: str) -> bool:
    """Whether a catalog key is about one of the adopted tables."""
    return any(
        f" {table}." in key or key.endswith(f" {table}") or key.startswith(f"grant {table} ")
        for table in ADOPTED_TABLES
    )


def drizzle_differences(live: Catalog) -> list[str]:
    """How the live tables differ from the Drizzle DDL, where sets-db's own shape of an object
    (a converted column, a later migration's index, policy or constraint) also counts as
    expected: a database that a previous ``sets-db migrate`` half-took-over passes too."""
    theirs, ours = drizzle_schema(), expected_schema()
    lines = []
    for key in sorted(k for k in live.keys() | theirs.keys() | ours.keys() if _adopted(k)):
        allowed = {v for v in (theirs.get(key), ours.get(key)) if v is not None}
        have = live.get(key)
        if have is None:
            renamed = key.endswith(f".{DRIZZLE_FK}") and f"constraint set_images.{OUR_FK}" in live
            if key in theirs and not renamed:
                lines.append(f"missing {key}: {theirs[key]}")
        elif not allowed:
            lines.append(f"unexpected {key}: {have}")
        elif have not in allowed:
            lines.append(f"{key} is {have}; expected {' or '.join(sorted(allowed))}")
    return lines


def _naive_columns(live: Catalog) -> dict[str, list[str]]:
    return {
        table: naive
        for table, columns in TIMESTAMP_COLUMNS.items()
        if (naive := [c for c in columns if live.get(f"column {table}.{c}", "").startswith(NAIVE)])
    }


async def checked_zone(conn: Any, zone: str) -> str:
    """The zone's canonical name, or AdoptionError when PostgreSQL does not know it."""
    name = await conn.fetchval(
        "SELECT name FROM pg_timezone_names WHERE lower(name) = lower($1) ORDER BY name = $1 DESC"
        " LIMIT 1",
        zone.strip(),
    )
    if name is None:
        raise AdoptionError(f"unknown time zone {zone!r}; use an IANA name such as Europe/Berlin")
    return str(name)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- The plan ---------------------------------------------------------------------------------


def plan(live: Catalog, applied: list[str], zone: str, lock_timeout_ms: int) -> list[Step]:
    """Every statement of adopt's transaction, in order."""
    steps = [
        Step(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'"),
        Step("SET LOCAL statement_timeout = 0"),
        # SHARE: writers wait while the rows are checksummed; readers go on until the ALTER.
        Step('LOCK TABLE "sets", "set_images" IN SHARE MODE'),
    ]
    steps += _timestamp_steps(live, zone)
    if f"constraint set_images.{DRIZZLE_FK}" in live:
        rename = f'RENAME CONSTRAINT "{DRIZZLE_FK}" TO "{OUR_FK}"'
        steps.append(Step(f'ALTER TABLE "set_images" {rename}'))
    ours = expected_schema()
    for table in ADOPTED_TABLES:
        comment = ours.get(f"comment {table}")
        if comment is not None and live.get(f"comment {table}") != comment:
            steps.append(Step(f'COMMENT ON TABLE "{table}" IS {_literal(comment)}'))
    if "table aerich" not in live:
        steps.append(Step(AERICH_TABLE))
    for version in migration_versions()[:ADOPTED_MIGRATIONS]:
        if version not in applied:
            state = json.dumps(decompress_dict(_module(version).MODELS_STATE))
            steps.append(
                Step(
                    'INSERT INTO "aerich" ("version", "app", "content") VALUES ($1, $2, $3)',
                    (version, APP_LABEL, state),
                    f"$1 = {_literal(version)}, $2 = {_literal(APP_LABEL)}, $3 = the migration's "
                    "MODELS_STATE as JSON",
                )
            )
    return steps


def _timestamp_steps(live: Catalog, zone: str) -> list[Step]:
    naive = _naive_columns(live)
    if not naive:
        return []
    no_rewrite = zone in UTC_ZONES
    # In UTC the new type reads the same bytes as the same instants: a catalog-only change.
    steps = [Step("SET LOCAL TimeZone = 'UTC'")] if no_rewrite else []
    for table, columns in naive.items():
        using = "" if no_rewrite else " USING {c} AT TIME ZONE " + _literal(zone)
        alters = [
            f'ALTER COLUMN "{column}" TYPE timestamptz' + using.format(c=f'"{column}"')
            for column in columns
        ]
        # The old default carries a cast to the zoneless type; set it afresh.
        alters += [
            f'ALTER COLUMN "{column}" SET DEFAULT now()'
            for column in columns
            if live[f"column {table}.{column}"].endswith("DEFAULT now()")
        ]
        steps.append(Step(f'ALTER TABLE "{table}" ' + ", ".join(alters)))
    return steps


# --- Checking the data ------------------------------------------------------------------------


async def row_checksums(conn: Any, table: str, zone: str) -> tuple[int, str]:
    """The row count and a checksum of every row: a 128-bit hash of each row (every column as
    text, every timestamp as its instant in epoch seconds: a zoneless one read in ``zone``),
    summed. A sum needs no sort and sends nothing per row, so the check stays short while it
    holds the table lock."""
    columns = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attname",
        f'public."{table}"',
    )
    parts = []
    for name, type_ in columns:
        quoted = '"' + name.replace('"', '""') + '"'
        if type_ == NAIVE:
            parts.append(f"extract(epoch FROM {quoted} AT TIME ZONE {_literal(zone)})")
        elif type_ == "timestamp with time zone":
            parts.append(f"extract(epoch FROM {quoted})")
        else:
            parts.append(quoted)
    row_text = f"ROW({', '.join(parts)})::text"
    # Two 64-bit hashes of each row's text (different seeds), summed without overflow.
    row = await conn.fetchrow(
        "SELECT count(*), sum(hashtextextended(r, 0)::numeric)::text || '/' || "
        "sum(hashtextextended(r, 1)::numeric)::text "
        f'FROM (SELECT {row_text} AS r FROM public."{table}") AS rows'
    )
    return int(row[0]), str(row[1])


async def _convert(conn: Any, steps: list[Step], zone: str) -> dict[str, int]:
    """Run the plan in one transaction, verifying every row; any difference rolls back."""
    try:
        return await _convert_in_transaction(conn, steps, zone)
    except asyncpg.LockNotAvailableError:
        raise AdoptionError(
            "sets or set_images is busy (lock_timeout reached); nothing was changed: run adopt "
            "again when the traffic is lower"
        ) from None


async def _convert_in_transaction(conn: Any, steps: list[Step], zone: str) -> dict[str, int]:
    verified = {}
    async with conn.transaction():
        before = {}
        for step in steps:
            await conn.execute(step.sql, *step.args)
            if step.sql.startswith("LOCK TABLE"):
                before = {t: await row_checksums(conn, t, zone) for t in ADOPTED_TABLES}
        for table in ADOPTED_TABLES:
            after = await row_checksums(conn, table, zone)
            if after != before[table]:
                raise AdoptionError(
                    f"{table}: {before[table][0]} rows before, {after[0]} after, checksums "
                    f"{'differ' if after[1] != before[table][1] else 'equal'}; rolled back, "
                    "nothing changed"
                )
            verified[table] = after[0]
    return verified


async def constraint_violations(conn: Any, versions: list[str]) -> dict[str, int]:
    """How many existing rows break each CHECK constraint that ``versions`` will add."""
    found: dict[str, int] = {}
    for version in versions:
        query = getattr(_module(version), "violations_query", None)
        if query is not None:
            for name, count in await conn.fetch(query()):
                if count:
                    found[name] = count
    return found


def _module(version: str) -> ModuleType:
    return load_migration(MIGRATIONS_DIR / APP_LABEL / version)


async def migration_sql(versions: list[str]) -> list[str]:
    """The statements each of ``versions`` runs, for the dry run's plan."""
    lines = []
    for version in versions:
        recorder = RecordingConnection()
        returned = await _module(version).upgrade(recorder)
        lines.append(f"-- {version}")
        lines += [s.strip() for s in (*recorder.statements, returned) if s.strip()]
    return lines
