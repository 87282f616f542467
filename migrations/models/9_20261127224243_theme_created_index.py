"""A theme's page in the default order: ``(user_id, theme, created_at, id)``, in place of
migration 5's ``(user_id, theme) INCLUDE (...)``.

Justified by the heavy-collector benchmark (``python -m benchmarks.heavy``; README
"Performance"): its "largest theme, default order" and "theme filter (Star Wars)" rows. After
five calls a page's prepared statement runs on its generic plan, which estimates a theme's
share of an owner's sets from the average over all owners and themes (2 rows); it then read
every set of the heavy owner's largest theme (2,848 of 20,000) through
``sets_user_theme_totals_idx`` and sorted them for one page of 51. With this index the page
is the first 51 entries of one range, at any theme's size, and a keyset cursor continues
from its row.

``sets_user_theme_totals_idx`` goes: it was built for collection_stats and list_themes, which
read migration 8's summary instead, and this index serves its ``(user_id, theme)`` lookups.
Keeping both made a COPY of 30k sets 9% slower (2.68 against 2.45 s, median of six, in
turn); with this one alone it took 2.42 s.

A plain index, so it is also in ``Set.Meta.indexes``. Built ``CONCURRENTLY`` as migrations
2, 5 and 6 do (no transaction, an INVALID leftover of a failed build rebuilt), and the old
one dropped ``CONCURRENTLY`` after it. The downgrade runs in aerich's transaction: it builds
the old index back with a plain ``CREATE INDEX``, which holds writes to ``sets`` for the
build (seconds on a million sets).
"""

from tortoise import BaseDBAsyncClient

from sets_db.migrator import NOTHING_LEFT_TO_RUN, create_indexes_concurrently

RUN_IN_TRANSACTION = False

INDEXES = {
    "sets_user_theme_created_idx": 'ON "sets" ("user_id", "theme", "created_at", "id")',
}
REPLACED = (
    "sets_user_theme_totals_idx",
    'ON "sets" ("user_id", "theme")'
    ' INCLUDE ("quantity", "piece_count", "is_built", "purchase_price", "tax", "shipping")',
)


async def upgrade(db: BaseDBAsyncClient) -> str:
    await create_indexes_concurrently(db, INDEXES)
    await db.execute_script(f'DROP INDEX CONCURRENTLY IF EXISTS "{REPLACED[0]}"')
    return NOTHING_LEFT_TO_RUN


async def downgrade(db: BaseDBAsyncClient) -> str:
    # In aerich's transaction, where CONCURRENTLY is refused.
    name, definition = REPLACED
    return (
        "-- squawk-ignore-file require-concurrent-index-creation,"
        " require-concurrent-index-deletion, require-lock-timeout, require-statement-timeout\n"
        f'CREATE INDEX IF NOT EXISTS "{name}" {definition};\n'
        + "\n".join(f'DROP INDEX IF EXISTS "{index}";' for index in INDEXES)
    )


