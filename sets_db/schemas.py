"""Pydantic DTOs: what the services take in (validated, strict) and hand out.

Limits are deliberately explicit: a collection app has no use for a 1 MB title, and a
bound here is cheaper than a surprise in the database.
"""

# No ``from __future__ import annotations``: pydantic would compile and evaluate every
# field's annotation string when the classes are made (6 ms of a cold start).
import functools
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from sets_db.errors import FieldError, InvalidInputError

MAX_TITLE = 500
MAX_SHORT_TEXT = 200
MAX_NOTES = 20_000
MAX_URL = 2048
MAX_TAGS = 50
MAX_TAG = 50
MAX_IMAGES = 100
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def storable_text(value: str) -> str:
    """Text PostgreSQL can store: no NUL, and valid UTF-8 (no lone surrogates)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


# Scheme http(s), a host name (letters, digits, dots, hyphens; no credentials), an optional
# port, then anything but whitespace and control characters. A regex, not urlsplit(): it is
# checked for every image of a bulk import, and urlsplit was most of that cost.
_HTTP_URL = re.compile(
    r"https?://[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?(?:[/?#][^\s\x00-\x1f\x7f]*)?",
    re.IGNORECASE,
)


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must be between {EARLIEST.year} and {LATEST.year}")
    return value


def _unique_tags(tags: list[str]) -> list[str]:
    # Order is kept (the first spelling wins); duplicates would only inflate tag counts.
    return list(dict.fromkeys(tags))


# C0 and C1 control characters (and DEL); notes may hold tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOTES_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Unicode categories a reader can see: letters, numbers, punctuation, symbols, private use.
# A zero-width space (Cf), a lone combining mark (Mn/Me/Mc) or a space shows nothing.
_VISIBLE_GROUPS = frozenset("LNPS")


def _visible(value: str) -> bool:
    return any(
        (category := unicodedata.category(char))[0] in _VISIBLE_GROUPS or category == "Co"
        for char in value
    )


def _checked_text(value: str, control: re.Pattern[str]) -> str:
    # One search finds NUL and every other control character; plain ASCII text without them
    # is visible as soon as it is not empty (it is stripped already).
    if control.search(value):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        raise ValueError("must not contain control characters")
    if value.isascii():
        return value
    storable_text(value)
    if value and not _visible(value):
        raise ValueError("must contain a visible character")
    return value


def line_text(value: str) -> str:
    """One-line text (a title, a tag, a store): storable, no control characters, visible."""
    return _checked_text(value, _CONTROL)


def notes_text(value: str) -> str:
    """Multi-line text: tabs and line breaks allowed, other control characters not."""
    return _checked_text(value, _NOTES_CONTROL)


def _url(value: str) -> str:
    if not _HTTP_URL.fullmatch(value):
        raise ValueError("must be an http(s) URL")
    return value if value.isascii() else storable_text(value)


_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")


def _integer_only(value: Any) -> Any:
    # bool is an int subclass (True would store 1); "1_000" and " 7 " are Python's int()
    # syntax, not a number a user wrote; floats are refused even when whole.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer")
    if isinstance(value, str) and not _INTEGER.fullmatch(value):
        raise ValueError("must be an integer written with digits only")
    return value


def _money_only(value: Any) -> Any:
    # A float is already rounded (0.1 is not 1/10): money is Decimal, int or a string.
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValueError('must be a Decimal or a decimal string such as "12.30"')
    if isinstance(value, str) and "_" in value:
        raise ValueError("must be a decimal number written with digits only")
    return value


def _moment_only(value: Any) -> Any:
    # A number would be read as seconds since 1970.
    if not isinstance(value, datetime | str):
        raise ValueError("must be a datetime or an ISO 8601 string")
    return value


def _uuid_only(value: Any) -> Any:
    # 16 raw bytes would be read as a UUID's binary form.
    if not isinstance(value, UUID | str):
        raise ValueError("must be a UUID or its text form")
    return value


def _ordered(value: Any) -> Any:
    # A set has no order: the stored order (tags, image order) would be arbitrary.
    if isinstance(value, set | frozenset | dict) or not isinstance(value, list | tuple):
        raise ValueError("must be a list (ordered)")
    return value


# Strict: bytes would be decoded (b"x" -> "x"), "yes" or 1 read as True; the caller meant
# something else.
_Text = Strict()
_Line = AfterValidator(line_text)
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE),
    _Line,
    _Text,
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_SHORT_TEXT), _Line, _Text
]
Notes = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_NOTES),
    AfterValidator(notes_text),
    _Text,
]
Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_URL),
    AfterValidator(_url),
    _Text,
]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG), _Line, _Text
]
Tags = Annotated[
    list[Tag],
    Field(max_length=MAX_TAGS),
    AfterValidator(_unique_tags),
    BeforeValidator(_ordered),
]
# numeric(10,2): reject what the column would round or overflow, never round silently.
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=10, decimal_places=2, allow_inf_nan=False),
    BeforeValidator(_money_only),
]
Moment = Annotated[AwareDatetime, AfterValidator(_in_range), BeforeValidator(_moment_only)]
Integer = BeforeValidator(_integer_only)
PieceCount = Annotated[int, Field(ge=0, le=10_000_000), Integer]
Quantity = Annotated[int, Field(ge=1, le=1_000_000), Integer]
Flag = Annotated[bool, Strict()]
Uuid = Annotated[UUID, BeforeValidator(_uuid_only)]
# Past the last image means "at the end"; the bound only keeps it inside the int column.
MAX_POSITION = 1_000_000
Position = Annotated[int, Field(ge=0, le=MAX_POSITION), Integer]


class _Input(BaseModel):
    # revalidate_instances: a DTO instance is checked again when a service receives it, so
    # one built with model_construct() or model_copy(update=...) cannot skip the rules.
    # defer_build: a model is compiled on its first use, not at import, so a cold start
    # (a new Lambda instance) pays only for the models its first call needs.
    model_config = ConfigDict(
        extra="forbid", frozen=True, revalidate_instances="always", defer_build=True
    )


InputModel = TypeVar("InputModel", bound=BaseModel)


class ImageCreate(_Input):
    image_url: Url
    thumbnail_url: Url | None = None


class SetFields(_Input):
    """The writable columns of a set, each optional: shared by create and update."""

    set_number: ShortText | None = None
    store: ShortText | None = None
    source_url: Url | None = None
    piece_count: PieceCount | None = None
    release_date: Moment | None = None
    theme: ShortText | None = None
    notes: Notes | None = None
    purchase_price: Money | None = None
    tax: Money | None = None
    shipping: Money | None = None
    purchase_date: Moment | None = None
    wishlist_item_id: Uuid | None = None


class SetCreate(SetFields):
    title: Title
    tags: Tags = []
    is_built: Flag = False
    quantity: Quantity = 1
    images: Annotated[
        list[ImageCreate], Field(max_length=MAX_IMAGES), BeforeValidator(_ordered)
    ] = []


# Columns that may not be NULL: an update may change them but not clear them.
_REQUIRED_ON_UPDATE = ("title", "tags", "is_built", "quantity")


class SetUpdate(SetFields):
    """A partial update: only the fields given are changed; an explicit null clears one."""

    title: Title | None = None
    tags: Tags | None = None
    is_built: Flag | None = None
    quantity: Quantity | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> Self:
        for name in _REQUIRED_ON_UPDATE:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        return self

    def changes(self) -> dict[str, Any]:
        """Only what the caller actually sent."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class _Output(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class ImageOut(_Output):
    id: UUID
    set_id: UUID
    image_url: str
    thumbnail_url: str | None
    position: int
    created_at: datetime


