"""The Tortoise peer: the same reads through Tortoise's own query API (the models sets-db
declares), images with ``prefetch_related``. It runs on a Tortoise client of its own with
Tortoise's stock pool settings, not on sets-db's pool.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from tortoise.backends.asyncpg.client import AsyncpgDBClient
from tortoise.expressions import Q, RawSQL
from tortoise.functions import Count, Sum
from tortoise.query_utils import Prefetch

from benchmarks.baseline import totalled
from sets_db.models import Set, SetImage

COST = "COALESCE(purchase_price, 0) + COALESCE(tax, 0) + COALESCE(shipping, 0)"


def _sql(expression: str) -> Any:
    # Sum() is typed for fields and F() only, but renders any expression (RawSQL included).
    return RawSQL(expression)


def _images() -> Prefetch:
    return Prefetch("images", queryset=SetImage.all().order_by("position", "id"))


class Peer:
    def __init__(self, dsn: str, size: int) -> None:
        parts = urlsplit(dsn)
        self.client = AsyncpgDBClient(
            connection_name="peer",
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/"),
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            minsize=size,
            maxsize=size,
        )

    async def close(self) -> None:
        await self.client.close()

    async def get_set(self, user_id: str, set_id: uuid.UUID) -> Set | None:
        return (
            await Set.filter(id=set_id, user_id=user_id)
            .using_db(self.client)
            .prefetch_related(_images())
            .first()
        )

    async def first_page(self, user_id: str, limit: int = 50) -> list[Set]:
        return (
            await Set.filter(user_id=user_id)
            .using_db(self.client)
            .order_by("-created_at", "-id")
            .limit(limit + 1)
            .prefetch_related(_images())
        )

    async def filtered_page(
        self, user_id: str, theme: str, tag: str, search: str, limit: int = 50
    ) -> list[Set]:
        text = Q(title__icontains=search) | Q(set_number__icontains=search)
        return (
            await Set.filter(text, user_id=user_id, theme=theme, tags__contains=[tag])
            .using_db(self.client)
            .order_by("-created_at", "-id")
            .limit(limit + 1)
            .prefetch_related(_images())
        )

    async def collection_stats(self, user_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The total and per theme (grouped by theme; the total added up here)."""
        themes: list[dict[str, Any]] = (
            await Set.filter(user_id=user_id)
            .using_db(self.client)
            .annotate(
                set_count=Count("id"),
                total_quantity=Sum("quantity"),
                total_pieces=Sum(_sql("COALESCE(piece_count, 0) * quantity")),
                built_count=Count("id", _filter=Q(is_built=True)),
                money_spent=Sum(_sql(COST)),
            )
            .group_by("theme")
            .order_by("theme")
            .values(
                "theme",
                "set_count",
                "total_quantity",
                "total_pieces",
                "built_count",
                "money_spent",
            )
        )
        return totalled(themes), themes
