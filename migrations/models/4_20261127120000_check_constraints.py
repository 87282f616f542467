"""CHECK constraints for what the services rely on, so that every client keeps them.

Another client (the Drizzle app, psql) may write to the same tables; a row the services
cannot read back would break its owner's list and export. Each constraint is added
``NOT VALID`` (a brief lock, no scan) and then validated with ``VALIDATE CONSTRAINT``, which
scans under SHARE UPDATE EXCLUSIVE: reads and writes go on meanwhile. That needs two
transactions, so this migration runs outside one (``RUN_IN_TRANSACTION = False``) and sends
its statements itself, like the scale-index migration.

Existing rows that violate a constraint make the migration fail before anything is added,
with a message naming each constraint and how many rows break it. A violating row written
in the instant between that count and the ADD would make a VALIDATE fail: then every
constraint of this migration is dropped again, so nothing is left half-applied.

Empty and NULL arrays are fine: ``array_ndims('{}')`` is NULL. The NULL-element check only
looks inside a one-dimensional array (``array_position`` refuses multi-dimensional ones, and
a CASE is the one way to make PostgreSQL evaluate the dimension test first).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = False

# name -> (table, condition); the CLI's `adopt --dry-run` reads this to report violators.
CHECKS = {
    "sets_tags_one_dimensional": (
        "sets",
        'array_ndims("tags") IS NULL OR array_ndims("tags") = 1',
    ),
    "sets_tags_no_null_element": (
        "sets",
        'CASE WHEN array_ndims("tags") = 1 THEN array_position("tags", NULL) IS NULL ELSE true END',
    ),
    "sets_quantity_at_least_one": ("sets", '"quantity" >= 1'),
    "sets_piece_count_not_negative": ("sets", '"piece_count" >= 0'),
    "sets_purchase_price_not_negative": ("sets", '"purchase_price" >= 0'),
    "sets_tax_not_negative": ("sets", '"tax" >= 0'),
    "sets_shipping_not_negative": ("sets", '"shipping" >= 0'),
    "sets_title_not_blank": ("sets", "btrim(\"title\") <> ''"),
    "set_images_position_not_negative": ("set_images", '"position" >= 0'),
}

# Short waits: give up rather than queue behind a long transaction (and block every query
# queued behind this one). The scans themselves may take long on a big table.
_TIMEOUTS = (
    # A DROP CONSTRAINT here only removes this migration's own constraints: a leftover of
    # an interrupted run (upgrade) or the ones being rolled back (downgrade).
    "-- squawk-ignore-file ban-drop-constraint\n"
    "SET LOCAL lock_timeout = '5s';\nSET LOCAL statement_timeout = '0';\n"
)


def violations_query() -> str:
    """One row per constraint: its name and how many existing rows violate it (a CHECK
    passes on NULL, and so does ``WHERE NOT``)."""
    return "\nUNION ALL\n".join(
        f"SELECT '{name}' AS name, count(*) AS violations "
        f'FROM "{table}" WHERE NOT ({condition})'
        for name, (table, condition) in CHECKS.items()
    )


def _refuse_violations() -> str:
    return f"""DO $$
DECLARE
    problems text;
BEGIN
    SELECT string_agg(format('%s (%s rows)', name, violations), ', ')
      INTO problems
      FROM ({violations_query()}) AS found
     WHERE violations > 0;
    IF problems IS NOT NULL THEN
        RAISE EXCEPTION 'existing rows violate constraint(s): %', problems
            USING HINT = 'fix or delete those rows, then migrate again';
    END IF;
