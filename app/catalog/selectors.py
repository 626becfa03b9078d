from collections import defaultdict

from app.core.errors import NotFound
from sharding.placement import node_for_id, node_for_user

from .models import Item, Photo


def inventory_of(user_id):
    """What the user owns now: listed and unlisted items (sold ones belong to the buyer)."""
    return Item.objects.using(node_for_user(user_id)).filter(user_id=user_id).exclude(status=Item.SOLD)


def visible_item(item_id, viewer_id=None):
    """A listed item for anyone; an unlisted or sold one only for its owner. NotFound otherwise."""
    item = Item.objects.using(node_for_id(item_id)).filter(id=item_id).first()
    if item is None or (item.status != Item.LISTED and item.user_id != viewer_id):
        raise NotFound("No such item.")
    return item


def photos_of(item):
    """The item's photos in display order (from its own node), cached on the item by attach_photos."""
    cached = getattr(item, "_photos", None)
    if cached is None:
        cached = list(Photo.objects.using(item._state.db).filter(item_id=item.id).order_by("position", "id"))
        item._photos = cached
    return cached


def photos_by_item(alias, item_ids):
    """{item id: [photos in display order]} of items on one node, in one query."""
    found = defaultdict(list)
    if item_ids:
        photos = Photo.objects.using(alias).filter(item_id__in=list(item_ids))
        for photo in photos.order_by("item_id", "position", "id"):
            found[photo.item_id].append(photo)
    return found


def attach_photos(items):
    """Load the photos of a page of items (from any number of nodes: one query per node) onto the items,
    where photos_of, the serializers and the templates find them. Returns the items."""
    items = list(items)
    by_node = defaultdict(list)
    for item in items:
        by_node[item._state.db].append(item)
    for alias, rows in by_node.items():
        found = photos_by_item(alias, {item.id for item in rows})
        for item in rows:
            item._photos = found.get(item.id, [])
    return items
