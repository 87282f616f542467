"""The property that must never break: nobody sees or changes another user's rows.

Every public service function is discovered from ``sets_db.services.__all__``; a function
without a case below fails ``test_every_public_function_has_an_ownership_case``, so a new
function cannot be forgotten.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import pytest

from sets_db import services
from sets_db.errors import NotFoundError
from sets_db.schemas import SetOut
from tests.factories import ALICE, BOB, FULL_SET, snapshot


@dataclass
class World:
    alice_set: SetOut
    alice_twin: SetOut
    bob_set: SetOut

    @property
    def alice_ids(self) -> set[UUID]:
        return {self.alice_set.id, self.alice_twin.id}

    @property
    def alice_image(self) -> UUID:
        return self.alice_set.images[0].id


@pytest.fixture
async def world(db: str) -> World:
    images = [{"image_url": f"https://img.example/a{n}.jpg"} for n in range(3)]
    alice_set = await services.create_set(user_id=ALICE, data={**FULL_SET, "images": images})
    twin = await services.create_set(user_id=ALICE, data={**FULL_SET, "title": "Falcon twin"})
    bob_set = await services.create_set(
        user_id=BOB, data={"title": "Bob's castle", "theme": "Castle", "tags": ["bob"]}
    )
    return World(alice_set, twin, bob_set)


def _ids(items: Any) -> set[UUID]:
    return {item.id for item in items}


# name -> (call as Bob against Alice's data, check of the result when it does not raise)
Probe = Callable[[World, UUID | None], Awaitable[Any]]


def _target(world: World, missing: UUID | None) -> UUID:
    """Alice's set id, or (for the comparison run) an id that exists nowhere."""
    return missing or world.alice_set.id


def _image(world: World, missing: UUID | None) -> UUID:
    return missing or world.alice_image


async def _list_every_filter(world: World, _: UUID | None) -> set[UUID]:
    seen: set[UUID] = set()
    for query in (
        {},
        {"themes": ["Star Wars"]},
        {"tags": ["ucs"]},
        {"search": "Falcon"},
        {"set_number": "75192"},
        {"is_built": True},
        {"sort": "total_cost"},
    ):
        page = await services.list_sets(user_id=BOB, **query)
        seen |= _ids(page.items)
    return seen


async def _export(world: World, _: UUID | None) -> set[UUID]:
    return {item.id async for item in services.export_sets(user_id=BOB)}


async def _import(world: World, _: UUID | None) -> set[UUID]:
    await services.import_sets(user_id=BOB, rows=[{"title": "imported by bob"}])
    return set()


async def _stats(world: World, _: UUID | None) -> set[UUID]:
    stats = await services.collection_stats(user_id=BOB)
    assert (stats.set_count, stats.total_quantity, stats.total_pieces) == (1, 1, 0)
    assert [theme.theme for theme in stats.themes] == ["Castle"]
    return set()


async def _themes(world: World, _: UUID | None) -> set[UUID]:
    assert [t.name for t in await services.list_themes(user_id=BOB)] == ["Castle"]
    return set()


async def _tags(world: World, _: UUID | None) -> set[UUID]:
    assert [t.name for t in await services.list_tags(user_id=BOB)] == ["bob"]
    return set()


async def _duplicates(world: World, _: UUID | None) -> set[UUID]:
    return _ids(await services.find_duplicates(user_id=BOB, set_number="75192"))


async def _groups(world: World, _: UUID | None) -> set[UUID]:
    assert await services.list_duplicate_groups(user_id=BOB) == []
    return set()


async def _create(world: World, _: UUID | None) -> set[UUID]:
    # Bob's new row is his own; what matters is that Alice's rows stay as they were.
    await services.create_set(user_id=BOB, data=FULL_SET)
    return set()


async def _get_or_none(world: World, missing: UUID | None) -> None:
    assert await services.get_set_or_none(user_id=BOB, set_id=_target(world, missing)) is None


# Functions that take Alice's ids: must raise NotFoundError, identical to a missing id.
BY_ID: dict[str, Probe] = {
    "get_set": lambda w, m: services.get_set(user_id=BOB, set_id=_target(w, m)),
    "update_set": lambda w, m: services.update_set(
        user_id=BOB, set_id=_target(w, m), changes={"title": "stolen", "notes": None}
    ),
    "delete_set": lambda w, m: services.delete_set(user_id=BOB, set_id=_target(w, m)),
    "add_image": lambda w, m: services.add_image(
        user_id=BOB, set_id=_target(w, m), image_url="https://evil.example/x.jpg", position=0
    ),
    "reorder_images": lambda w, m: services.reorder_images(
        user_id=BOB,
        set_id=_target(w, m),
        image_ids=[i.id for i in reversed(w.alice_set.images)],
    ),
    "delete_image": lambda w, m: services.delete_image(user_id=BOB, image_id=_image(w, m)),
}

# Functions without ids: whatever they return must not contain any of Alice's sets.
SCOPED: dict[str, Probe] = {
    "get_set_or_none": _get_or_none,
    "list_sets": _list_every_filter,
    "collection_stats": _stats,
    "list_themes": _themes,
    "list_tags": _tags,
    "find_duplicates": _duplicates,
    "list_duplicate_groups": _groups,
    "create_set": _create,
    "import_sets": _import,
    "export_sets": _export,
}


def test_every_public_function_has_an_ownership_case() -> None:
    public = {
        name
        for name in services.__all__
        if inspect.iscoroutinefunction(getattr(services, name))
        or inspect.isasyncgenfunction(getattr(services, name))
    }
    assert public == set(services.__all__)
    missing = public - set(BY_ID) - set(SCOPED)
    assert not missing, f"no ownership test for {sorted(missing)}"


def test_every_public_function_takes_user_id_first_keyword_only() -> None:
    for name in services.__all__:
        parameters = list(inspect.signature(getattr(services, name)).parameters.values())
        assert parameters[0].name == "user_id", name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters), name


def _shape(error: BaseException, the_id: UUID) -> tuple[type, str]:
    return type(error), str(error).replace(str(the_id), "<id>")


@pytest.mark.parametrize("name", sorted(BY_ID))
async def test_foreign_ids_look_exactly_like_missing_ids(world: World, raw: Any, name: str) -> None:
    before = await snapshot(raw, ALICE)
    probe = BY_ID[name]
    with pytest.raises(NotFoundError) as foreign:
        await probe(world, None)
    assert await snapshot(raw, ALICE) == before, f"{name} touched Alice's rows"
    missing = uuid4()
    with pytest.raises(NotFoundError) as absent:
        await probe(world, missing)
    foreign_id = world.alice_image if name == "delete_image" else world.alice_set.id
    assert _shape(foreign.value, foreign_id) == _shape(absent.value, missing)


@pytest.mark.parametrize("name", sorted(SCOPED))
async def test_scoped_results_never_include_foreign_rows(world: World, raw: Any, name: str) -> None:
    if not hasattr(services, name):
        pytest.fail(f"sets_db.services.{name} is not implemented")
    before = await snapshot(raw, ALICE)
    seen = await SCOPED[name](world, None)
    assert not (seen or set()) & world.alice_ids, f"{name} showed Alice's sets to Bob"
    assert await snapshot(raw, ALICE) == before, f"{name} touched Alice's rows"


async def test_alice_still_sees_everything(world: World) -> None:
    # The probes above would pass vacuously if the data were not there: check it is.
    page = await services.list_sets(user_id=ALICE, search="Falcon")
    assert _ids(page.items) == world.alice_ids
    assert len(await services.find_duplicates(user_id=ALICE, set_number="75192")) == 2