END
$$"""


def _add_not_valid() -> str:
    return "\n".join(
        f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{name}", '
        f'ADD CONSTRAINT "{name}" CHECK ({condition}) NOT VALID;'
        for name, (table, condition) in CHECKS.items()
    )


def _drop_all() -> str:
    return "\n".join(
        f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{name}";'
        for name, (table, _condition) in reversed(CHECKS.items())
    )


async def upgrade(db: BaseDBAsyncClient) -> str:
    # One script is one implicit transaction: the count and the ADDs commit together.
    await db.execute_script(_TIMEOUTS + _refuse_violations() + ";\n" + _add_not_valid())
    try:
        for name, (table, _condition) in CHECKS.items():
            await db.execute_script(
                f'{_TIMEOUTS}ALTER TABLE "{table}" VALIDATE CONSTRAINT "{name}"'
            )
    except Exception:
        await db.execute_script(_TIMEOUTS + _drop_all())
        raise
    # aerich executes whatever is returned; an empty string crashes asyncpg.
    return "SELECT 1"


async def downgrade(db: BaseDBAsyncClient) -> str:
    # Dropping a CHECK is a catalog change: a brief lock, no scan.
    return _TIMEOUTS + _drop_all()


MODELS_STATE = (
    "eJztmmtP4zgUhv9KlC8UiUWlw1w0u1qpLYXpDrQjKLujuci4iWktEjs4zgJi+e9rO0mTuE"
    "nbBMoWNtKIaY/Pa6ePb+fEvjddaiPH3z1D3Pxo3JsEukh8SJt3DBN6XmKUBg7HjvLzEVcG"
    "OPY5g5as5BI6PhImG/kWwx7HlEjP497R0JDuHw1KkMHojeEhJi0GJsoU+Iht+YZFHQdZSi"
    "ZroZaoGZOJrGMovOJ6ClW7UhYQfB0gwOkE8SliQvz9pzBjYqNb5Muv9+YlRo6tPpuyEoBt"
    "U/qgW48h3xc1+bEspiIfH0S+4t+tQnHnqTJTSQUE9eVhx8g0IJSABO5YPMoqbSTu5ZoRv1"
    "XUskoLyrNc5TEk4WQxBDmyAVTDowy4WFm15ZIglbIyTTjxV4MpHMEEE736o/5Aa0FKvSug"
    "GslMuPDXKTuI5efn/YND5SknwhiIMR64JPH27viUkpl7EGB7V2pk2QQRxCTp1IwkgeNEEz"
    "c2hfNEGDgL0GyC2InBRpcwcOS8Nn+7DIiaYYZqSf7Z/z16tJTb2bVzEH5rbImnAAwSm7pA"
    "uje2t7bNuaVBPpY20yOTJYALdJhwyf3+IWwrgaSspmy0+6l92njzTtXuUZ9PmCpUCM0HJY"
    "QcgqRzE/KpwZXFPxL9lo8/JdH6QDxuFfqxIcGfrKIx2BhTBjYAg+EInPVGAKwH7Kj3dSRr"
    "dn3/2pGGwZ/tU0X7pP1V4XbvopLj4eAodqdiMwh3iEH3eNhRXZAg55iLwhLAZ4IadwXcqT"
    "WzBPOsqhL4aA3533LnlJUa5jNBTbsCbRowC4GAOaWQZ1Q19/LcPYwEQIsGhM+D75MC7ppK"
    "A49D68sCLx5X/PdLa2///f6HN+/2PwgX9Zwzy/sFfdMfjDSwDDkI+giIyCVnFTkQVo5dlI"
    "9X12p87Ui8G394ebQXDfP+Se9s1D75khnrB+1RT5a0MuM8tjbC2DEZ6rNKjL/6o0+G/Gp8"
    "Gw56eoQ58xt9kwmECQNOAaE3ANppJrE5NmXjIZW2lYmHYkG9YFWIPmVaNwe7zRi8K6AdCT"
    "TYDvafdZVKJVY/zK37h60f5pqyKcnx+08NG6Ec5XArHqQzQT1Iyw9S7INxgJ2cLbVDqVjb"
    "ScGLgZRMwz4WumdNltIvApRkXcl/Zzg8znRAp68TPj/p9E4be+oBhBPmKH/PvQ4gEcnmXY"
    "lIJi2pFMash/jeo2g/dSzjiSh7KgMSj2ErL5pBFnahUxArzon1cCZU70a1vKrV5aDX7Z+0"
    "jxt7zZ2WNnzjZWa/uT23xd2WZBwparCLwfpT7HmywXJ007Ia8WLEs9leJe+ZE9eJzyYnPj"
    "fYn8owGohR4ea+hC8+A8nTPuJE5OX08tKzjoRv9pyuzETKKp9gFq0nyhEDa32HSi9uOgWe"
    "XbG7s8q6uze2u+UB8uVV6iBTGsbQurqBzAaZklQy6cJJXu7eiXSHn0+RA+MrF1rvJ1dB+r"
    "KaZ+37J11LE2u03CuYtEWLaM4XuS1Xt0AioNhR27IlnVf+tZoZy4V3a0DSc8tv2HzBFg/E"
    "8DLopQHlFZkdgzIbMWQb4ztDDD6sDu8bTQP7Bp8iw6J/IxZOJv2WjRfWNavqV+PiIq7h4i"
    "KsV1XiztVX5f6N+qmr3CKJgIBQsOQ6R33Z4j8KQIovW6juK3tGlxHVNwCqvPKeBu6YQOyU"
    "RT8nrN/lVjghjRbOEi8V05INeqnY3KiXinV28+rDXf0aU7mdO1E85e69uavXko15LnfIsJ"
    "0He0gZwhPyGYXnon3xGJDkvoDPXhd/mUDn0gNhZvBmFj6mRpP45eL3ovBNZrd91m0f9MJw"
    "Mz8TW2ee0UYMW1MzJ8uIShbmGDDxWZZfFPNcHuyXisQLN8XcqZyzHUad97gIfOMvChUH2S"
    "IL83PDje4Usny0KcmrCLDFfLkFDiITLqdG6+3bBUDjCE94abtbHPy1wrJs9CEnVQnCkfsr"
    "pLvXbK5AV3gV0lVlWmxHCUd5Nwr/OBsOCoK6RKJHdNjixj/Gihd2No32ArgSxuJ0Rc9MtM"
    "hAVtDJCw2eczN7+Bfv62uK"
)