MODELS_STATE = (
    "eJztm/1P2zgYx/+VKL9QJA6Vjr1odzqphcJ6g3ai5W7ai4ybmNYisYPjDCqO//1sJ2kSNy"
    "lNoKhwkaatffJ8bfdjx34e27szXWojx98dIm5+NO5MAl0kPqTNO4YJPS8xSgOHY0f5+Ygr"
    "Axz7nEFLFnIJHR8Jk418i2GPY0qk50n3eGBI948GJchg9MbwEJMWAxNlCnzEtnzDoo6DLC"
    "WTpVBLlIzJRJYxEF5xOYWqXSkLCL4OEOB0gvgUMSH+/lOYMbHRLfLl1zvzEiPHVp9NWQjA"
    "til90K3HkO+LkvxYFlORzQeRr/hzq1DMPPXMVFIBQX253zEyFQglIIE7Fk1ZpY7EvVw14r"
    "eKUlapQXmWKzyGJJwshiBHNoBqeJQBFyur1lwSpFJWpgkn/mowhSOYYKIXf9zrr/zDPIws"
    "BCwakNJMU9LKXBlyEPQRsEXvlK0/ra3cAC9g1rRqCzLiyk0I355HDe/wtVptkMsSvCug2p"
    "KZfMPWKDuItefnvcMj5SknxbHobSdwSeLtzfiUkrl7EGB7V2rkswkiiMkGpWZnEjhONInH"
    "pnDOFAbOAjSfLO3EYKNLGDhyjjf/uAyImm0NVZP8a//PqGkpt+G1cxh+a2yJVgAGiU1dIN"
    "0b21vb5sIyIZulzfqRyRLcBTpMuMR/dx/WlUBSVlNWevCpfdZ4806V7lGfT5h6qBCa90oI"
    "OQTJGEjIpwZDFv9I9Fs+/vQQzvaBaG4V+rEhwZ+sqDHYGFMGNgD9wQgMuyMA1gN21P06ki"
    "W7vn/tSEP/7/aZon3a/qpwu7Poycmgfxy7UxEYhNFC/+Bk0FFdkCDnmDuoDPC5oMZdAXdq"
    "/SzBPKuqBD6aQ/633DllpYb5XFDTrkCbioAAgYA5pZBnVDX38ty1IDYLvkcKuGsqDTwOrS"
    "8LvGiu+Oe31t7++/0Pb97tfxAuqp1zy/slfdPrjzSwenieJXsorBy7KB+vrtX42pF4N/7w"
    "8mgvG+a90+5w1D79khnrh+1RVz5pZcZ5bG2EsWMy1OeFGP/0Rp8M+dX4Nuh39Qhz7jf6Jv"
    "MMEwacAkJvALTTTGJzbMrGQ3ESsnI8FAvqCatC9ClT/AXYbcbgrIB2JNBgO9h/1lkqlVj9"
    "MLfu7rd+mGvKpiTH7z81bIRylMOteJDOBfUgLT9IsQ/GAXZyltQOpWJuJwUbAymZhn0sdM"
    "+aLKU3ApRkXcl/ZzA4yXRAp6cTPj/tdM8ae6oBwglzlL/mXgeQiGRzViKSSUsqhTHrIb73"
    "KNpPHcvMN+s8hq28aAZZ2IVOQay4INbDmVC9G5XyqmaXw+5B77R90thr7rS04RtPM/vN7Y"
    "Ul7rYk40hRg10O1p9iz5MVlqObltWIlyNeOBQok/csiOvEZ5MTnxvsT2UYDcSocHM34YvP"
    "QPK0jzgReTm9/OBZR8I3e6hV5kXKKp/gLVpPlCMG1voOlV7c6xR4dsXuzirr7t7Y7pYHyJ"
    "dXqYNMaRhD6+oGMhtknqSSSRdO8nL3TqQ7+nyGHBhfv9F6P7kW1JPFPGvfP+lcmlij6V7B"
    "pC1aRHPxkdtydQskAood1S1r0nnlX7Gas1x6zwokPffwbasv2OKBGF4GvTSgvC61Y1BmI4"
    "ZsYzwzxODD6vC+0TSwb/ApMiz6C7HwZdJvXHlhWfOifjcuLuISLi7CclUh7kJ5Ve5iqZ+6"
    "ypWLCAgIBfVli5d22UJ1X9kzuoyovgFQZct7GrhjArFTFv2CsN7LrXBCGk2cJTYV05IN2l"
    "RsbtSmYp3dvPpwV7/GVG7lThRPuXpv7uz1wMK8kDtk2C6CPaIM4Qn5jMJz0Z5oBiS5G/DZ"
    "/zrwMoEupAfCzODNPHxMjSbxy8XvReFO5kF7eNA+7IbhZn4mts48o40YtqZmTpYRPVmaY8"
    "DE56H8opjnw8F+qUi8cFHMfZVzlsOo8x4XgW/8RaHiIFtkYX5uuHEwhSwfbUryKgJs8b7c"
    "AgeRCZevRuvt2yVA4whPeGmrWxz8tcJn2ehDvlQlCEfur5DuXrO5Al3hVUhXPdNiO0o4yr"
    "tR+Ndw0C8I6hKJHtFhixv/Gite2Nk02kvgShjL0xU9M9EiA1lAJy80eM7F7P4/srITJg=="
)
