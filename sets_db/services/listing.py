"""``list_sets``: filtered, sorted, keyset-paginated pages of one owner's sets.

Keyset (not OFFSET) pagination: the cursor carries the last row's sort key and id, and the
next page starts strictly after it, so a page costs the same at any depth and rows inserted
meanwhile never shift or repeat what the caller has already seen.

The title sort orders by ``left(title, 400), title, id``: identical to title order for every
title of at most 400 characters; longer titles are ordered by their first 400 characters,
then by the whole title (under a C or codepoint collation that is title order too; under a
linguistic one, a case or accent difference within the first 400 characters then outranks
a letter that differs further on). The prefix is what a btree can hold for every legal
row (migration 6's ``sets_user_title_prefix_idx``), so a page walks that index and sorts
only within equal prefixes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sets_db.errors import InvalidInputError
from sets_db.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_CURSOR,
    SetOut,
    SetPage,
    SetQuery,
    SortKey,
    checked_user_id,
    storable_text,
    validated,
)
from sets_db.services.rows import SETS, RowShape, set_columns, set_with_images, to_sets
from sets_db.sessions import owner_read


def _moment(raw: str) -> datetime:
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    value.astimezone(UTC)  # OverflowError for what PostgreSQL could not take either
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if not -(2**31) <= value < 2**31:
        raise ValueError("out of range")
    return value


def _cost(raw: str) -> Decimal:
    value = Decimal(raw)
    # Three numeric(10,2) parts add up to less than 3e8.
    if not value.is_finite() or abs(value) >= Decimal("1e9"):
        raise ValueError("out of range")
    return value


def _text(raw: str) -> str:
    if not isinstance(raw, str):
        raise TypeError("not text")
    return storable_text(raw)


# Must equal the prefix length of migration 6's index, which the title sort walks.
TITLE_PREFIX_CHARS = 400


@dataclass(frozen=True)
class _Sort:
    expression: str
    nullable: bool
    # The cursor carries the key as text (anyone can edit it): this turns it back into the
    # type asyncpg binds for the expression, and refuses what the column could not hold.
    decode: Callable[[str], Any]
    # A leading key that an index holds when the expression itself does not fit one, as a
    # template for ``{}`` = the expression or the cursor's value. It must order as the
    # expression does up to ties, which the expression then breaks.
    prefix: str | None = None

    def keys(self, operand: str) -> list[str]:
        """The sort key's parts (before the id) for ``operand``, the column or a value."""
        return [operand] if self.prefix is None else [self.prefix.format(operand), operand]


_SORTS: dict[SortKey, _Sort] = {
    "created_at": _Sort("s.created_at", nullable=False, decode=_moment),
    "title": _Sort(
        "s.title", nullable=False, decode=_text, prefix=f"left({{}}, {TITLE_PREFIX_CHARS})"
    ),
    "piece_count": _Sort("s.piece_count", nullable=True, decode=_count),
    "release_date": _Sort("s.release_date", nullable=True, decode=_moment),
    "purchase_date": _Sort("s.purchase_date", nullable=True, decode=_moment),
    "total_cost": _Sort(
        "(COALESCE(s.purchase_price, 0) + COALESCE(s.tax, 0) + COALESCE(s.shipping, 0))",
        nullable=False,
        decode=_cost,
    ),
}


def total_cost(item: SetOut) -> Decimal:
    return sum(
        (part or Decimal(0) for part in (item.purchase_price, item.tax, item.shipping)),
        Decimal(0),
    )


def _sort_value(item: SetOut, sort: SortKey) -> Any:
    return total_cost(item) if sort == "total_cost" else getattr(item, sort)


# What a cursor is tied to: every field of the query but the page (cursor, limit) and the
# direction as given (``is_descending`` stands for it: None and the default are one order).
_SHAPE_FIELDS = tuple(
    name for name in SetQuery.model_fields if name not in {"cursor", "limit", "descending"}
)


_shape_of = operator.attrgetter(*_SHAPE_FIELDS)


def _fingerprint(query: SetQuery) -> str:
    """Ties a cursor to the filters and order it was made for."""
    shape = _shape_of(query)
    if list in map(type, shape):  # the lists (themes, tags) as tuples: a cache key
        shape = tuple(tuple(value) if isinstance(value, list) else value for value in shape)
    return _shape_fingerprint(shape, query.is_descending)


