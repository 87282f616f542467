"""Indexes for one owner's pages, duplicate lookups and tag filters at scale.

The table may already hold millions of rows when this runs, so every index is built
``CONCURRENTLY``: writes go on while it builds. That rules out a transaction
(``RUN_IN_TRANSACTION = False``) and also a multi-statement script, because PostgreSQL
wraps the statements of one simple query in an implicit transaction. So ``upgrade()``
sends the statements one at a time itself and hands aerich a no-op to execute.

A ``CONCURRENTLY`` build that fails (cancelled, deadlock, server restart) leaves an INVALID
index behind, which ``IF NOT EXISTS`` would then keep forever; such a leftover is dropped
and built again.

aerich always runs a downgrade inside a transaction, where ``DROP INDEX CONCURRENTLY`` is
refused, so the downgrade drops them plainly: that takes a brief exclusive lock on ``sets``
(dropping an index is a catalog change, not a rebuild) and commits or rolls back as one.
"""

from tortoise import BaseDBAsyncClient

from sets_db.migrator import create_indexes_concurrently, drop_indexes

RUN_IN_TRANSACTION = False

INDEXES = {
    "sets_user_created_idx": 'ON "sets" ("user_id", "created_at", "id")',
    "sets_user_set_number_idx": 'ON "sets" ("user_id", "set_number")',
    "sets_tags_gin_idx": 'ON "sets" USING GIN ("tags")',
}

async def upgrade(db: BaseDBAsyncClient) -> str:
    return await create_indexes_concurrently(db, INDEXES)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return drop_indexes(INDEXES)


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
