"""Indexes for one owner with a whole catalogue (20k sets): search, every sort, the summaries.

Each index is justified by a row of the heavy-collector benchmark (``python -m benchmarks
--heavy``; README "Performance"), measured before and after:

- ``sets_search_trgm_idx``: ``search`` is ``title ILIKE '%x%' OR set_number ILIKE '%x%'``,
  which a btree cannot serve; pg_trgm's GIN operator class can (both columns, one index,
  a BitmapOr of its two halves). Needs the ``pg_trgm`` extension.
- ``sets_user_total_cost_idx``: the total_cost sort, on exactly list_sets' expression.
- ``sets_user_piece_count_idx``, ``sets_user_release_date_idx``,
  ``sets_user_purchase_date_idx``: those sorts (ascending, NULLS LAST, the default order).
- ``sets_user_theme_totals_idx``: collection_stats and list_themes read only this index
  (an index-only scan) instead of every row of the owner.

The three plain ones are also in ``Set.Meta.indexes``; the trigram, expression and covering
indexes are not expressible there and live only here.

No index for the title sort: ``(user_id, title, id)`` does not fit a btree entry (2704 bytes)
for a legal row (255-character user id and 500-character title, four UTF-8 bytes each),
which would then be refused; migration 6 indexes a title prefix instead.

Built ``CONCURRENTLY`` as migration 2 does (see its docstring): no transaction, one
statement at a time, an INVALID leftover of a failed build dropped and built again.

``CREATE EXTENSION IF NOT EXISTS pg_trgm``: pg_trgm is a trusted extension (PostgreSQL 13+),
so the migrating login needs only CREATE on the database (Aurora/RDS: ``rds_superuser``
not required); where even that is refused, a DBA runs that one statement once and the
migration finds it there. The downgrade drops the extension only when nothing else uses it
and this login may drop it; otherwise it stays, as migration 3 keeps its role.
"""

from tortoise import BaseDBAsyncClient

from sets_db.migrator import create_indexes_concurrently, drop_indexes

RUN_IN_TRANSACTION = False

TOTAL_COST = 'COALESCE("purchase_price", 0) + COALESCE("tax", 0) + COALESCE("shipping", 0)'

INDEXES = {
    "sets_search_trgm_idx": 'ON "sets" USING GIN ("title" gin_trgm_ops, "set_number" gin_trgm_ops)',
    "sets_user_total_cost_idx": f'ON "sets" ("user_id", ({TOTAL_COST}), "id")',
    "sets_user_piece_count_idx": 'ON "sets" ("user_id", "piece_count", "id")',
    "sets_user_release_date_idx": 'ON "sets" ("user_id", "release_date", "id")',
    "sets_user_purchase_date_idx": 'ON "sets" ("user_id", "purchase_date", "id")',
    "sets_user_theme_totals_idx": (
        'ON "sets" ("user_id", "theme")'
        ' INCLUDE ("quantity", "piece_count", "is_built", "purchase_price", "tax", "shipping")'
    ),
}

