"""The async API a web backend awaits. Every function is keyword-only, takes the caller's
``user_id`` (the Cognito ``sub``) first, and returns DTOs from ``sets_db.schemas``.
"""

from sets_db.services.collection import (
    collection_stats,
    find_duplicates,
    list_duplicate_groups,
    list_tags,
    list_themes,
)
from sets_db.services.images import add_image, delete_image, reorder_images
from sets_db.services.listing import list_sets
from sets_db.services.sets import create_set, delete_set, get_set, get_set_or_none, update_set
from sets_db.services.transfer import export_sets, import_sets

__all__ = [
    "add_image",
    "collection_stats",
    "create_set",
    "delete_image",
    "delete_set",
    "export_sets",
    "find_duplicates",
    "get_set",
    "get_set_or_none",
    "import_sets",
    "list_duplicate_groups",
    "list_sets",
    "list_tags",
    "list_themes",
    "reorder_images",
    "update_set",
]
