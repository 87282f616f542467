"""The table of timed operations: per operation, sets-db's call, the raw-asyncpg floor and the
peers' calls, each with how its answer is reduced to comparable data (ids, titles, image ids
and URLs; for stats every number) so the harness can check they return the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from benchmarks import baseline
from benchmarks.harness import Call, Contender, Operation
from benchmarks.peers_sqlalchemy import Peer as SqlAlchemyPeer
from benchmarks.peers_tortoise import Peer as TortoisePeer
from sets_db import services
from sets_db.schemas import CollectionStats, SetOut, SetPage

PAGE = 50
SETS_DB = "sets-db"
SQLALCHEMY = "SQLAlchemy"
TORTOISE = "Tortoise"


@dataclass
class Target:
    """One owner to query, with values that exist in their collection."""

    user_id: str
    set_id: uuid.UUID
    theme: str
    tag: str
    search: str
    set_number: str


@dataclass
class Context:
    pool: Any  # the raw floor's asyncpg pool
    targets: list[Target]
    # Deep pages: (owner, sets-db cursor, raw keyset) of a page far into a big collection.
    deep: list[tuple[str, str, tuple[datetime, uuid.UUID]]]
    sqlalchemy: SqlAlchemyPeer | None
    tortoise: TortoisePeer | None

    def pick(self, i: int) -> Target:
        return self.targets[i % len(self.targets)]


# --- Comparable shapes ------------------------------------------------------------------------

SetShape = tuple[uuid.UUID, str, tuple[tuple[uuid.UUID, str], ...]]


def _set(id_: uuid.UUID, title: str, images: Iterable[tuple[uuid.UUID, str]]) -> SetShape:
    return id_, title, tuple(images)


def dto_set(item: SetOut | None) -> SetShape | None:
    if item is None:
        return None
    return _set(item.id, item.title, ((image.id, image.image_url) for image in item.images))


def dto_page(page: SetPage) -> tuple[list[SetShape | None], bool]:
    return [dto_set(item) for item in page.items], page.next_cursor is not None


def record_set(row: Mapping[str, Any] | None) -> SetShape | None:
    if row is None:
        return None
    # The floor's image rows: (id, image_url, thumbnail_url, position, created_at).
    return _set(row["id"], row["title"], ((image[0], image[1]) for image in row["images"] or ()))


def orm_set(item: Any) -> SetShape | None:
    """A SQLAlchemy or Tortoise object with its images loaded."""
    if item is None:
        return None
    return _set(item.id, item.title, ((image.id, image.image_url) for image in item.images))


def paged(one: Callable[[Any], SetShape | None]) -> Callable[[Sequence[Any]], Any]:
    """Shape of a fetched page of ``PAGE + 1`` rows: the first ``PAGE``, and whether more."""

    def shape(rows: Sequence[Any]) -> tuple[list[SetShape | None], bool]:
        return [one(row) for row in rows[:PAGE]], len(rows) > PAGE

    return shape


StatsShape = tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]
THEME_FIELDS = ("theme", "set_count", "total_quantity", "total_pieces", "money_spent")
TOTAL_FIELDS = ("set_count", "total_quantity", "total_pieces", "built_count", "money_spent")


def dto_stats(stats: CollectionStats) -> StatsShape:
    themes = tuple(tuple(getattr(theme, name) for name in THEME_FIELDS) for theme in stats.themes)
    return tuple(getattr(stats, name) for name in TOTAL_FIELDS), themes


def rows_stats(total: Mapping[str, Any], themes: Iterable[Mapping[str, Any]]) -> StatsShape:
    return (
        tuple(total[name] for name in TOTAL_FIELDS),
        tuple(tuple(row[name] for name in THEME_FIELDS) for row in themes),
    )


def record_stats(rows: Sequence[Mapping[str, Any]]) -> StatsShape:
    return rows_stats(rows[0], rows[1:])


def peer_stats(answer: tuple[Mapping[str, Any], list[Mapping[str, Any]]]) -> StatsShape:
    return rows_stats(*answer)


# --- The table --------------------------------------------------------------------------------


def _with_peers(
    ctx: Context,
    sets_db: Contender,
    raw: Contender,
    peers: Callable[[SqlAlchemyPeer, TortoisePeer], tuple[Contender, Contender]] | None = None,
) -> dict[str, Contender]:
    contenders = {SETS_DB: sets_db, "raw": raw}
    if peers is not None and ctx.sqlalchemy is not None and ctx.tortoise is not None:
        contenders[SQLALCHEMY], contenders[TORTOISE] = peers(ctx.sqlalchemy, ctx.tortoise)
    return contenders


def _calls(ctx: Context) -> list[tuple[str, dict[str, Contender]]]:
    pick, pool = ctx.pick, ctx.pool

    def c(call: Call, shape: Callable[[Any], Any]) -> Contender:
        return Contender(call, shape)

    def filters(i: int) -> tuple[str, str, str, str]:
        return pick(i).user_id, pick(i).theme, pick(i).tag, pick(i).search

    def deep(i: int) -> tuple[str, str, tuple[datetime, uuid.UUID]]:
        return ctx.deep[i % len(ctx.deep)]

    return [
        (
            "get_set",
            _with_peers(
                ctx,
                c(
                    lambda i: services.get_set(user_id=pick(i).user_id, set_id=pick(i).set_id),
                    dto_set,
                ),
                c(lambda i: baseline.get_set(pool, pick(i).user_id, pick(i).set_id), record_set),
                lambda sa, to: (
                    c(lambda i: sa.get_set(pick(i).user_id, pick(i).set_id), orm_set),
                    c(lambda i: to.get_set(pick(i).user_id, pick(i).set_id), orm_set),
                ),
            ),
        ),
        (
            "list_sets first page (50)",
            _with_peers(
                ctx,
                c(lambda i: services.list_sets(user_id=pick(i).user_id), dto_page),
                c(lambda i: baseline.first_page(pool, pick(i).user_id), paged(record_set)),
                lambda sa, to: (
                    c(lambda i: sa.first_page(pick(i).user_id), paged(orm_set)),
                    c(lambda i: to.first_page(pick(i).user_id), paged(orm_set)),
                ),
            ),
        ),
        (
            "list_sets theme + tag + search",
            _with_peers(
                ctx,
                c(
                    lambda i: services.list_sets(
                        user_id=pick(i).user_id,
                        themes=pick(i).theme,
                        tags=[pick(i).tag],
                        search=pick(i).search,
                    ),
                    dto_page,
                ),
                c(lambda i: baseline.filtered_page(pool, *filters(i)), paged(record_set)),
                lambda sa, to: (
                    c(lambda i: sa.filtered_page(*filters(i)), paged(orm_set)),
                    c(lambda i: to.filtered_page(*filters(i)), paged(orm_set)),
                ),
            ),
        ),
        (
            "collection_stats",
            _with_peers(
                ctx,
                c(lambda i: services.collection_stats(user_id=pick(i).user_id), dto_stats),
                c(lambda i: baseline.collection_stats(pool, pick(i).user_id), record_stats),
                lambda sa, to: (
                    c(lambda i: sa.collection_stats(pick(i).user_id), peer_stats),
                    c(lambda i: to.collection_stats(pick(i).user_id), peer_stats),
                ),
            ),
        ),
        (
            "list_sets deep page (cursor)",
            _with_peers(
                ctx,
                c(lambda i: services.list_sets(user_id=deep(i)[0], cursor=deep(i)[1]), dto_page),
                c(lambda i: baseline.deep_page(pool, deep(i)[0], deep(i)[2]), paged(record_set)),
            ),
        ),
        (
            "find_duplicates",
            _with_peers(
                ctx,
                c(
                    lambda i: services.find_duplicates(
                        user_id=pick(i).user_id, set_number=pick(i).set_number
                    ),
                    lambda items: [dto_set(item) for item in items],
                ),
                c(
                    lambda i: baseline.find_duplicates(pool, pick(i).user_id, pick(i).set_number),
                    lambda rows: [record_set(row) for row in rows],
                ),
            ),
        ),
    ]


def _writes(ctx: Context) -> list[tuple[str, dict[str, Contender]]]:
    """Writes: sets-db against raw only (their answers differ by design: new ids)."""
    pick, pool = ctx.pick, ctx.pool

    def ignore(_: Any) -> None:
        return None

    return [
        (
            "add_image",
            {
                SETS_DB: Contender(
                    lambda i: services.add_image(
                        user_id=pick(i).user_id,
                        set_id=pick(i).set_id,
                        image_url=f"https://img.example.com/bench/{i}.jpg",
                    ),
                    ignore,
                ),
                "raw": Contender(
                    lambda i: baseline.add_image(
                        pool,
                        pick(i).user_id,
                        pick(i).set_id,
                        f"https://img.example.com/base/{i}.jpg",
                    ),
                    ignore,
                ),
            },
        ),
        (
            "update_set",
            {
                SETS_DB: Contender(
                    lambda i: services.update_set(
                        user_id=pick(i).user_id,
                        set_id=pick(i).set_id,
                        changes={"notes": f"service {i}", "quantity": 1 + i % 3},
                    ),
                    ignore,
                ),
                "raw": Contender(
                    lambda i: baseline.update_set(
                        pool, pick(i).user_id, pick(i).set_id, f"baseline {i}", 1 + i % 3
                    ),
                    ignore,
                ),
            },
        ),
    ]


def reads(ctx: Context) -> list[Operation]:
    return [Operation(name, contenders) for name, contenders in _calls(ctx)]


def writes(ctx: Context) -> list[Operation]:
    """Timed after every read: the images they add would change the reads' answers."""
    return [Operation(name, contenders) for name, contenders in _writes(ctx)]