# In a subtransaction: "still used by another object" or "not the owner" keeps it.
_DROP_EXTENSION = """
DO $$
BEGIN
    DROP EXTENSION IF EXISTS pg_trgm;
EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege THEN
    RAISE NOTICE 'pg_trgm kept: other objects use it or it belongs to another role';
END
$$;"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    await db.execute_script("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    return await create_indexes_concurrently(db, INDEXES)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return drop_indexes(INDEXES) + _DROP_EXTENSION


MODELS_STATE = (
    "eJztmmtP4zgUhv9KlC8UiUXQYS6aXa3UlsJ0B9oRlN3RXGTcxLQWiR0cZ6Bi+e9rO0mTuE"
    "nbBIoKG2nEtCfntd3Hjn2O7XvTpTZy/N1zxM2Pxr1JoIvEh7R5xzCh5yVGaeBw5Cg/H3Fl"
    "gCOfM2jJQq6g4yNhspFvMexxTIn0POkeDwzp/tGgBBmM3hoeYtJiYKJMgY/Ylm9Y1HGQpW"
    "SyFGqJkjEZyzIGwisup1C1K2UBwTcBApyOEZ8gJsTffwozJja6Q778em9eYeTY6rMpCwHY"
    "NqUPuvMY8n1Rkh/LYiqy+SDyFf/uFIqpp56ZSiogqC8PO0amAqEEJHBHoimr1JG4l6tG/F"
    "ZRyio1KM9yhceQhJPFEOTIBlANjzLgYmXVmkuCVMrKNOHYXw2mcARjTPTij3v9lX+Yh5GF"
    "gEUDUpppSlqZK0MOgj4CtuidsvWntZUb4AXMmlRtQUa8pAmyBO8aqFZk5rywHcoOYu3FRe"
    "/wSHnKuWgkIDuBSxJvb8onlMzcgwDbu1Ijn40RQUwO9tSkSALHiebO2BROVcLAWYBmc5Sd"
    "GGx0BQNHTq3mH1cBUZOcoWqSfw7+jJqWcju/cQ7Db40t0QrAILGpC6R7Y3tr25ybnWWztM"
    "k2MlmCu0CHCZf47x/CuhJIymrKSjufWmeNN+9U6R71+Ziphwqh+aCEkEOQ9H5CPjUMsviH"
    "ot/y8adHTrYPRHOr0I8NCf5kIYvBxpgysAHoD4bgvDsEYD1gh92vQ1my6/s3jjT0/26dKd"
    "qnra8KtzuNnpwM+sexOxXrcbhI9zsng7bqggQ5x9xBZYDPBDXuCrhTy1YJ5llVJfDRHPK/"
    "5c4pKzXMZ4KadgXaVKzDCATMKYU8o6q5l+euxY5Z8D1SwF1TaeBxaH1Z4EVzxX+/NfcP3h"
    "98ePPu4INwUe2cWd4v6Jtef6iB1aPiLNlDYeXYRfl4da3G147Eu/GHl0d70TDvnXbPh63T"
    "L5mxftgaduWTZmacx9ZGGDsmQ31WiPFPb/jJkF+Nb4N+V48wZ37DbzLDMGHAKSD0FkA7zS"
    "Q2x6ZsPKQy5zLxUCyoJ6wK0afMrOdgtxiD0wLakUCD7WD/WWepVGL1w9y6f9j6Ya4pm5Ic"
    "v//UsBHKUQ634kE6E9SDtPwgxT4YBdjJWVLblIq5nRRsDKRkGvaR0D1rspTeCFCSdSX/7c"
    "HgJNMB7Z5O+OK03T1r7KsGCCfMUf6aexNAIpLNaYlIJi2pFMash/j+o2g/dSwz2yPzGLby"
    "ohlkYRc6BbHinFgPZ0L1blTKq5pdDrud3mnrpLG/t9PUhm88zRzsbc8tcXclGUeKGuxisP"
    "4Ee56ssBzdtKxGvBjx3F58mbxnTlwnPpuc+NxifyLDaCBGhZu7CV98BpKnfcSJyMvp5aVn"
    "HQnf7FFpmRcpq3yCt2g9UY4YWOs7VHpxr1Pg2RW7O6usu3tju1seIF9dpw4ypWEEretbyG"
    "yQeZJKJl04zsvd25Hu6PMZcmB860Xr/eQ2Tk8W86x9/6RzaWKNpnsFkzZpEc35R27T1S2Q"
    "CCh2VLesSeeVf7NpxnLh9SaQ9NzyS05fsMUDMbwMemVAeUtpx6DMRgzZxmhqiMGH1eF9Y8"
    "/AvsEnyLDoL8TCl0m/6OSFZc2K+t24vIxLuLwMy1WFuHPlVbkCpX7qKlcuIiAgFNSXLV7a"
    "ZQvVfWXP6DKi+gZAlS3vSeCOCMROWfRzwnovt8IJaTRxlthUTEs2aFNxb6M2Fevs5tWHu/"
    "o1pnIrd6J4ytV7c2evJQvzXO6QYTsP9ogyhMfkMwrPRXuiGZDkbsBnb+y/TKBz6YEwM3g7"
    "Cx9To0n8cvF7UbiT2Wmdd1qH3TDczM/E1plntBDD1sTMyTKiJwtzDJj4LMsvinkuD/ZLRe"
    "KFi2Luq5yzHEad97gIfOMvChUH2SIL83PDjc4Esny0KcmrCLDF+3IHHETGXL4azbdvFwCN"
    "Izzhpa1ucfDXDJ9low/5UpUgHLm/Qrr7e3sr0BVehXTVMy22o4SjvBuFf50P+gVBXSLRIz"
    "psceNfY8ULO5tGewFcCWNxuqJnJlpkIAto54UGz7mYPfwHARvnmw=="
)
