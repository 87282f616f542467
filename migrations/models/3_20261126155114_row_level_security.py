"""Row-level security on sets and set_images (defense in depth).

Creates the application role ``sets_db_app`` (NOLOGIN, a member of nothing and granted to
nobody): a login gets it with ``GRANT sets_db_app TO <login>``, and the services assume it
per transaction when ``SETS_DB_RLS_ROLE=sets_db_app`` (see sets_db/services/_base.py). The
role owns no table, so the policies below apply to it; the table owner (the login that runs
migrations) is not affected, so migrations and maintenance work as before.

Roles are cluster-wide while this migration is per database: the role is created only if no
other database of the cluster created it already (a concurrent creator is tolerated), and the
downgrade leaves it in place, because other databases on the same server (staging and prod,
or the test suite's many throwaway databases) may still grant it privileges. Drop it by hand
with ``DROP ROLE sets_db_app`` once no database uses it.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    # ENABLE ROW LEVEL SECURITY takes a brief ACCESS EXCLUSIVE lock: give up rather than
    # queue behind a long transaction (and block every query queued behind this one).
    return """
        SET LOCAL lock_timeout = '5s';
        SET LOCAL statement_timeout = '60s';
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sets_db_app') THEN
                CREATE ROLE sets_db_app NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            -- another database's migration created it at the same moment
            NULL;
        END
        $$;
        GRANT SELECT, INSERT, UPDATE, DELETE ON "sets", "set_images" TO sets_db_app;
        ALTER TABLE "sets" ENABLE ROW LEVEL SECURITY;
        ALTER TABLE "set_images" ENABLE ROW LEVEL SECURITY;
        CREATE POLICY "sets_owner" ON "sets" FOR ALL TO sets_db_app
            USING ("user_id" = current_setting('sets_db.user_id', true))
            WITH CHECK ("user_id" = current_setting('sets_db.user_id', true));
        CREATE POLICY "set_images_owner" ON "set_images" FOR ALL TO sets_db_app
            USING (EXISTS (
                SELECT 1 FROM "sets" s
                WHERE s."id" = "set_images"."set_id"
                  AND s."user_id" = current_setting('sets_db.user_id', true)))
            WITH CHECK (EXISTS (
                SELECT 1 FROM "sets" s
                WHERE s."id" = "set_images"."set_id"
                  AND s."user_id" = current_setting('sets_db.user_id', true)));"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    # The role stays (see the module docstring); only this database's use of it goes.
    return """
        SET LOCAL lock_timeout = '5s';
        SET LOCAL statement_timeout = '60s';
        DROP POLICY IF EXISTS "set_images_owner" ON "set_images";
        DROP POLICY IF EXISTS "sets_owner" ON "sets";
        ALTER TABLE "set_images" DISABLE ROW LEVEL SECURITY;
        ALTER TABLE "sets" DISABLE ROW LEVEL SECURITY;
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sets_db_app') THEN
                REVOKE ALL ON "sets", "set_images" FROM sets_db_app;
            END IF;
        END
        $$;"""


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
