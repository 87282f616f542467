from typing import Any

from sets_db.models import Set, SetImage


async def test_orm_round_trip_and_cascade(raw: Any) -> None:
    lego = await Set.create(user_id="u1", title="Millennium Falcon")
    await SetImage.create(set=lego, image_url="https://x/1.jpg")
    assert await raw.fetchval("SELECT count(*) FROM set_images") == 1
    await lego.delete()
    assert await raw.fetchval("SELECT count(*) FROM set_images") == 0
