"""Changes to listings, as partners see them: the outbox events and the public form of a listing."""
from django.conf import settings
from django.utils import timezone

from app.core.money import CURRENCY, format_money

from .images import absolute_url
from .models import Item, ItemTombstone, ListingEvent

PUBLIC_STATUSES = (Item.LISTED, Item.SOLD)


def listing_url(item_id):
    return f"{settings.SITE_URL}/items/{item_id}/"


def public_photo(photo):
    """A photo as partners see it: absolute URLs of the full size and the thumbnail."""
    return {
        "id": str(photo.id), "url": absolute_url(photo.image), "thumbnail_url": absolute_url(photo.thumbnail),
        "width": photo.width, "height": photo.height, "position": photo.position,
    }


def public_listing(item):
    """What partners may know of an item: all of a listing that is or was public, only id and status otherwise.
    Its photos come from the item's node, unless app.catalog.selectors.attach_photos loaded them already."""
    if item.status not in PUBLIC_STATUSES:
        return {"id": str(item.id), "status": item.status}
    return {
        "id": str(item.id), "title": item.title, "description": item.description,
        "price": format_money(item.price), "currency": CURRENCY, "category": item.category,
        "seller": {"id": str(item.user_id), "username": item.owner_username}, "status": item.status,
        "link": listing_url(item.id), "photos": [public_photo(photo) for photo in item.photos],
    }


def record_listing_event(item, event_type):
    """Write the outbox event in the caller's transaction on the item's node."""
    payload = public_listing(item) if event_type != ListingEvent.DELETED else {"id": str(item.id), "status": "deleted"}
    ListingEvent.objects.using(item._state.db).create(
        user_id=item.user_id, event_type=event_type, item_id=item.id, payload=payload,
    )


def record_deletion(item):
    """The tombstone for the partner feed and the outbox event, in the caller's transaction."""
    ItemTombstone.objects.using(item._state.db).create(user_id=item.user_id, item_id=item.id, deleted_at=timezone.now())
    record_listing_event(item, ListingEvent.DELETED)
