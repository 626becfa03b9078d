from app.core.errors import NotFound
from sharding.placement import node_for_id, node_for_user

from .models import Item


def inventory_of(user_id):
    """What the user owns now: listed and unlisted items (sold ones belong to the buyer)."""
    return Item.objects.using(node_for_user(user_id)).filter(user_id=user_id).exclude(status=Item.SOLD)


def visible_item(item_id, viewer_id=None):
    """A listed item for anyone; an unlisted or sold one only for its owner. NotFound otherwise."""
    item = Item.objects.using(node_for_id(item_id)).filter(id=item_id).first()
    if item is None or (item.status != Item.LISTED and item.user_id != viewer_id):
        raise NotFound("No such item.")
    return item
