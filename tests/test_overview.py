"""The account overview matches the ledger and order tables exactly, for users on every worker."""
import pytest
from django.contrib.auth import get_user_model
from django.db.models import Sum
from rest_framework.test import APIClient

from app.catalog.models import Item
from app.catalog.services import create_item, update_item
from app.orders.models import Purchase, Sale
from app.orders.services import buy_listing
from app.wallet.models import Wallet
from app.wallet.services import deposit
from sharding.placement import node_for_id, node_for_user
from sharding.transactions import atomic_on_nodes
from tests.conftest import worker_names

pytestmark = pytest.mark.usefixtures("clean_marketplace")


def make_users(count):
    users = [get_user_model().objects.create_user(f"user{i}", f"user{i}@example.com") for i in range(count)]
    assert {node_for_user(user.id) for user in users} == set(worker_names())
    return users


def buy(buyer, item):
    with atomic_on_nodes([node_for_user(buyer.id), node_for_id(item.id)]):
        return buy_listing(buyer, item.id, item.price)


def overview(user):
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/v1/me/overview")
    assert response.status_code == 200
    return response.json()


def cents(text):
    whole, _, fraction = text.partition(".")
    return int(whole) * 100 + int(fraction)


def test_overview_matches_the_tables_for_users_on_every_worker():
    users = make_users(4)
    for user in users:
        with atomic_on_nodes([node_for_user(user.id)]):
            deposit(user.id, 100_000)
    items = {
        user.id: [create_item(owner=user, title=f"thing {n}", price=1000 + n * 7) for n in range(10)] for user in users
    }
    update_item(owner_id=users[0].id, item_id=items[users[0].id][0].id, changes={"status": Item.UNLISTED})
    for buyer_index, buyer in enumerate(users):
        for offset in (1, 2):
            seller = users[(buyer_index + offset) % len(users)]
            buy(buyer, items[seller.id][buyer_index * 2 + offset])

    for user in users:
        alias = node_for_user(user.id)
        found = overview(user)
        spent = Purchase.objects.using(alias).filter(user_id=user.id).aggregate(total=Sum("price"))["total"]
        earned = Sale.objects.using(alias).filter(user_id=user.id).aggregate(total=Sum("price"))["total"]
        owned = Item.objects.using(alias).filter(user_id=user.id).exclude(status=Item.SOLD)
        assert cents(found["balance"]) == Wallet.objects.using(alias).get(user_id=user.id).balance
        assert cents(found["balance"]) == 100_000 - spent + earned
        assert cents(found["total_spent"]) == spent and cents(found["total_earned"]) == earned
        assert found["inventory"]["count"] == owned.count()
        assert found["listed"]["count"] == owned.filter(status=Item.LISTED).count()
        assert found["purchased"]["count"] == 2 and found["sold"]["count"] == 2
        latest = [str(i) for i in owned.order_by("-id").values_list("id", flat=True)[:5]]
        assert [item["id"] for item in found["inventory"]["latest"]] == latest
        assert all(item["status"] == "listed" for item in found["listed"]["latest"])


def test_new_user_overview_is_empty_and_zero():
    (user,) = make_users(2)[:1]
    found = overview(user)
    assert found["balance"] == "0.00" and found["total_spent"] == "0.00" and found["total_earned"] == "0.00"
    assert all(found[section] == {"count": 0, "latest": []} for section in ("inventory", "listed", "purchased", "sold"))


def test_overview_needs_a_login():
    response = APIClient().get("/api/v1/me/overview")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
