"""The account overview: everything on the user's own worker, no fan-out."""
from django.db.models import Count, Sum

from app.catalog.models import Item
from app.catalog.selectors import attach_photos, inventory_of
from app.orders.selectors import purchases_of, sales_of
from app.wallet.selectors import balance_of

LATEST = 5


def account_overview(user_id):
    inventory = inventory_of(user_id)
    listed = inventory.filter(status=Item.LISTED)
    purchases, sales = purchases_of(user_id), sales_of(user_id)
    bought = purchases.aggregate(count=Count("id"), total=Sum("price"))
    sold = sales.aggregate(count=Count("id"), total=Sum("price"))
    return {
        "balance": balance_of(user_id),
        "inventory": {"count": inventory.count(), "latest": attach_photos(inventory.order_by("-id")[:LATEST])},
        "listed": {"count": listed.count(), "latest": attach_photos(listed.order_by("-id")[:LATEST])},
        "purchased": {"count": bought["count"], "latest": list(purchases.order_by("-id")[:LATEST])},
        "sold": {"count": sold["count"], "latest": list(sales.order_by("-id")[:LATEST])},
        "total_spent": bought["total"] or 0,
        "total_earned": sold["total"] or 0,
    }
