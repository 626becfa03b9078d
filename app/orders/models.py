from django.db import models

from sharding.models import ShardedModel


class OrderRecord(ShardedModel):
    """What both sides of an order keep: the listing's title and category, and the price paid."""

    title = models.CharField(max_length=200)
    category = models.CharField(max_length=50, blank=True, default="")
    price = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class Purchase(OrderRecord):
    """The buyer's record of a purchase, on the buyer's shard."""

    item_id = models.BigIntegerField()  # the buyer's new inventory item
    source_item_id = models.BigIntegerField()  # the listing bought, on the seller's shard
    seller_id = models.BigIntegerField()
    seller_username = models.CharField(max_length=150)
    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source_item_id"], name="purchase_one_per_listing"),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="purchase_price_positive"),
        ]
        indexes = [
            models.Index(fields=["user_id", "-id"], name="purchase_buyer_newest"),
            models.Index(fields=["created_at"], name="purchase_created"),  # platform report by date
        ]


class Sale(OrderRecord):
    """The seller's record of a sale, on the seller's shard. A listing can be sold once."""

    item_id = models.BigIntegerField()  # the listing sold
    purchase_id = models.BigIntegerField()
    buyer_id = models.BigIntegerField()
    buyer_username = models.CharField(max_length=150)
    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item_id"], name="sale_one_per_listing"),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="sale_price_positive"),
        ]
        indexes = [
            models.Index(fields=["user_id", "-id"], name="sale_seller_newest"),
            models.Index(fields=["created_at"], name="sale_created"),  # platform report by date
        ]
