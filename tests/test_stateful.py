"""Random sequences of service calls by three users, checked against an in-memory model.

Hypothesis picks who calls what on whose ids (including deleted and never-existing ones);
after every step each user's listing, stats and image order must equal the model's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from tortoise import connections

from sets_db import services
from sets_db.errors import ImageNotFoundError, SetNotFoundError

USERS = ("user-a", "user-b", "user-c")
THEMES = (None, "City", "Technic")
T = TypeVar("T")


@dataclass
class ModelSet:
    owner: str
    title: str
    theme: str | None
    quantity: int
    images: list[UUID] = field(default_factory=list)


@pytest.fixture(scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    """The loop Tortoise's pool lives on; the sync state machine drives it directly."""
    return asyncio.get_running_loop()


def test_random_call_sequences_match_the_model(
    db: str, session_loop: asyncio.AbstractEventLoop
) -> None:
    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return session_loop.run_until_complete(coroutine)

    class Collection(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            run(connections.get("default").execute_script("TRUNCATE sets CASCADE"))
            self.sets: dict[UUID, ModelSet] = {}
            # Ids that were ever handed out, plus one that never existed.
            self.known_sets: list[UUID] = [uuid4()]
            self.known_images: list[UUID] = [uuid4()]

        def _pick_set(self, data: st.DataObject) -> UUID:
            return data.draw(st.sampled_from(self.known_sets), label="set_id")

        def _owned(self, user: str, set_id: UUID) -> ModelSet | None:
            found = self.sets.get(set_id)
            return found if found is not None and found.owner == user else None

        @rule(
            user=st.sampled_from(USERS),
            title=st.text(alphabet="abcXYZ %_'", min_size=1, max_size=8).filter(str.strip),
            theme=st.sampled_from(THEMES),
            images=st.integers(0, 3),
        )
        def create(self, user: str, title: str, theme: str | None, images: int) -> None:
            data = {
                "title": title,
                "theme": theme,
                "images": [{"image_url": f"https://i/{n}.jpg"} for n in range(images)],
            }
            created = run(services.create_set(user_id=user, data=data))
            assert created.title == title.strip()
            model = ModelSet(user, title.strip(), theme, 1, [i.id for i in created.images])
            self.sets[created.id] = model
            self.known_sets.append(created.id)
            self.known_images += model.images

        def _as_owner(
            self,
            service: Callable[..., Coroutine[Any, Any, T]],
            user: str,
            set_id: UUID,
            **arguments: Any,
        ) -> tuple[ModelSet, T] | None:
            """The caller's model of ``set_id`` and what the service call returns; None,
            after checking that the call is refused as not found, when the set is not theirs."""
            mine = self._owned(user, set_id)
            call = partial(service, user_id=user, set_id=set_id, **arguments)
            if mine is None:
                with pytest.raises(SetNotFoundError):
                    run(call())
                return None
            return mine, run(call())

        @rule(user=st.sampled_from(USERS), data=st.data(), quantity=st.integers(1, 5))
        def update(self, user: str, data: st.DataObject, quantity: int) -> None:
            set_id = self._pick_set(data)
            changes = {"quantity": quantity}
            done = self._as_owner(services.update_set, user, set_id, changes=changes)
            if done is not None:
                mine, updated = done
                mine.quantity = quantity
                assert (updated.quantity, updated.title) == (quantity, mine.title)

        @rule(user=st.sampled_from(USERS), data=st.data())
        def get(self, user: str, data: st.DataObject) -> None:
            if done := self._as_owner(services.get_set, user, self._pick_set(data)):
                mine, found = done
                assert [i.id for i in found.images] == mine.images

        @rule(user=st.sampled_from(USERS), data=st.data())
        def delete(self, user: str, data: st.DataObject) -> None:
            set_id = self._pick_set(data)
            done = self._as_owner(services.delete_set, user, set_id)
            if done is not None:
                mine, deleted = done
                assert len(deleted.image_urls) == len(mine.images)
                del self.sets[set_id]

        @rule(user=st.sampled_from(USERS), data=st.data(), position=st.none() | st.integers(0, 4))
        def add_image(self, user: str, data: st.DataObject, position: int | None) -> None:
            set_id = self._pick_set(data)
            image = {"image_url": "https://i/new.jpg", "position": position}
            done = self._as_owner(services.add_image, user, set_id, **image)
            if done is not None:
                mine, added = done
                at = len(mine.images) if position is None else min(position, len(mine.images))
                mine.images.insert(at, added.id)
                self.known_images.append(added.id)
                assert added.position == at

        @rule(user=st.sampled_from(USERS), data=st.data())
        def delete_image(self, user: str, data: st.DataObject) -> None:
            image_id = data.draw(st.sampled_from(self.known_images), label="image_id")
            holder = next(
                (m for m in self.sets.values() if image_id in m.images and m.owner == user), None
            )
            if holder is None:
                with pytest.raises(ImageNotFoundError):
                    run(services.delete_image(user_id=user, image_id=image_id))
                return
            run(services.delete_image(user_id=user, image_id=image_id))
            holder.images.remove(image_id)

        @rule(user=st.sampled_from(USERS), data=st.data())
        def reorder(self, user: str, data: st.DataObject) -> None:
            set_id = self._pick_set(data)
            mine = self._owned(user, set_id)
            order = [] if mine is None else data.draw(st.permutations(mine.images), label="order")
            done = self._as_owner(services.reorder_images, user, set_id, image_ids=order)
            if done is not None:
                mine, result = done
                mine.images = list(order)
                assert [i.id for i in result] == mine.images

        @invariant()
        def every_user_sees_exactly_their_model(self) -> None:
            for user in USERS:
                expected = {k: v for k, v in self.sets.items() if v.owner == user}
                items = run(_all_items(user))
                assert {i.id: i.title for i in items} == {k: v.title for k, v in expected.items()}
                for item in items:
                    assert [i.id for i in item.images] == expected[item.id].images
                    assert [i.position for i in item.images] == list(range(len(item.images)))
                stats = run(services.collection_stats(user_id=user))
                assert stats.set_count == len(expected)
                assert stats.total_quantity == sum(m.quantity for m in expected.values())
                themes = {t.name: t.count for t in run(services.list_themes(user_id=user))}
                assert sum(themes.values()) == sum(1 for m in expected.values() if m.theme)

    run_state_machine_as_test(
        Collection,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


async def _all_items(user: str) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        page = await services.list_sets(user_id=user, limit=3, cursor=cursor)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor
