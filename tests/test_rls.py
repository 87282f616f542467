"""Row-level security (migration 3): the database itself keeps owners apart for the
application role, whatever the SQL says; and the services work in RLS mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from sets_db.config import settings
from sets_db.errors import SetNotFoundError
from sets_db.services import (
    add_image,
    collection_stats,
    create_set,
    delete_set,
    get_set,
    import_sets,
    list_sets,
    list_tags,
    reorder_images,
    update_set,
)
from sets_db.sessions import owner_read, owner_transaction
from tests.factories import ALICE, BOB
from tests.pg import APP_ROLE, act_as_app


@pytest.fixture
async def two_owners(raw: Any) -> dict[str, Any]:
    """Alice and Bob with two sets each, every set with one image (written as the owner)."""
    ids: dict[str, Any] = {}
    for user in (ALICE, BOB):
        for n in range(2):
            created = await create_set(
                user_id=user,
                data={"title": f"{user} {n}", "images": [{"image_url": f"https://x/{user}{n}"}]},
            )
            ids[f"{user}{n}"] = created.id
            ids[f"{user}{n}_image"] = created.images[0].id
    return ids


@pytest.fixture
async def as_app(db: str) -> AsyncIterator[Any]:
    """A session that acts as the application role for Alice, as RLS mode does."""
    conn = await asyncpg.connect(db.replace("postgres://", "postgresql://", 1))
    tx = conn.transaction()
    await tx.start()
    await act_as_app(conn, ALICE)
    yield conn
    await tx.rollback()
    await conn.close()


async def test_the_app_role_exists_and_owns_nothing(raw: Any) -> None:
    role = await raw.fetchrow(
        "SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", APP_ROLE
    )
    assert role is not None
    assert tuple(role) == (False, False, False)
    owners = await raw.fetch(
        "SELECT relname, pg_get_userbyid(relowner) AS owner, relrowsecurity FROM pg_class"
        " WHERE relname IN ('sets', 'set_images')"
    )
    assert all(row["owner"] != APP_ROLE and row["relrowsecurity"] for row in owners)


async def test_unfiltered_queries_see_only_the_callers_rows(
    as_app: Any, two_owners: dict[str, Any]
) -> None:
    # No WHERE user_id = ... anywhere: the policies do the filtering.
    assert {r["user_id"] for r in await as_app.fetch("SELECT user_id FROM sets")} == {ALICE}
    assert await as_app.fetchval("SELECT count(*) FROM sets") == 2
    assert await as_app.fetchval("SELECT count(*) FROM set_images") == 2
    bob_set = two_owners["bob0"]
    assert await as_app.fetchval("SELECT count(*) FROM sets WHERE id = $1", bob_set) == 0
    # Bob's rows cannot be changed or deleted either: they are simply not there.
    assert await as_app.execute("UPDATE sets SET title = 'mine' WHERE id = $1", bob_set) == (
        "UPDATE 0"
    )
    assert await as_app.execute("DELETE FROM sets") == "DELETE 2"  # Alice's two only
    assert await as_app.execute("DELETE FROM set_images") == "DELETE 0"  # cascaded already


async def test_writing_a_row_for_another_owner_is_refused(
    as_app: Any, two_owners: dict[str, Any]
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await as_app.execute("INSERT INTO sets (user_id, title) VALUES ($1, 'planted')", BOB)


async def test_giving_a_row_away_is_refused(as_app: Any, two_owners: dict[str, Any]) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await as_app.execute(
            "UPDATE sets SET user_id = $1 WHERE id = $2", BOB, two_owners["alice0"]
        )


async def test_an_image_cannot_be_added_to_another_owners_set(
    as_app: Any, two_owners: dict[str, Any]
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await as_app.execute(
            "INSERT INTO set_images (set_id, image_url) VALUES ($1, 'https://x/planted')",
            two_owners["bob0"],
        )


async def test_without_an_owner_setting_the_app_role_sees_nothing(
    db: str, two_owners: dict[str, Any]
) -> None:
    conn = await asyncpg.connect(db.replace("postgres://", "postgresql://", 1))
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {APP_ROLE}")
            assert await conn.fetchval("SELECT count(*) FROM sets") == 0
            assert await conn.fetchval("SELECT count(*) FROM set_images") == 0
    finally:
        await conn.close()


# --- The services in RLS mode ----------------------------------------------------------------


@pytest.fixture
def rls_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SETS_DB_RLS_ROLE", APP_ROLE)
    settings.cache_clear()


async def test_in_rls_mode_every_service_connection_runs_as_the_app_role(
    db: str, two_owners: dict[str, Any], rls_mode: None
) -> None:
    for context in (owner_read, owner_transaction):
        async with context(ALICE) as session:
            rows = [
                dict(row)
                for row in await session.raw.fetch(
                    "SELECT current_user AS role, current_setting('sets_db.user_id') AS owner,"
                    " (SELECT count(*) FROM sets) AS visible"
                )
            ]
        assert rows == [{"role": APP_ROLE, "owner": ALICE, "visible": 2}]


async def test_rls_mode_leaves_nothing_behind_on_pooled_connections(
    db: str, two_owners: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SETS_DB_RLS_ROLE", APP_ROLE)
    settings.cache_clear()
    for _ in range(5):
        await get_set(user_id=ALICE, set_id=two_owners["alice0"])
    monkeypatch.delenv("SETS_DB_RLS_ROLE")
    settings.cache_clear()
    settings.cache_clear()
    async with owner_read(ALICE) as session:
        rows = [
            dict(row)
            for row in await session.raw.fetch(
                "SELECT current_user AS role, current_setting('sets_db.user_id', true) AS owner"
            )
        ]
    assert rows[0]["role"] != APP_ROLE
    assert rows[0]["owner"] in (None, "")


async def test_the_services_work_in_rls_mode(
    raw: Any, two_owners: dict[str, Any], rls_mode: None
) -> None:
    created = await create_set(
        user_id=ALICE,
        data={"title": "RLS", "tags": ["a"], "images": [{"image_url": "https://x/1"}]},
    )
    second = await add_image(user_id=ALICE, set_id=created.id, image_url="https://x/2")
    reordered = await reorder_images(
        user_id=ALICE, set_id=created.id, image_ids=[second.id, created.images[0].id]
    )
    assert [image.position for image in reordered] == [0, 1]
    updated = await update_set(user_id=ALICE, set_id=created.id, changes={"title": "Renamed"})
    assert updated.title == "Renamed"
    assert len((await list_sets(user_id=ALICE)).items) == 3
    assert (await collection_stats(user_id=ALICE)).set_count == 3
    assert [tag.name for tag in await list_tags(user_id=ALICE)] == ["a"]
    assert await import_sets(user_id=ALICE, rows=[{"title": "Imported"}]) == 1
    with pytest.raises(SetNotFoundError):
        await get_set(user_id=BOB, set_id=created.id)
    with pytest.raises(SetNotFoundError):
        await delete_set(user_id=BOB, set_id=created.id)
    removed = await delete_set(user_id=ALICE, set_id=created.id)
    assert len(removed.image_urls) == 2
    assert await raw.fetchval("SELECT count(*) FROM sets WHERE user_id = $1", BOB) == 2
