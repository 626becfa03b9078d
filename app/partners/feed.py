"""The product feed for partners: every change to a listing, in (updated_at, id) order, across all workers.

A partner that keeps the last cursor and polls again sees every change once:
- updated_at is the database clock at the moment of the write (a trigger sets it);
- each worker only hands out changes older than its stable frontier: the start
  of the oldest transaction still writing there (and, for prepared two-phase
  transactions, whose start is unknown, their PREPARE time less a margin). A
  change that commits later always has updated_at at or after the frontier, so
  a cursor can never pass it.
Deleted items come from tombstones; items that are not public (unlisted) show
only their id and status, so partners drop them without learning more. `q` and
`category` filter public items only: unlisted items and tombstones are in every
filtered feed whether they would match or not.
"""
from datetime import datetime

from django.contrib.postgres.search import SearchQuery
from django.db import connections
from django.db.models import Exists, OuterRef, Q

from app.catalog.events import PUBLIC_STATUSES, public_listing
from app.catalog.models import Item, ItemTombstone, Photo
from app.catalog.selectors import attach_photos
from app.core.errors import NotFound
from sharding.fanout import fan_out_page, merge_ordered
from sharding.page_tokens import encode_cursor, keyset_after
from sharding.placement import node_for_id

PREPARED_MARGIN_SECONDS = 60  # longest a transaction may run before its PREPARE

FRONTIER_SQL = """
SELECT least(
  clock_timestamp(),
  (SELECT min(xact_start) FROM pg_stat_activity
    WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()),
  (SELECT min(prepared) - make_interval(secs => %s) FROM pg_prepared_xacts WHERE database = current_database())
)
"""


def stable_frontier(alias):
    with connections[alias].cursor() as cursor:
        cursor.execute(FRONTIER_SQL, [PREPARED_MARGIN_SECONDS])
        return cursor.fetchone()[0]


def public_product(*, item_id):
    """A listed or sold item as partners may see it; NotFound for any other (unlisted items are private)."""
    item = Item.objects.using(node_for_id(item_id)).filter(id=item_id, status__in=PUBLIC_STATUSES).first()
    if item is None:
        raise NotFound("No such product.")
    return item


def feed_record(item):
    record = public_listing(item)
    if item.status in PUBLIC_STATUSES:
        record["created_at"] = item.created_at
    record["updated_at"] = item.updated_at
    return record


def _tombstone_record(tombstone):
    return {"id": str(tombstone.item_id), "status": "deleted", "updated_at": tombstone.deleted_at}


def _sort_key(record):
    return record["updated_at"], int(record["id"])


def _changes_on(alias, after, limit, *, updated_since, category, q):
    frontier = stable_frontier(alias)
    items = Item.objects.using(alias).filter(updated_at__lt=frontier)
    tombstones = ItemTombstone.objects.using(alias).filter(deleted_at__lt=frontier)
    if updated_since is not None:
        items = items.filter(updated_at__gte=updated_since)
        tombstones = tombstones.filter(deleted_at__gte=updated_since)
    if after is not None:
        items = items.filter(keyset_after(("updated_at", "id"), after))
        tombstones = tombstones.filter(keyset_after(("deleted_at", "item_id"), after))
    if category or q:
        # Filters apply to what partners may see: public items. Others (unlisted) are removal records
        # {id, status} whether or not they match, like tombstones, so a filter tells nothing about their
        # title, description or category, and a partner that mirrors a filtered feed still drops them.
        matching = Q(status__in=PUBLIC_STATUSES)
        if category:
            matching &= Q(category=category)
        if q:
            matching &= Q(search_vector=SearchQuery(q, search_type="websearch", config="english"))
        items = items.filter(matching | ~Q(status__in=PUBLIC_STATUSES))
    changed = [feed_record(item) for item in attach_photos(items.order_by("updated_at", "id")[:limit])]
    deleted = [_tombstone_record(t) for t in tombstones.order_by("deleted_at", "item_id")[:limit]]
    return merge_ordered([changed, deleted], key=_sort_key, limit=limit)


def feed_page(*, page_size, cursor=None, updated_since=None, category="", q=""):
    """(records, cursor to poll with next time, whether more changes are waiting now).

    Unlike a plain list, the cursor is there even on the last page: it points
    after the last change returned, so the next poll starts exactly there.
    """
    page = fan_out_page(
        lambda alias, after, limit: _changes_on(
            alias, after, limit, updated_since=updated_since, category=category, q=q,
        ),
        key=_sort_key, page_size=page_size, cursor=cursor, cursor_types=(datetime, int),
    )
    if page.next_cursor is not None:
        return page.rows, page.next_cursor, True
    return page.rows, encode_cursor(_sort_key(page.rows[-1])) if page.rows else cursor, False


def _listed_after(alias, after, limit, with_photos=False):
    listed = Item.objects.using(alias).filter(status=Item.LISTED)
    if with_photos:  # only items that have one, with their photos loaded
        # A photo is on its item's shard: saying so lets Citus join the colocated shards.
        photos = Photo.objects.filter(item_id=OuterRef("id"), logical_shard=OuterRef("logical_shard"))
        listed = listed.filter(Exists(photos))
    if after is not None:
        listed = listed.filter(id__gt=after[0])
    rows = list(listed.order_by("id")[:limit])
    return attach_photos(rows) if with_photos else rows


def listed_items_in_id_order(batch=1000, with_photos=False):
    """Every listed item on every worker, in pages of `batch` (for the merchant feeds, which stream);
    with_photos: only those with a photo, their photos loaded (Google refuses products without an image)."""
    cursor = None
    while True:
        page = fan_out_page(
            lambda alias, after, limit: _listed_after(alias, after, limit, with_photos),
            key=lambda item: (item.id,), page_size=batch, cursor=cursor, cursor_types=(int,)
        )
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