FINGERPRINT_CHARS = 16
# A cursor is the base64 of the fingerprint, the last row's id and, unless its sort key is
# NULL, "~" and the key as text: the first two have fixed widths, so the key (any title)
# needs no escaping, and making one is a third of the time of the JSON list it was.
_ID_END = FINGERPRINT_CHARS + len(str(UUID(int=0)))
_KEY_MARK = "~"
# The id as str(UUID) writes it. Bound as text (asyncpg encodes it as a uuid in C): parsing
# it into a UUID was the dearest step of reading a cursor.
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@functools.lru_cache(maxsize=4096)  # a page call makes it once or twice (cursor in, out)
def _shape_fingerprint(shape: tuple[Any, ...], descending: bool) -> str:
    described = {**dict(zip(_SHAPE_FIELDS, shape, strict=True)), "descending": descending}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return digest[:FINGERPRINT_CHARS]


def _encode_cursor(query: SetQuery, last: SetOut, fingerprint: str | None = None) -> str:
    value = _sort_value(last, query.sort)
    key = (
        ""
        if value is None
        else _KEY_MARK + (value.isoformat() if isinstance(value, datetime) else str(value))
    )
    fingerprint = fingerprint or _fingerprint(query)
    return base64.urlsafe_b64encode(f"{fingerprint}{last.id}{key}".encode()).decode()


def _cursor_parts(text: str) -> tuple[Any, Any, Any]:
    """(fingerprint, sort key as text or None, id as text) of a decoded cursor."""
    if text.startswith("["):  # the JSON list earlier releases handed out
        fingerprint, raw_value, raw_id = json.loads(text)
        return fingerprint, raw_value, raw_id
    key = text[_ID_END:]
    if key and not key.startswith(_KEY_MARK):
        raise ValueError("malformed")
    return text[:FINGERPRINT_CHARS], key[1:] if key else None, text[FINGERPRINT_CHARS:_ID_END]


def _decode_cursor(cursor: str, sort: SortKey, expected: str) -> tuple[Any, str]:
    """The sort key and the id (canonical text) of the last row the cursor's page held;
    ``expected`` is the fingerprint of the query it must belong to."""
    try:
        fingerprint, raw_value, raw_id = _cursor_parts(base64.urlsafe_b64decode(cursor).decode())
        if fingerprint != expected:
            raise ValueError("cursor belongs to other filters or another order")
        value = None if raw_value is None else _SORTS[sort].decode(raw_value)
        if not isinstance(raw_id, str) or not _CANONICAL_ID.fullmatch(raw_id):
            raise ValueError("malformed id")
        return value, raw_id
    except (ValueError, TypeError, AttributeError, binascii.Error, ArithmeticError) as error:
        raise InvalidInputError.single("cursor", f"invalid cursor ({error})") from None


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# A page's conditions by name, each with ``{n}`` for its n-th parameter. A page's statement
# depends only on which conditions it has, its sort and its direction: it is built once per
# such shape, and a call only gathers the values (7-25 us less per first page, in calls
# interleaved with the floor's).
_CONDITIONS = {
    "owner": "s.user_id = {0}",
    # One theme, the common filter, as an equality: the generic plan of ``= ANY($n)`` (a
    # prepared statement's plan after five calls) guesses its selectivity blindly and
    # preferred a BitmapAnd with the tags index that read 13k rows (2.0 vs 0.3 ms).
    "theme": "s.theme = {0}",
    "themes": "s.theme = ANY({0}::text[])",
    "tags": "s.tags @> {0}::text[]",
    "is_built": "s.is_built = {0}",
    "set_number": "s.set_number = {0}",
    "search": "(s.title ILIKE {0} OR s.set_number ILIKE {0})",
}
_AFTER_NULL, _AFTER = "after a NULL key", "after a key"  # a cursor's conditions, by sort


def _conditions(
    query: SetQuery, cursor: str | None, user_id: str, fingerprint: str | None
) -> tuple[tuple[str, ...], list[Any]]:
    """The names of the page's conditions and their parameters, in order."""
    names, values = ["owner"], [user_id]

    def add(name: str, *parameters: Any) -> None:
        names.append(name)
        values.extend(parameters)

    if query.themes is not None:
        if len(query.themes) == 1:
            add("theme", query.themes[0])
        else:
            add("themes", query.themes)
    if query.tags:
        add("tags", query.tags)
    if query.is_built is not None:
        add("is_built", query.is_built)
    if query.set_number is not None:
        add("set_number", query.set_number)
    if query.search:
        add("search", _like_pattern(query.search))
    if cursor:
        key, last_id = _decode_cursor(cursor, query.sort, fingerprint or _fingerprint(query))
        if key is None:
            add(_AFTER_NULL, last_id)
        else:
            add(_AFTER, key, last_id)
    return tuple(names), values


def _after(sort: _Sort, op: str, with_key: bool) -> str:
    """Rows strictly after the cursor's row among the rows with a key (``with_key``: the
    parameters are the key and the id) or among those with a NULL one (the id)."""
    if not with_key:
        return f"s.id {op} {{0}}"
    columns = ", ".join(sort.keys(sort.expression))
    return f"({columns}, s.id) {op} ({', '.join(sort.keys('{0}'))}, {{1}})"


