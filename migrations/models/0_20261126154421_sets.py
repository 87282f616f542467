from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        -- squawk-ignore-file require-lock-timeout, require-statement-timeout
        -- (creates new, empty tables: no reader or writer can be waiting on them)
        CREATE TABLE IF NOT EXISTS "sets" (
    "id" UUID NOT NULL PRIMARY KEY DEFAULT gen_random_uuid(),
    "user_id" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "set_number" TEXT,
    "store" TEXT,
    "source_url" TEXT,
    "piece_count" INT,
    "release_date" TIMESTAMPTZ,
    "theme" TEXT,
    "tags" TEXT[] DEFAULT '{}',
    "notes" TEXT,
    "is_built" BOOL NOT NULL DEFAULT false,
    "quantity" INT NOT NULL DEFAULT 1,
    "purchase_price" DECIMAL(10,2),
    "tax" DECIMAL(10,2),
    "shipping" DECIMAL(10,2),
    "purchase_date" TIMESTAMPTZ,
    "wishlist_item_id" UUID,
    "created_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "updated_at" TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS "sets_user_id_idx" ON "sets" ("user_id");
CREATE INDEX IF NOT EXISTS "sets_set_number_idx" ON "sets" ("set_number");
CREATE INDEX IF NOT EXISTS "sets_theme_idx" ON "sets" ("theme");
COMMENT ON TABLE "sets" IS 'LEGO sets: one row per set in one user''s collection';
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSONB NOT NULL
);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    # Written by hand: aerich leaves the first downgrade empty. Rolling back to zero must
    # leave an empty schema, aerich's own table included. aerich deletes this version's
    # row from "aerich" right after this script, in the same transaction, so a temporary
    # stand-in table takes that DELETE and vanishes at COMMIT.
    return """
        -- squawk-ignore-file ban-drop-table, require-lock-timeout, require-statement-timeout
        -- (a downgrade drops what its upgrade created: that is its job)
        DROP TABLE IF EXISTS "sets";
        DROP TABLE IF EXISTS "aerich";
        CREATE TEMPORARY TABLE "aerich" ("id" INT PRIMARY KEY) ON COMMIT DROP;"""


MODELS_STATE = (
    "eJztmn1P4zgQh79KlH8oEoegy75odTqpQG+3J2hPUO5W+yLLTUxrkdjBdhYQx3e/GTdpXp"
    "oUUrZ7wFVC0I7n55jHY3ts59YNpc8CvX3KjPveuXUFDRl8yJu3HJdGUWZEg6GjwPppZqyB"
    "jrRR1MNKzmmgGZh8pj3FI8OlQM+j7oeBg+7vHSmYo+SVEzGFFocLa4o1Uxva8WQQMM/KsB"
    "bpQc1cjLGOAXil9dSqtlEWC34ZM2LkmJkJUyD+8g3MXPjsmmn8euuecxb49rOLlRDuu+jD"
    "riPFtIaadCpLqWDzSeILP9cWxU1ky1wrBQj2y92WU3gAKImIwxE05SHPyNybPQb+V6jlIU"
    "+wnvdUjqLogtj6C9EBpKDI2kmqPTvrHf5uPbHXRgQ6JA5F5h3dmIkUM/c45v42arBszART"
    "1DA/Fz4iDoIkylLTtFPBYFTMZr3pZwafndM4wCB0fz2PhQ0Hxz4Jf+39ljQt53Z6GRxOv7"
    "U2oBVEUeHLkKB7a3Nj052LY2xWKSwTkweoAR0XBonf3k2flUGyVhcfevCxc9J69cbWHklt"
    "xsoWWoTunRVSQ0nWrxn5NFDn8A+h36rx5ySlPoDmLkM/NWT4syGfgk0xFWAT0h8MyWl3SM"
    "hqwA67n4ZYc6j1ZYCG/l+dE0v7uPPJ4g5vkpKjQf9D6i5h5ppOZ/2Do8G+7YIMueEGChsA"
    "nwnWuJfAnZspGzAvqpYCn8wh/1vuRqpGYT4TrGkvQVvGymMkVkEj5AXVmntz7hFnANCTsT"
    "Dz4HuihntJVQLPp9bnBR6aC39+ae/uvd179+rN3jtwse2cWd4u6Jtef1gCq1jAqGYEMpeK"
    "WeQQrIaHrBpvWVvi6yfi7fTD86O9KMx7x93TYef4z0KsH3aGXSxpF+I8tbamuWMW6rNKnL"
    "97w48OfnU+D/rdcoY58xt+xr2DS2MjiZBXhPp5Jqk5NRXzIbvHaJIPpYL1hLVE9knHeh52"
    "Ryl6U0M7EZRgB1z/1Fkqt7H66m7c3m18dVe0m0KOX76VsAlpWAW3+iCdCdZB2jxIuSajmA"
    "cVS+q+lDC3i5qDgZyshH0Eup+6WcofBFjJqjb/+4PBUaED9ntlwmfH+92T1q5tADhxw6rX"
    "3MuYCths3jTIZPKSpdKY1RDffRTtH53LRJBlTzAhiRT3qrIZ5vGQBjW54py4nM5M1dtJLS"
    "9qdjnsHvSOO0et3Z2tdil802lmb2dzbom7bsg4UazBLgarJzyK8IHN6OZla8SLEc9G+zL7"
    "njnxeuPzlDc+V1xPMI0mEBVh5SF8/R1IlfYRNyLPp5fvvevI+HqK4X9MaEUeuXggFZU/YB"
    "StJsuBwFrdpdKzG05x5C/Z3UXlurufbHfjBfL5Re4iEw0j6l1cUeWTuRLZlnW+80VhOyxb"
    "qKBj21lIE9uZvMXQYZCKT9yK9xuSkq1FrzjQzOe+lxzqO/b+9xEaXbbX7u8qV5aKnV2ygD"
    "zukv3JH0/X36N/Z0onb5gUyR5MqKpGm5O8iItdGC/XJGBibHBotF+/XgA0TYDBqzSFpMdH"
    "7WlZcUXHQdWAcOL+Aunu7uw8gC541dK1ZaV8SQrDqu6x/jgd9GsSpUxSXja5Z5x/nAceEz"
    "812gvgIozFB57ls83S4ocV4IHnf7qY3f0LI9Gi/g=="
)