class SetOut(_Output):
    id: UUID
    user_id: str
    title: str
    set_number: str | None
    store: str | None
    source_url: str | None
    piece_count: int | None
    release_date: datetime | None
    theme: str | None
    tags: list[str]
    notes: str | None
    is_built: bool
    quantity: int
    purchase_price: Decimal | None
    tax: Decimal | None
    shipping: Decimal | None
    purchase_date: datetime | None
    wishlist_item_id: UUID | None
    created_at: datetime
    updated_at: datetime
    images: list[ImageOut] = []


class SetPage(_Output):
    items: list[SetOut]
    # Pass back as ``cursor=`` for the next page; None on the last page.
    next_cursor: str | None


class DeletedSet(_Output):
    """What a delete removed, so the caller can delete the files from storage."""

    set_id: UUID
    image_urls: list[str]
    thumbnail_urls: list[str]


class DuplicateGroup(_Output):
    set_number: str
    set_ids: list[UUID]


class NameCount(_Output):
    name: str
    count: int


class ThemeStats(_Output):
    theme: str | None
    set_count: int
    total_quantity: int
    total_pieces: int
    money_spent: Decimal


class CollectionStats(_Output):
    set_count: int
    total_quantity: int
    # piece_count x quantity, summed.
    total_pieces: int
    built_count: int
    not_built_count: int
    # purchase_price + tax + shipping, summed over sets (a missing part counts as 0).
    money_spent: Decimal
    themes: list[ThemeStats]