def _walk(conditions: list[str], order: str, limit: str) -> str:
    return f"""SELECT {set_columns("s")} FROM {SETS} s WHERE {" AND ".join(conditions)}
            ORDER BY {order} LIMIT {limit}"""


@functools.lru_cache(maxsize=1024)
def _statement(names: tuple[str, ...], sort_key: SortKey, descending: bool) -> str:
    """The page's statement for its conditions (``names``), sort and direction; its
    parameters are the conditions' in order, then the limit."""
    sort = _SORTS[sort_key]
    op = "<" if descending else ">"
    where, after, used = [], {}, 0
    for name in names:
        count = 2 if name == _AFTER else 1
        numbers = [f"${used + n}" for n in range(1, count + 1)]
        if name in (_AFTER, _AFTER_NULL):
            after[name] = _after(sort, op, with_key=name == _AFTER).format(*numbers)
        else:
            where.append(_CONDITIONS[name].format(*numbers))
        used += count
    direction = "DESC" if descending else "ASC"
    key = ", ".join(f"{part} {direction}" for part in sort.keys(sort.expression))
    # One more row than asked: its presence says whether a next page exists. The limit is a
    # parameter, not a literal: once PostgreSQL switches the prepared statement to a generic
    # plan (after five calls), a literal small limit plus the average owner's row estimate
    # made it sort a big collection instead of walking sets_user_created_idx.
    limit = f"${used + 1}"
    if not sort.nullable:
        # No NULLS LAST where no NULL can occur: ``created_at DESC, id DESC`` is then a
        # backward scan of sets_user_created_idx (user_id, created_at, id).
        order = f"{key}, s.id {direction}"
        page = _walk([*where, *after.values()], order, limit)
    else:
        order = f"{key} NULLS LAST, s.id {direction}"
        if _WALK_FILTERS.issuperset(names):
            page = _keys_then_nulls(sort, where, after, f"{key}, s.id {direction}", order, limit)
        else:
            page = _one_sort(sort, where, after, order, limit)
    return f"""
        SELECT {set_with_images("s")} FROM (
            {page}
        ) s
        ORDER BY {order}
    """


# The conditions a walk of the sort's index checks as it goes: the owner (the index's
# prefix), the dense flag and the cursor. Every other filter has its own index, through
# which the plan reads the matching rows whole and sorts them; a page in two walks would
# read them twice (0.5-1.2 ms more for a big collection's largest theme or tag).
_WALK_FILTERS = frozenset({"owner", "is_built", _AFTER, _AFTER_NULL})


def _one_sort(sort: _Sort, where: list[str], after: dict[str, str], order: str, limit: str) -> str:
    """A filtered page of a nullable key: the matching rows in one ``order`` (NULLs last),
    the cursor's condition stretched over the NULLs."""
    column = sort.expression
    stretched = [
        f"({condition} OR {column} IS NULL)"  # NULL keys come after every key
        if name == _AFTER
        else f"({column} IS NULL AND {condition})"
        for name, condition in after.items()
    ]
    return _walk([*where, *stretched], order, limit)


def _keys_then_nulls(
    sort: _Sort,
    where: list[str],
    after: dict[str, str],
    walk_order: str,
    order: str,
    limit: str,
) -> str:
    """A page of a nullable key in ``order``: NULL keys come last in both directions.

    The key's index (``key, id``, NULLS LAST) read backward gives the descending order with
    the NULLs first, so a page is the first rows of two walks of the index, both in the
    index's order (``walk_order``): the rows with a key, then those without. One walk that
    sorted them as a whole read and sorted all of a big collection's sets in the descending
    order (3.9-5.4 ms for 20,000, against ~1 ms ascending).
    """
    column = sort.expression
    # Among NULL keys the index's order is by id, but only ordering by the key too lets the
    # planner see it (IS NULL is no equality): by id alone it walked the primary key,
    # filtering by owner.
    after_null = after.get(_AFTER_NULL)
    keyed = [*where, f"{column} IS NOT NULL", *after.values()]
    walks = [] if after_null else [_walk(keyed, walk_order, limit)]
    nulls = [*where, f"{column} IS NULL", *([after_null] if after_null else [])]
    walks.append(_walk(nulls, walk_order, limit))
    union = " UNION ALL ".join(f"({walk})" for walk in walks)
    return f"SELECT * FROM ({union}) s ORDER BY {order} LIMIT {limit}"


