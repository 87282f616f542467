"""A per-owner, per-theme summary of the figures ``collection_stats`` reports,
``set_collection_stats``, kept by triggers on ``sets``.

Justified by the heavy-collector benchmark's ``collection_stats`` row (``python -m
benchmarks.heavy``; README "Performance"): aggregating a 20k-set collection costs about 8 ms
of server time even from the covering index of migration 5. ``collection_stats`` now sums
the owner's few summary rows (one per theme) instead.

Per (owner, theme), the theme NULL being one group of its own: ``set_count``,
``total_quantity``, ``total_pieces`` (piece_count x quantity, a NULL piece count counting 0),
``built_count``, ``money_spent`` (purchase_price + tax + shipping, a missing part counting 0).
The sums are exact: pieces and money are ``numeric`` (the products of the column maxima pass
bigint after two rows), quantity and counts ``bigint`` as ``sum(integer)`` and ``count(*)``
give them. A group whose last set goes is deleted. The key is a unique constraint ``NULLS NOT
DISTINCT`` (PostgreSQL 15+), so the NULL theme is one row that ``ON CONFLICT`` finds; it is
no primary key (a column of it is nullable), so the table gets ``REPLICA IDENTITY FULL``:
under a publication of all tables its updates would otherwise be refused, and with them
every write to ``sets``.

Kept by statement-level AFTER triggers with transition tables, as ``set_tag_counts``
(migration 7): every writer -- the services, another client (Drizzle), ``COPY`` -- keeps it
right, and a multi-row statement (an import's ``COPY`` batch) pays one aggregated upsert:

- INSERT, DELETE: the statement's rows summed per (owner, theme), added (INSERT) or
  subtracted (DELETE) in one upsert in key order; then groups of the old rows' owners left
  with no set are deleted.
- UPDATE: the new rows' sums minus the old rows', per (owner, theme); groups whose
  difference is zero are left out, so an UPDATE that changes no figure writes nothing.
- TRUNCATE: the summary is emptied.

No deadlock among writers of one owner: before its first upsert a statement takes a
transaction-level advisory lock per owner it writes (in key order), so the summaries' row
locks of one owner are only ever taken under that owner's lock. A transaction that writes
several statements (an import's batches) cannot meet another one of the same owner halfway
in the other order. The triggers fire before the tag summary's (``set_collection_stats_*``
sorts before ``set_tag_counts_*``, and PostgreSQL fires triggers of one event by name), so
the lock covers ``set_tag_counts`` too. An UPDATE takes it only when a column either summary
reads changed (renaming a set does not wait for the owner's running import). Writers of one
owner therefore queue from their first write to ``sets`` until commit: a ``create_set``
waits for a running import of the same owner to commit. A transaction that writes sets of
several owners takes their locks statement by statement; such transactions (no service writes
two owners) can still deadlock with each other, which PostgreSQL breaks by failing one (the
services raise ``ConflictError``). The lock's first key names the summaries; the migrator's
lock uses the one-key (bigint) space, apart from this one.

The trigger function is ``SECURITY DEFINER`` (it runs as the login that migrates, which owns
the summary): the application role ``sets_db_app`` writes ``sets`` under row-level security
and needs no write privilege here; it gets SELECT and the owner policy. ``search_path`` is
pinned and every name qualified.

The key (user_id, theme) holds the same pair as migration 5's ``(user_id, theme)`` index on
``sets``: any row ``sets`` accepts fits here too.

Backfilled in the same transaction, after the triggers exist: ``CREATE TRIGGER`` locks
``sets`` against writes until commit, so no write falls between the backfill and the
triggers. The downgrade drops the triggers, the function and the table.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

# The figures of a set of rows, per (owner, theme); %s is the transition table.
_SUMS = """
SELECT r."user_id", r."theme", count(*) AS "set_count", sum(r."quantity") AS "total_quantity",
       sum(COALESCE(r."piece_count", 0)::bigint * r."quantity") AS "total_pieces",
       count(*) FILTER (WHERE r."is_built") AS "built_count",
       sum(COALESCE(r."purchase_price", 0) + COALESCE(r."tax", 0) + COALESCE(r."shipping", 0))
           AS "money_spent"
