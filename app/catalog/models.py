from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models

from sharding.models import ShardedModel

LISTED_ONLY = models.Q(status="listed")


class Item(ShardedModel):
    """Something a user owns: listed for sale, kept unlisted, or sold (a closed listing, kept for history)."""

    LISTED, UNLISTED, SOLD = "listed", "unlisted", "sold"
    STATUSES = [(LISTED, "Listed"), (UNLISTED, "Unlisted"), (SOLD, "Sold")]

    owner_username = models.CharField(max_length=150)  # copied from the coordinator: no cross-node join
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    category = models.CharField(max_length=50, blank=True, default="")
    price = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=STATUSES, default=LISTED)
    source_item_id = models.BigIntegerField(null=True)  # the listing this item was bought from
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sold_at = models.DateTimeField(null=True)
    # Weighted full-text document: the title counts more than the description.
    search_vector = models.GeneratedField(
        expression=SearchVector("title", config="english", weight="A")
        + SearchVector("description", config="english", weight="B"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gt=0), name="item_price_positive"),
            models.CheckConstraint(
                condition=models.Q(status__in=["listed", "unlisted", "sold"]), name="item_status_known"
            ),
        ]
        indexes = [
            models.Index(fields=["user_id", "status", "-id"], name="item_owner_status_newest"),
            models.Index(fields=["updated_at", "id"], name="item_feed_order"),  # partner feed
            # Search and browse only ever look at listed items: partial indexes stay small.
            models.Index(fields=["-id"], condition=LISTED_ONLY, name="item_listed_newest"),
            models.Index(fields=["price", "id"], condition=LISTED_ONLY, name="item_listed_price"),
            models.Index(fields=["category", "-id"], condition=LISTED_ONLY, name="item_listed_category_newest"),
            # Without it, a category sorted by price walks item_listed_price and filters (EXPLAIN: 287 ms).
            models.Index(fields=["category", "price", "id"], condition=LISTED_ONLY, name="item_listed_category_price"),
            GinIndex(fields=["search_vector"], condition=LISTED_ONLY, name="item_listed_search"),
            GinIndex(
                fields=["title"], opclasses=["gin_trgm_ops"], condition=LISTED_ONLY, name="item_listed_title_trgm"
            ),
        ]

    @property
    def photos(self):
        """Its photos in display order (app.catalog.selectors.photos_of: loaded once, or by attach_photos)."""
        from .selectors import photos_of
        return photos_of(self)

    @property
    def cover_photo(self):
        """The first photo, or None: what lists and cards show."""
        photos = self.photos
        return photos[0] if photos else None


class ItemTombstone(ShardedModel):
    """A deleted item, so the partner feed can tell partners to drop it."""

    item_id = models.BigIntegerField(unique=True)
    deleted_at = models.DateTimeField()  # clock_timestamp() of the delete, like Item.updated_at

    class Meta:
        indexes = [models.Index(fields=["deleted_at", "item_id"], name="tombstone_feed_order")]


class ListingEvent(ShardedModel):
    """The outbox: a change to a listing, written in the same transaction as the change.

    The webhook delivery loop turns each event into deliveries to the
    partners' endpoints; `dispatched_at` marks events it has done so.
    """

    CREATED, UPDATED, SOLD, DELETED = "listing.created", "listing.updated", "listing.sold", "listing.deleted"

    event_type = models.CharField(max_length=32)
    item_id = models.BigIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["id"], condition=models.Q(dispatched_at=None), name="listing_event_undispatched")
        ]


class Photo(ShardedModel):
    """A photo of an item, on the item's worker and in the same logical shard (a shard move carries it).

    The files live in Django's default storage under unguessable names (app.catalog.images.new_name): the
    full size (longest side at most 2,000 px) and a thumbnail (at most 800 px), both re-encoded as JPEG with
    no metadata. `position` is the display order (0 first). The files are deleted with the row, after its
    transaction commits; `manage.py maintenance` deletes any whose row is gone (app.catalog.photos).
    """

    item_id = models.BigIntegerField()
    position = models.SmallIntegerField(default=0)
    image = models.CharField(max_length=255)  # the full size's name in the storage
    width = models.IntegerField()
    height = models.IntegerField()
    thumbnail = models.CharField(max_length=255)
    thumbnail_width = models.IntegerField()
    thumbnail_height = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(position__gte=0), name="photo_position_non_negative"),
            models.CheckConstraint(condition=models.Q(width__gt=0, height__gt=0, thumbnail_width__gt=0,
                                                      thumbnail_height__gt=0), name="photo_size_positive"),
        ]
        indexes = [models.Index(fields=["item_id", "position", "id"], name="photo_item_order")]

    @property
    def url(self):
        """The full size's URL as the storage gives it (relative, /media/..., for the local filesystem)."""
        from .images import storage_url
        return storage_url(self.image)

    @property
    def thumbnail_url(self):
        from .images import storage_url
        return storage_url(self.thumbnail)