def build_page_sql(
    query: SetQuery, user_id: str, fingerprint: str | None = None
) -> tuple[str, list[Any]]:
    """The page's statement and its parameters; ``fingerprint`` is the query's (computed
    when not given)."""
    return _page_sql(query, query.cursor, user_id, fingerprint)


def _page_sql(
    query: SetQuery, cursor: str | None, user_id: str, fingerprint: str | None
) -> tuple[str, list[Any]]:
    names, values = _conditions(query, cursor, user_id, fingerprint)
    values.append(query.limit + 1)
    return _statement(names, query.sort, query.is_descending), values


def _planned_per_call(query: SetQuery) -> bool:
    """Whether the page's plan must be made for its values, every call.

    A prepared statement switches to a generic plan after five calls, which estimates a
    theme's or tag's share of the owner's sets from the average owner, so it reads every
    set of the theme or tag and sorts them. By title or total cost that took 4.4-5.8 ms for
    a big collection's largest theme or tag (2,800 of 20,000 sets): an expression to sort
    by, per row. A plan for the values walks the sort's index until the page is full
    (1.7-2.1 ms), at the price of a round trip and the planning (~0.5 ms) on every such
    call. Not for the other keys: dates and piece counts cluster by theme (a theme's sets
    came out in a few years; gear has few pieces), and a walk of such a key's index passed
    14,000 sets of other themes for one page (11 ms, where the generic plan took 3.7).
    Behind a transaction pooler (no statement cache) every page is planned for its values.
    """
    return query.sort in _PLANNED_SORTS and bool(query.themes or query.tags)


_PLANNED_SORTS = frozenset({"title", "total_cost"})
_PAGE = RowShape(SetPage)


def _validated_query(arguments: tuple[Any, ...]) -> SetQuery:
    themes, tags, is_built, set_number, search, sort, descending, limit, cursor = arguments
    return validated(
        SetQuery,
        {
            "themes": [themes] if isinstance(themes, str) else themes,
            "tags": tags,
            "is_built": is_built,
            "set_number": set_number,
            "search": search,
            "sort": sort,
            "descending": descending,
            "limit": limit,
            "cursor": cursor,
        },
    )


# Arguments of these exact types are equal only when they mean the same query (True == 1,
# but not with its type beside it), so a page's query without its cursor is validated, and
# its fingerprint made, once per distinct argument list; the cursor is checked as its field
# would check it. Lists are not hashable: a query with one is validated each time.
_PLAIN = frozenset({type(None), str, bool, int})


@functools.lru_cache(maxsize=1024)
def _plain_query(typed: tuple[tuple[type, Any], ...]) -> tuple[SetQuery, str]:
    query = _validated_query((*(value for _, value in typed), None))
    return query, _fingerprint(query)


def _query(*arguments: Any) -> tuple[SetQuery, str | None, str]:
    """``list_sets``' arguments after the owner, the cursor last: the validated query, the
    cursor and the query's fingerprint. The query's own cursor is not to be read: a
    memoised query has none."""
    *first, cursor = arguments
    # Text the field would take (a cursor is base64: other text is left to the validation).
    if _PLAIN.issuperset(map(type, first)) and (
        cursor is None or (type(cursor) is str and len(cursor) <= MAX_CURSOR and cursor.isascii())
    ):
        query, fingerprint = _plain_query(tuple(zip(map(type, first), first, strict=True)))
        return query, cursor, fingerprint
    query = _validated_query(arguments)
    return query, query.cursor, _fingerprint(query)


async def list_sets(
    *,
    user_id: str,
    themes: Sequence[str] | str | None = None,
    tags: Sequence[str] | None = None,
    is_built: bool | None = None,
    set_number: str | None = None,
    search: str | None = None,
    sort: SortKey = "created_at",
    descending: bool | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> SetPage:
    """One page of the owner's sets (see ``SetQuery``); pass ``next_cursor`` back for more."""
    user_id = checked_user_id(user_id)
    query, cursor, fingerprint = _query(
        themes, tags, is_built, set_number, search, sort, descending, limit, cursor
    )
    sql, values = _page_sql(query, cursor, user_id, fingerprint)
    async with owner_read(user_id) as session:
        if _planned_per_call(query):
            rows = await (await session.raw.prepare(sql)).fetch(*values)
        else:
            rows = await session.raw.fetch(sql, *values)
    more = len(rows) > query.limit
    del rows[query.limit :]
    items = to_sets(rows)
    next_cursor = _encode_cursor(query, items[-1], fingerprint) if more else None
    # Built as the rows are, unchecked: both fields are ours (validating would build
    # pydantic's validators of SetPage and SetOut on the first call, and check 50 instances
    # again).
    page: SetPage = _PAGE.unchecked({"items": items, "next_cursor": next_cursor})
    return page