FROM %s r GROUP BY 1, 2"""

_UPSERT = """
INSERT INTO "public"."set_collection_stats" AS s
    ("user_id", "theme", "set_count", "total_quantity", "total_pieces", "built_count",
     "money_spent")"""

_ADD = """
ON CONFLICT ("user_id", "theme") DO UPDATE SET
    "set_count" = s."set_count" + excluded."set_count",
    "total_quantity" = s."total_quantity" + excluded."total_quantity",
    "total_pieces" = s."total_pieces" + excluded."total_pieces",
    "built_count" = s."built_count" + excluded."built_count",
    "money_spent" = s."money_spent" + excluded."money_spent";"""

# One advisory lock per owner of %s (a query of user ids), in key order.
_LOCK_OWNERS = """
PERFORM pg_advisory_xact_lock(hashtext('set_collection_stats'), o."key")
FROM (SELECT DISTINCT hashtext(u."user_id") AS "key" FROM (%s) u ORDER BY 1) o;"""

# The columns either summary reads: an UPDATE that changes none of them locks nothing.
_SUMMARISED = (
    '"user_id", "theme", "quantity", "piece_count", "is_built", "purchase_price", "tax",'
    ' "shipping", "tags"'
)

SYNC_FUNCTION = f"""
CREATE FUNCTION "public"."set_collection_stats_sync"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changed bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM "public"."set_collection_stats";
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        {_LOCK_OWNERS % 'SELECT "user_id" FROM new_rows'}
        {_UPSERT}
        SELECT * FROM ({_SUMS % "new_rows"}) d ORDER BY 1, 2
        {_ADD}
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        {_LOCK_OWNERS % 'SELECT "user_id" FROM old_rows'}
        {_UPSERT}
        SELECT d."user_id", d."theme", -d."set_count", -d."total_quantity", -d."total_pieces",
               -d."built_count", -d."money_spent"
        FROM ({_SUMS % "old_rows"}) d ORDER BY 1, 2
        {_ADD}
    ELSE
        IF NOT EXISTS (SELECT {_SUMMARISED} FROM new_rows
                       EXCEPT ALL SELECT {_SUMMARISED} FROM old_rows) THEN
            -- As many new rows as old ones, all among them: nothing either summary reads
            -- changed.
            RETURN NULL;
        END IF;
        {_LOCK_OWNERS % 'SELECT "user_id" FROM new_rows UNION ALL SELECT "user_id" FROM old_rows'}
        {_UPSERT}
        SELECT d."user_id", d."theme", sum(d."set_count"), sum(d."total_quantity"),
               sum(d."total_pieces"), sum(d."built_count"), sum(d."money_spent")
        FROM ({_SUMS % "new_rows"}
              UNION ALL
              SELECT n."user_id", n."theme", -n."set_count", -n."total_quantity",
                     -n."total_pieces", -n."built_count", -n."money_spent"
              FROM ({_SUMS % "old_rows"}) n) d
        GROUP BY 1, 2
        HAVING sum(d."set_count") <> 0 OR sum(d."total_quantity") <> 0
            OR sum(d."total_pieces") <> 0 OR sum(d."built_count") <> 0
            OR sum(d."money_spent") <> 0
        ORDER BY 1, 2
        {_ADD}
    END IF;
    GET DIAGNOSTICS changed = ROW_COUNT;
    IF changed > 0 THEN  -- drop the groups left without a set, among the old rows' owners
        DELETE FROM "public"."set_collection_stats" s
        USING (SELECT DISTINCT r."user_id" FROM old_rows r) o
        WHERE s."user_id" = o."user_id" AND s."set_count" = 0;
    END IF;
    RETURN NULL;
END
$$;"""

TRIGGERS = """
CREATE TRIGGER "set_collection_stats_insert" AFTER INSERT ON "public"."sets"
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION "public"."set_collection_stats_sync"();
CREATE TRIGGER "set_collection_stats_update" AFTER UPDATE ON "public"."sets"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION "public"."set_collection_stats_sync"();
CREATE TRIGGER "set_collection_stats_delete" AFTER DELETE ON "public"."sets"
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION "public"."set_collection_stats_sync"();
CREATE TRIGGER "set_collection_stats_truncate" AFTER TRUNCATE ON "public"."sets"
    FOR EACH STATEMENT EXECUTE FUNCTION "public"."set_collection_stats_sync"();"""

BACKFILL = f"""
{_UPSERT}
{_SUMS % '"public"."sets"'};"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    # CREATE TRIGGER blocks writes to sets until commit: give up rather than queue behind a
    # long transaction (and block every query queued behind this one).
    return f"""
        SET LOCAL lock_timeout = '5s';
        SET LOCAL statement_timeout = '600s';
        CREATE TABLE "public"."set_collection_stats" (
            "user_id" TEXT NOT NULL,
            "theme" TEXT,
            "set_count" BIGINT NOT NULL,
            "total_quantity" BIGINT NOT NULL,
            "total_pieces" NUMERIC NOT NULL,
            "built_count" BIGINT NOT NULL,
            "money_spent" NUMERIC NOT NULL,
            CONSTRAINT "set_collection_stats_owner_theme_key"
                UNIQUE NULLS NOT DISTINCT ("user_id", "theme")
        );
        ALTER TABLE "public"."set_collection_stats" REPLICA IDENTITY FULL;
        COMMENT ON TABLE "public"."set_collection_stats" IS
            'Per owner and theme: the sets'' count, quantity, pieces, built count and money; kept by triggers on sets';
        {SYNC_FUNCTION}
        {TRIGGERS}
        {BACKFILL}
        GRANT SELECT ON "public"."set_collection_stats" TO sets_db_app;
        ALTER TABLE "public"."set_collection_stats" ENABLE ROW LEVEL SECURITY;
        CREATE POLICY "set_collection_stats_owner" ON "public"."set_collection_stats"
            FOR SELECT TO sets_db_app
            USING ("user_id" = current_setting('sets_db.user_id', true));"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        -- squawk-ignore-file ban-drop-table, ban-drop-function
        -- (a downgrade drops what its upgrade created: that is its job)
        SET LOCAL lock_timeout = '5s';
        SET LOCAL statement_timeout = '60s';
        DROP TRIGGER IF EXISTS "set_collection_stats_truncate" ON "public"."sets";
        DROP TRIGGER IF EXISTS "set_collection_stats_delete" ON "public"."sets";
        DROP TRIGGER IF EXISTS "set_collection_stats_update" ON "public"."sets";
        DROP TRIGGER IF EXISTS "set_collection_stats_insert" ON "public"."sets";
        DROP FUNCTION IF EXISTS "public"."set_collection_stats_sync"();
        DROP TABLE IF EXISTS "public"."set_collection_stats";"""


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
