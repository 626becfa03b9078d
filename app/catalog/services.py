"""Writes to a user's items (on the owner's node)."""
from typing import Any

from django.db import transaction

from app.catalog.error_codes import CatalogErrorCode
from app.core.error_codes import CommonErrorCode
from app.core.errors import Conflict, NotFound, ServiceError
from app.core.text import clean_text
from app.core.types import UserRef
from sharding.placement import node_for_id, node_for_user
from sharding.transactions import retry_when_moved

from .events import record_deletion, record_listing_event
from .models import Item, ListingEvent


def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Titles, descriptions and categories as they are stored: without control characters (app.core.text),
    whoever calls (the API and the web forms have cleaned them already; seeders and scripts may not have)."""
    cleaned = {
        name: (
            clean_text(value, multiline=name == "description")
            if name in ("title", "description", "category") else value
        )
        for name, value in fields.items()
    }
    if "title" in cleaned and not str(cleaned["title"]).strip():
        raise ServiceError("A title must have some text.", code=CommonErrorCode.VALIDATION_ERROR,
                           details={"title": ["Blank."]})
    return cleaned


@retry_when_moved
def create_item(*, owner: UserRef, title: str, description: str = "", price: int, category: str = "") -> Item:
    fields = _clean_fields({"title": title, "description": description, "category": category})
    title, description, category = fields["title"], fields["description"], fields["category"]
    with transaction.atomic(using=node_for_user(owner.id)):
        item = Item.objects.using(node_for_user(owner.id)).create(
            user_id=owner.id, owner_username=owner.username, title=title,
            description=description, price=price, category=category, status=Item.LISTED,
        )
        record_listing_event(item, ListingEvent.CREATED)
    return item


def _lock_own_item(owner_id: int, item_id: int) -> Item:
    """The owner's item, locked; NotFound for anyone else's (never reveal that it exists)."""
    item = Item.objects.using(node_for_id(item_id)).select_for_update().filter(id=item_id, user_id=owner_id).first()
    if item is None:
        raise NotFound("No such item.")
    if item.status == Item.SOLD:
        raise Conflict("This item has been sold and can no longer be changed.", code=CatalogErrorCode.ITEM_SOLD)
    return item


EDITABLE_FIELDS = ("title", "description", "price", "category", "status")


@retry_when_moved
def update_item(*, owner_id: int, item_id: int, changes: dict[str, Any]) -> Item:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ServiceError(f"These fields can't be changed: {', '.join(sorted(unknown))}.",
                           code=CommonErrorCode.VALIDATION_ERROR)
    if changes.get("status") not in (None, Item.LISTED, Item.UNLISTED):
        raise ServiceError("status must be listed or unlisted.", code=CommonErrorCode.VALIDATION_ERROR)
    changes = _clean_fields(changes)
    with transaction.atomic(using=node_for_id(item_id)):
        item = _lock_own_item(owner_id, item_id)
        for field, value in changes.items():
            setattr(item, field, value)
        item.save(using=item._state.db, update_fields=[*changes, "updated_at"])
        record_listing_event(item, ListingEvent.UPDATED)
    return item


@retry_when_moved
def delete_item(*, owner_id: int, item_id: int) -> None:
    with transaction.atomic(using=node_for_id(item_id)):
        item = _lock_own_item(owner_id, item_id)
        record_deletion(item)
        item.delete()
