"""The SQLAlchemy 2 peer: what a team would write with its async ORM instead of sets-db.

Mapped on sets-db's own tables (the migrated schema), images loaded with ``selectinload``
(one extra ``IN`` query per call), its own asyncpg pool with SQLAlchemy's defaults. Needs the
``bench`` extra.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Numeric, Text, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from benchmarks.baseline import like, totalled


class Base(DeclarativeBase):
    pass


class SetImageRow(Base):
    __tablename__ = "set_images"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    set_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sets.id"))
    image_url: Mapped[str] = mapped_column(Text)
    thumbnail_url: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int]
    created_at: Mapped[datetime]


class SetRow(Base):
    __tablename__ = "sets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    set_number: Mapped[str | None] = mapped_column(Text)
    store: Mapped[str | None] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(Text)
    piece_count: Mapped[int | None]
    release_date: Mapped[datetime | None]
    theme: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text))
    notes: Mapped[str | None] = mapped_column(Text)
    is_built: Mapped[bool]
    quantity: Mapped[int]
    purchase_price: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    tax: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    shipping: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    purchase_date: Mapped[datetime | None]
    wishlist_item_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    images: Mapped[list[SetImageRow]] = relationship(
        order_by=(SetImageRow.position, SetImageRow.id), lazy="raise"
    )


class Peer:
    """One engine (pool of ``size``) and the four reads."""

    def __init__(self, dsn: str, size: int) -> None:
        self.engine: AsyncEngine = create_async_engine(
            dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
            pool_size=size,
            max_overflow=0,
        )
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)

    async def close(self) -> None:
        await self.engine.dispose()

    async def get_set(self, user_id: str, set_id: uuid.UUID) -> SetRow | None:
        query = (
            select(SetRow)
            .where(SetRow.id == set_id, SetRow.user_id == user_id)
            .options(selectinload(SetRow.images))
        )
        async with self.session() as session:
            return (await session.scalars(query)).one_or_none()

    async def _page(self, *where: Any, limit: int = 50) -> list[SetRow]:
        query = (
            select(SetRow)
            .where(*where)
            .order_by(SetRow.created_at.desc(), SetRow.id.desc())
            .limit(limit + 1)
            .options(selectinload(SetRow.images))
        )
        async with self.session() as session:
            return list((await session.scalars(query)).all())

    async def first_page(self, user_id: str) -> list[SetRow]:
        return await self._page(SetRow.user_id == user_id)

    async def filtered_page(self, user_id: str, theme: str, tag: str, search: str) -> list[SetRow]:
        pattern = like(search)
        return await self._page(
            SetRow.user_id == user_id,
            SetRow.theme == theme,
            SetRow.tags.contains([tag]),
            or_(SetRow.title.ilike(pattern), SetRow.set_number.ilike(pattern)),
        )

    async def collection_stats(self, user_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The total and per theme (grouped by theme; the total added up here)."""
        cost = (
            func.coalesce(SetRow.purchase_price, 0)
            + func.coalesce(SetRow.tax, 0)
            + func.coalesce(SetRow.shipping, 0)
        )
        query = (
            select(
                SetRow.theme,
                func.count().label("set_count"),
                func.sum(SetRow.quantity).label("total_quantity"),
                func.sum(func.coalesce(SetRow.piece_count, 0) * SetRow.quantity).label(
                    "total_pieces"
                ),
                func.count().filter(SetRow.is_built).label("built_count"),
                func.coalesce(func.sum(cost), 0).label("money_spent"),
            )
            .where(SetRow.user_id == user_id)
            .group_by(SetRow.theme)
            .order_by(SetRow.theme.asc().nulls_last())
        )
        async with self.session() as session:
            themes = [row._asdict() for row in await session.execute(query)]
        return totalled(themes), themes