SortKey = Literal[
    "created_at", "title", "piece_count", "release_date", "purchase_date", "total_cost"
]
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_CURSOR = 1000


class SetQuery(_Input):
    """Filters, order and page of ``list_sets``; every filter narrows (AND)."""

    themes: (
        Annotated[list[ShortText], Field(max_length=MAX_TAGS), BeforeValidator(_ordered)] | None
    ) = None
    # A set matches when it carries ALL of these tags.
    tags: Tags | None = None
    is_built: Flag | None = None
    set_number: ShortText | None = None
    # Case-insensitive substring of title or set number; % _ and quotes are literal.
    search: ShortText | None = None
    sort: SortKey = "created_at"
    # None: newest first for created_at, ascending for every other key.
    descending: Flag | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE), Integer] = DEFAULT_PAGE_SIZE
    cursor: Annotated[str, StringConstraints(max_length=MAX_CURSOR), _Text] | None = None

    @property
    def is_descending(self) -> bool:
        return self.descending if self.descending is not None else self.sort == "created_at"


class ImageAdd(ImageCreate):
    # None: append after the last image. Past the end also appends.
    position: Position | None = None


class ImageOrder(_Input):
    image_ids: Annotated[list[Uuid], Field(max_length=MAX_IMAGES * 10), BeforeValidator(_ordered)]


# --- Input checks of service arguments -------------------------------------------------------

MAX_USER_ID = 255


def checked_user_id(user_id: object) -> str:
    """The caller's Cognito ``sub``, validated: every query is scoped by it."""
    if not isinstance(user_id, str) or not user_id.strip():
        raise InvalidInputError.single("user_id", "must be a non-empty string")
    if len(user_id) > MAX_USER_ID:
        raise InvalidInputError.single("user_id", f"must be at most {MAX_USER_ID} characters")
    try:
        return storable_text(user_id)
    except ValueError as error:
        raise InvalidInputError.single("user_id", str(error)) from None


def checked_uuid(value: object, field: str) -> UUID:
    """A row id given as a UUID or its text form (never bytes or a number)."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidInputError.single(field, "must be a UUID")


@functools.cache  # built on first use, as the models are (defer_build)
def _short_text() -> TypeAdapter[str]:
    return TypeAdapter(ShortText)


def checked_short_text(value: object, field: str) -> str:
    """A single short text argument (e.g. a set number to look up), checked like a field
    (an adapter, not a one-field model: 1.3 against 3.2 us a call)."""
    try:
        return _short_text().validate_python(value)
    except ValidationError as error:
        raise invalid_input(error, field) from None


def validated(model: type[InputModel], data: InputModel | Mapping[str, Any]) -> InputModel:
    """Accept the DTO itself (checked again) or a plain mapping; a failure names every bad
    field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise invalid_input(error) from None


def invalid_input(error: ValidationError, *prefix: str) -> InvalidInputError:
    """Every problem pydantic found, each located by its dotted path (after ``prefix``)."""
    return InvalidInputError(
        [
            FieldError(
                ".".join([*prefix, *(str(part) for part in item["loc"])]) or "input", item["msg"]
            )
            for item in error.errors()
        ]
    )
