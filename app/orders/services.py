"""Buying a listed item: money and ownership move in one atomic step.

place_order is the whole operation: it finds the buyer's and the seller's
nodes, claims the Idempotency-Key and opens the transaction over both (one
local transaction when they share a worker, two-phase commit otherwise; see
app.core.idempotency.run_idempotent and sharding.transactions); buy_listing
is the step that moves money and ownership inside that transaction.
"""
from django.utils import timezone

from app.catalog.events import record_listing_event
from app.catalog.models import Item, ListingEvent
from app.catalog.services import copy_photos
from app.core.errors import Conflict, NotFound, ServiceError
from app.core.idempotency import IdempotentResult, fingerprint, run_idempotent
from app.core.money import format_money
from app.core.types import UserRef
from app.orders.error_codes import OrderErrorCode
from app.wallet.models import LedgerEntry
from app.wallet.services import lock_wallets, post_entry
from sharding.placement import node_for_id, node_for_user
from sharding.transactions import retry_when_moved

from .models import Purchase, Sale
from .serializers import PlacedOrderOut


@retry_when_moved
def place_order(*, buyer: UserRef, listing_id: int, expected_price: int, idempotency_key: str) -> IdempotentResult:
    """Buy a listing once per key: (status, body) of the first attempt with this key, a business error included."""
    return run_idempotent(
        user_id=buyer.id, key=idempotency_key,
        request_hash=fingerprint("purchase", {"item_id": listing_id, "expected_price": expected_price}),
        nodes=[node_for_id(listing_id)],
        operation=lambda: PlacedOrderOut(buy_listing(buyer, listing_id, expected_price)).data,
    )


def buy_listing(buyer: UserRef, listing_id: int, expected_price: int) -> Purchase:
    """Move the money and the item, inside a transaction on the buyer's and the listing's nodes."""
    seller_node, buyer_node = node_for_id(listing_id), node_for_user(buyer.id)
    # Lock the listing first, the wallets after (always in this order: no deadlock across nodes).
    listing = Item.objects.using(seller_node).select_for_update().filter(id=listing_id).first()
    if listing is None:
        raise NotFound("No such listing.")
    if listing.user_id == buyer.id:
        raise ServiceError("You can't buy your own item.", code=OrderErrorCode.OWN_ITEM)
    if listing.status != Item.LISTED:
        raise Conflict("This item is no longer for sale.", code=OrderErrorCode.ITEM_NOT_AVAILABLE)
    if listing.price != expected_price:
        raise Conflict(
            "The price has changed since you saw it; check the new price and try again.",
            code=OrderErrorCode.PRICE_CHANGED, details={"price": format_money(listing.price)},
        )
    wallets = lock_wallets(buyer.id, listing.user_id)

    listing.status, listing.sold_at = Item.SOLD, timezone.now()
    listing.save(using=seller_node, update_fields=["status", "sold_at", "updated_at"])
    record_listing_event(listing, ListingEvent.SOLD)
    bought = Item.objects.using(buyer_node).create(
        user_id=buyer.id, owner_username=buyer.username, title=listing.title, description=listing.description,
        category=listing.category, price=listing.price, status=Item.UNLISTED, source_item_id=listing.id,
    )
    purchase = Purchase.objects.using(buyer_node).create(
        user_id=buyer.id, item_id=bought.id, source_item_id=listing.id, seller_id=listing.user_id,
        seller_username=listing.owner_username, title=listing.title, category=listing.category, price=listing.price,
    )
    sale = Sale.objects.using(seller_node).create(
        user_id=listing.user_id, item_id=listing.id, purchase_id=purchase.id, buyer_id=buyer.id,
        buyer_username=buyer.username, title=listing.title, category=listing.category, price=listing.price,
    )
    purchase.buyer_balance = post_entry(
        wallets[buyer.id], -listing.price, LedgerEntry.PURCHASE, purchase.id
    ).balance_after
    post_entry(wallets[listing.user_id], listing.price, LedgerEntry.SALE, sale.id)
    # Last, once nothing can refuse the purchase any more: the resold item keeps its pictures (file copies
    # that the maintenance clean-up deletes should the transaction still roll back).
    copy_photos(source=listing, target=bought)
    return purchase
