"""A per-owner tag-count summary, ``set_tag_counts``, kept by triggers on ``sets``.

Justified by the heavy-collector benchmark's ``list_tags`` row (``python -m
benchmarks.heavy``; README "Performance"): counting on demand unnests every tag of the owner
(40k for 20k sets), ~10 ms of server time on a quiet machine, with ``tags`` in no index that
could cover it. ``list_tags`` now reads the owner's few summary rows instead.

The counts are what ``unnest(tags)`` gives: a tag listed twice in one set counts twice, every
element of a multi-dimensional array counts; NULL elements do not (``get_set`` drops them
too). Only a database without migration 4's CHECKs holds such arrays.

Kept by statement-level AFTER triggers with transition tables, so every writer -- the
services, another client (Drizzle), ``COPY`` -- keeps it right, and a multi-row statement
(an import's ``COPY`` batch) pays one aggregated upsert, not one per row:

- INSERT, UPDATE, DELETE: the statement's changes per (owner, tag) are summed (new rows +1
  per tag, old rows -1) and upserted in (owner, tag) order, in one statement -- so two
  statements lock shared rows in the same order -- then rows of the old rows' owners left at
  zero are deleted. An UPDATE that changes neither ``tags`` nor ``user_id`` sums to nothing
  and writes nothing. (A column list, ``UPDATE OF tags, user_id``, cannot be combined with
  transition tables.) One upsert statement per write: a single-row INSERT pays about
  0.1 ms of server time for it.
- TRUNCATE: the summary is emptied.

Writers of the same owner that share a tag wait for each other on that summary row until
commit; a multi-statement transaction that touches the same tags in another order than a
concurrent one can meet a deadlock, which PostgreSQL breaks by failing one of them (the
services raise ``ConflictError``: nothing was written, a retry may succeed).

The trigger function is ``SECURITY DEFINER`` (it runs as the login that migrates, which
owns the summary): the application role ``sets_db_app`` (migration 3) writes ``sets`` under
row-level security and needs no write privilege on the summary. It gets SELECT and the same
owner policy as ``sets``, so it reads only its owner's counts. ``search_path`` is pinned and
every name qualified, so a caller's ``search_path`` cannot redirect the function.

The primary key (user_id, tag) holds every legal pair (255 + 50 characters of four bytes:
1,236 of the 2,704 bytes a btree entry may take).

Backfilled in the same transaction, after the triggers exist: ``CREATE TRIGGER`` locks
``sets`` against writes (SHARE ROW EXCLUSIVE) until commit, so no write falls between the
backfill and the triggers; writes wait for the backfill (0.1 s for 50k sets on a busy 2-core
machine). The downgrade drops the triggers, the function and the table.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

SYNC_FUNCTION = """
CREATE FUNCTION "public"."set_tag_counts_sync"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changed bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM "public"."set_tag_counts";
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO "public"."set_tag_counts" AS s ("user_id", "tag", "count")
        SELECT t."user_id", t."tag", count(*)
        FROM (SELECT r."user_id", unnest(r."tags") AS "tag" FROM new_rows r) t
        WHERE t."tag" IS NOT NULL
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT ("user_id", "tag") DO UPDATE SET "count" = s."count" + excluded."count";
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO "public"."set_tag_counts" AS s ("user_id", "tag", "count")
        SELECT t."user_id", t."tag", -count(*)
        FROM (SELECT r."user_id", unnest(r."tags") AS "tag" FROM old_rows r) t
        WHERE t."tag" IS NOT NULL
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT ("user_id", "tag") DO UPDATE SET "count" = s."count" + excluded."count";
    ELSE
        INSERT INTO "public"."set_tag_counts" AS s ("user_id", "tag", "count")
        SELECT t."user_id", t."tag", sum(t."d")
        FROM (SELECT r."user_id", unnest(r."tags") AS "tag", 1 AS "d" FROM new_rows r
              UNION ALL
              SELECT r."user_id", unnest(r."tags"), -1 FROM old_rows r) t
        WHERE t."tag" IS NOT NULL
        GROUP BY 1, 2 HAVING sum(t."d") <> 0 ORDER BY 1, 2
        ON CONFLICT ("user_id", "tag") DO UPDATE SET "count" = s."count" + excluded."count";
    END IF;
    GET DIAGNOSTICS changed = ROW_COUNT;
    IF changed > 0 THEN  -- drop what fell to zero, among the owners whose rows went
        DELETE FROM "public"."set_tag_counts" s
        USING (SELECT DISTINCT r."user_id" FROM old_rows r) o
        WHERE s."user_id" = o."user_id" AND s."count" <= 0;
    END IF;
    RETURN NULL;
END
$$;"""

TRIGGERS = """
CREATE TRIGGER "set_tag_counts_insert" AFTER INSERT ON "public"."sets"
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION "public"."set_tag_counts_sync"();
CREATE TRIGGER "set_tag_counts_update" AFTER UPDATE ON "public"."sets"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION "public"."set_tag_counts_sync"();
CREATE TRIGGER "set_tag_counts_delete" AFTER DELETE ON "public"."sets"
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION "public"."set_tag_counts_sync"();
CREATE TRIGGER "set_tag_counts_truncate" AFTER TRUNCATE ON "public"."sets"
    FOR EACH STATEMENT EXECUTE FUNCTION "public"."set_tag_counts_sync"();"""

BACKFILL = """
INSERT INTO "public"."set_tag_counts" ("user_id", "tag", "count")
SELECT t."user_id", t."tag", count(*)
FROM (SELECT s."user_id", unnest(s."tags") AS "tag" FROM "public"."sets" s) t
WHERE t."tag" IS NOT NULL
GROUP BY 1, 2;"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    # CREATE TRIGGER blocks writes to sets until commit: give up rather than queue behind a
    # long transaction (and block every query queued behind this one).
    return f"""
        SET LOCAL lock_timeout = '5s';
        SET LOCAL statement_timeout = '600s';
        CREATE TABLE "public"."set_tag_counts" (
            "user_id" TEXT NOT NULL,
            "tag" TEXT NOT NULL,
            "count" BIGINT NOT NULL,
            CONSTRAINT "set_tag_counts_pkey" PRIMARY KEY ("user_id", "tag")
        );
        COMMENT ON TABLE "public"."set_tag_counts" IS
            'Per owner and tag: how often the owner''s sets list the tag; kept by triggers on sets';
        {SYNC_FUNCTION}
        {TRIGGERS}
        {BACKFILL}
        GRANT SELECT ON "public"."set_tag_counts" TO sets_db_app;
        ALTER TABLE "public"."set_tag_counts" ENABLE ROW LEVEL SECURITY;
        CREATE POLICY "set_tag_counts_owner" ON "public"."set_tag_counts"
            FOR SELECT TO sets_db_app
            USING ("user_id" = current_setting('sets_db.user_id', true));"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        -- squawk-ignore-file ban-drop-table, ban-drop-function
        -- (a downgrade drops what its upgrade created: that is its job)
        SET LOCAL lock_timeout = '5s';
        SET LOCAL statement_timeout = '60s';
        DROP TRIGGER IF EXISTS "set_tag_counts_truncate" ON "public"."sets";
        DROP TRIGGER IF EXISTS "set_tag_counts_delete" ON "public"."sets";
        DROP TRIGGER IF EXISTS "set_tag_counts_update" ON "public"."sets";
        DROP TRIGGER IF EXISTS "set_tag_counts_insert" ON "public"."sets";
        DROP FUNCTION IF EXISTS "public"."set_tag_counts_sync"();
        DROP TABLE IF EXISTS "public"."set_tag_counts";"""


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
