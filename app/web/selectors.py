"""Reads the web pages need, built on the other apps' selectors."""
from app.catalog.selectors import visible_item
from app.core.errors import NotFound
from sharding.cursors import decode_cursor, encode_cursor
from sharding.errors import InvalidCursorError, InvalidIdError


def item_for(item_id, viewer_id=None):
    """visible_item with a URL's id: NotFound for ids of no node, too."""
    try:
        return visible_item(item_id, viewer_id)
    except InvalidIdError:
        raise NotFound("No such item.") from None


def own_item(owner_id, item_id):
    """The viewer's own item; NotFound for anyone else's (never reveal that it exists)."""
    item = item_for(item_id, owner_id)
    if item.user_id != owner_id:
        raise NotFound("No such item.")
    return item


def newest_first(queryset, cursor, size):
    """One page of a user's rows, newest first by id: (rows, next_cursor). A bad cursor starts over."""
    if cursor:
        try:
            (last_id,) = decode_cursor(cursor, types=(int,))
        except InvalidCursorError:
            last_id = None
        if last_id is not None:
            queryset = queryset.filter(id__lt=last_id)
    rows = list(queryset.order_by("-id")[: size + 1])
    next_cursor = encode_cursor((rows[size - 1].id,)) if len(rows) > size else None
    return rows[:size], next_cursor
