from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        -- squawk-ignore-file require-lock-timeout, require-statement-timeout
        -- (creates a new, empty table: no reader or writer can be waiting on them)
        CREATE TABLE IF NOT EXISTS "set_images" (
    "id" UUID NOT NULL PRIMARY KEY DEFAULT gen_random_uuid(),
    "image_url" TEXT NOT NULL,
    "thumbnail_url" TEXT,
    "position" INT NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "set_id" UUID NOT NULL REFERENCES "sets" ("id") ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS "set_images_set_id_idx" ON "set_images" ("set_id");
COMMENT ON TABLE "set_images" IS 'Pictures of a set, ordered by position (0 is the cover)';"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        -- squawk-ignore-file ban-drop-table, require-lock-timeout, require-statement-timeout
        -- (a downgrade drops what its upgrade created: that is its job)
        DROP TABLE IF EXISTS "set_images";"""


MODELS_STATE = (
    "eJztWvtvGjkQ/ldW+0uIlIsITR/qnU4CQlquCVSB3FV9yDG7Bqzu2huvtwnK5X8/2/t+QZ"
    "aECHIrVSmM5xubb8b2jO073aYmstzDEeL6e+1OJ9BG4kNSfKDp0HFioRRwOLGUnou4EsCJ"
    "yxk0pJEptFwkRCZyDYYdjimRmme9D0NNqr/XKEEaozeag5iUaJgokecitudqBrUsZCiYtE"
    "INYRmTmbQxFFqhnVLUoYR5BF97CHA6Q3yOmAB/+yHEmJjoFrny650+xcgy1WddGgHY1KUO"
    "unUYcl1hyQ1hISty+CDQFf9uFRULR7XpCipIUF/uD7RUBwIJiGdPxFAe0kesXq0b8VuFlY"
    "f0oDRXGJcg5ydQ9lPRIZgSTUoOQuzlZf/kVGlKr02AcIhnk1jbWfA5JZG652HzUGJk2wwR"
    "xCBHZiJ8iGdZQZSFIt+pQsCZhyJvmrHARFPoWTII9T+mHlHhoKme5J/jP4OhJdRG19aJ/6"
    "2xJ0YBGCQmtYFUb+zv7eu5OJbDyoRlIDIE1YI6TLhk/O7e7ysmSUl12Wn3Y/ui8eqNsu5Q"
    "l8+YalQU6vcKCDkEsV9j5sNAzdE/Fn4rpj8ByfhADHcd9kNBTH885UNiQ5pSZAMwGI7BqD"
    "cGYDPEjntfxtKy7brXlhQM/m5fKLbP218U3fYiaDkbDj6E6lSsXP5yNuieDTvKBTHlHHPR"
    "WIHwCFDTvQbdiZWyAudp1FrEB2vI/5Z3TlmlMI8ANdtrsE09ZiDgMasS5SlUzXt13h2MBI"
    "EG9QjPE98nJbxnUBnisS/dLeLFcMV/v7WOjt8ev3v15vidUFHjjCRvl/imPxhniGXIQtBF"
    "QGQuBavIiZBybKNierPYDL9mAD4MP+we28vCvH/eG43b559TsX7SHvdkSysV56G04eeOca"
    "hHRrR/+uOPmvyqfR0OetkMM9Ibf5W1gw49TgGhNwCaSU5CcShK50OqxqiSD4WAesFaI/uE"
    "MzdPdpsxuChhOwBkyLaw+6yrVKKw+q7v3d3vfdc3VE1JHr/9yNBGKEcFvJUHaQSog7R6kG"
    "IXTDxsFWypHUrF2k5KDgYSsAztE4F71mIpeRCgIJsq/jvD4VnKAZ1+luHL807vonGkBiCU"
    "MEfFe+61B4koNhcVMpkkZK00ZjOMHz2K7afOZRyRZc9lQuIwbBRlM8jANrRKcsUcOJvO+O"
    "jDwMqLWl1Oet3+efuscdQ8aGXCN1xmjpv7uS3utiLHAaImdjmx7hw7juywGrtJWE3xcoqj"
    "2b5O3ZMD14XPNhc+N9idyzQaiKiwCw/hy+9AirCPuBHZHS+vvOuI+TUYkr8YwII8cvlESi"
    "OfYBZtJssRgbW5S6Wdm06eY67p7jSydvfWulteIE9/Ji4ypWACjZ83kJkg1ZIoJm04K6rd"
    "OwHu9NMFsmD4PiDj/fjdQl+aeVbfP+laGkuD5V6RSVu0jM18k92ysxJIBClm0LfsKctX8R"
    "uQiMulD0FA7LnVz0E+Y4N7Irw0OtWgfM9xoFFmIoZMbbLQRPBhdXnfaGrY1fgcaQb9hZg/"
    "mbJPQhzfVmTqd+3qKrRwdeXbVUbsnL11Houon/qQtyIBIcAH1I8tdu2xhXJf1Tu6FKh+Ab"
    "DOkffcsycEYqsq9TlgfZa7xg1psHBWOFRMQrboULG5VYeKdXXz4tPd7DOmajt3jHjK3Xt7"
    "V68VG3Oudkhxmyf2lDKEZ+QT8u9F+2IYkBQewKffNu8mobnyQIgZvInSx0Q0iV8ufi/yTz"
    "K77VG3fdLz083iSmyTdUYbMWzM9YIqI2hZWmPAWGdVfVHO5+pkv1ImXropFk7lgu0wcN7j"
    "MvCtfyhUnmSLKswtTDe6c8iKqU1AXkSCLebLLbAQmXE5NVqvXy8hNMzwhFZmdwuTv5bfls"
    "4+5KSqwHCg/gLZPWo2H8Cu0CplV7VlcjtKOCp6UfjXaDgoSepiSDajwwbX/tUe+GBn29he"
    "Qq4kY3m5kq1MMpmBNNApSg2eczO7/w8QhQAv"
)
