from django.db import models

from sharding.models import ShardedModel


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

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gt=0), name="item_price_positive"),
            models.CheckConstraint(condition=models.Q(status__in=["listed", "unlisted", "sold"]), name="item_status_known"),
        ]
        indexes = [models.Index(fields=["user_id", "status", "-id"], name="item_owner_status_newest")]
