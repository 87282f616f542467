"""The title sort's index: ``(user_id, left(title, 400))``.

Justified by the heavy-collector benchmark's "first page by title" row (``python -m
benchmarks.heavy``; README "Performance"): without an index PostgreSQL reads and sorts all of
a big owner's rows for every title page.

A plain ``(user_id, title, id)`` cannot hold every legal row: a btree entry is at most 2,704
bytes, and a 255-character user id with a 500-character title of four-byte UTF-8 characters
needs 3,056. A title prefix of 400 characters always fits (the worst case, each value
incompressible and with a 4-byte length header):

    8 (index tuple header) + 4 + 255 * 4 (user_id) + 4 + 400 * 4 (the prefix) = 2,636 bytes

(the largest prefix that fits is 417 characters; 400 leaves a margin). ``list_sets`` orders
by ``left(title, 400), title, id``: PostgreSQL walks this index and sorts only within runs of
equal prefixes (an Incremental Sort), and the keyset cursor compares that same three-part
key. ``sets_db.services.listing.TITLE_PREFIX_CHARS`` must stay equal to the 400 here.

An expression, so it lives here and not in ``Set.Meta.indexes``. Built ``CONCURRENTLY``
as migrations 2 and 5 do (no transaction, an INVALID leftover of a failed build rebuilt).
"""

from tortoise import BaseDBAsyncClient

from sets_db.migrator import create_indexes_concurrently, drop_indexes

RUN_IN_TRANSACTION = False

INDEXES = {
    "sets_user_title_prefix_idx": 'ON "sets" ("user_id", left("title", 400))',
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return await create_indexes_concurrently(db, INDEXES)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return drop_indexes(INDEXES)


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
