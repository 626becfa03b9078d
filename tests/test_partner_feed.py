"""Partner API: keys, scopes, the rate limit, the product feed's incremental sync and the merchant feeds."""
import hashlib
import random
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from app.catalog.models import Item
from app.catalog.services import create_item, delete_item, update_item
from app.orders.services import buy_listing
from app.partners.keys import issue_key, revoke_key
from app.partners.models import ApiKey, Partner
from app.wallet.services import deposit
from sharding.placement import all_workers, node_for_id, node_for_user
from sharding.transactions import atomic_on_nodes
from tests.images import give_photo

pytestmark = pytest.mark.usefixtures("clean_marketplace")


@pytest.fixture
def partner_key():
    partner = Partner.objects.create(name="Acme")
    return issue_key(partner, ["products:read"])[1]


def partner_client(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def make_users(count):
    users = [get_user_model().objects.create_user(f"u{i}", f"u{i}@example.com") for i in range(count)]
    assert {node_for_user(user.id) for user in users} == set(all_workers())
    for user in users:
        with atomic_on_nodes([node_for_user(user.id)]):
            deposit(user.id, 10_000_000)
    return users


def listed_everywhere():
    listed = {}
    for alias in all_workers():
        for item in Item.objects.using(alias).filter(status=Item.LISTED):
            listed[str(item.id)] = (item.title, f"{item.price // 100}.{item.price % 100:02d}")
    return listed


def sync(client, store, cursor, page_size):
    """What a partner does: apply every change in order and keep the last cursor."""
    seen = []
    while True:
        params = {"page_size": page_size, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/partner/v1/products", params)
        assert response.status_code == 200, response.json()
        body = response.json()
        for record in body["results"]:
            seen.append((record["id"], record["updated_at"]))
            if record["status"] == "listed":
                store[record["id"]] = (record["title"], record["price"])
            else:
                store.pop(record["id"], None)
        cursor = body["next"]
        if not body["has_more"]:
            return cursor, seen


@pytest.mark.parametrize("seed", range(6))
def test_incremental_sync_ends_with_exactly_the_listed_items(partner_key, seed, settings):
    settings.PARTNER_RATE_LIMIT = "100000/min"
    rng = random.Random(seed)
    users = make_users(4)
    client = partner_client(partner_key)
    store, cursor, changes_seen = {}, None, []
    items = []
    for step in range(60):
        op = rng.choice(["create", "create", "edit", "unlist", "relist", "sell", "delete", "sync"])
        owner = rng.choice(users)
        live = [item for item in items if item.status != Item.SOLD and not getattr(item, "gone", False)]
        if op == "create" or not live:
            items.append(create_item(owner=owner, title=f"thing {step}", price=rng.randint(100, 5000), category="misc"))
        elif op == "edit":
            item = rng.choice(live)
            update_item(owner_id=item.user_id, item_id=item.id,
                        changes={"title": f"edited {step}", "price": rng.randint(100, 5000)})
        elif op in ("unlist", "relist"):
            item = rng.choice(live)
            item.status = Item.UNLISTED if op == "unlist" else Item.LISTED
            update_item(owner_id=item.user_id, item_id=item.id, changes={"status": item.status})
        elif op == "sell":
            listed = [item for item in live if item.status == Item.LISTED]
            if listed:
                item = rng.choice(listed)
                buyer = next(user for user in users if user.id != item.user_id)
                current = Item.objects.using(node_for_id(item.id)).get(id=item.id)
                with atomic_on_nodes([node_for_user(buyer.id), node_for_id(item.id)]):
                    buy_listing(buyer, item.id, current.price)
                item.status = Item.SOLD
        elif op == "delete":
            item = rng.choice(live)
            delete_item(owner_id=item.user_id, item_id=item.id)
            item.gone = True
        else:
            cursor, seen = sync(client, store, cursor, rng.choice([1, 3, 10]))
            changes_seen += seen
    cursor, seen = sync(client, store, cursor, 7)
    changes_seen += seen

    assert store == listed_everywhere()
    assert len(changes_seen) == len(set(changes_seen)), "a change was delivered twice"
    # Polling again with the last cursor brings nothing new.
    assert sync(client, store, cursor, 50)[1] == []


def test_feed_records_hide_what_is_not_public(partner_key):
    seller, buyer = make_users(2)
    listing = create_item(owner=seller, title="Lamp", price=1000)
    with atomic_on_nodes([node_for_user(buyer.id), node_for_id(listing.id)]):
        purchase = buy_listing(buyer, listing.id, 1000)
    products = partner_client(partner_key).get("/api/partner/v1/products", {"page_size": 100}).json()["results"]
    records = {r["id"]: r for r in products}
    sold = records[str(listing.id)]
    assert sold["status"] == "sold" and sold["title"] == "Lamp"
    assert sold["seller"] == {"id": str(seller.id), "username": seller.username}
    assert sold["link"].endswith(f"/items/{listing.id}/")
    # The buyer's copy is private inventory: only its id and status.
    assert set(records[str(purchase.item_id)]) == {"id", "status", "updated_at"}


def test_product_detail_and_merchant_feeds(partner_key):
    (seller,) = make_users(2)[:1]
    listed = create_item(owner=seller, title="Tea\tpot", description="Blue\nand white", price=1500, category="home")
    hidden = create_item(owner=seller, title="Secret", price=100)
    update_item(owner_id=seller.id, item_id=hidden.id, changes={"status": Item.UNLISTED})
    client = partner_client(partner_key)
    detail = client.get(f"/api/partner/v1/products/{listed.id}").json()
    assert detail["price"] == "15.00" and detail["currency"] == "USD"
    assert client.get(f"/api/partner/v1/products/{hidden.id}").status_code == 404
    assert client.get("/api/partner/v1/products/abc").status_code == 404

    unpictured = create_item(owner=seller, title="No photo", price=700)
    photo = give_photo(listed)
    image_link = f"http://127.0.0.1:8000{settings.MEDIA_URL}{photo.image}"
    assert client.get(f"/api/partner/v1/products/{listed.id}").json()["photos"][0]["url"] == image_link

    tsv = client.get("/api/partner/v1/feeds/google.tsv")
    assert tsv.streaming
    lines = b"".join(tsv.streaming_content).decode().splitlines()
    assert lines[0].split("\t") == ["id", "title", "description", "link", "image_link", "additional_image_link",
                                    "availability", "price", "condition", "external_seller_id"]
    assert lines[1:] == [f"{listed.id}\tTea pot\tBlue and white\thttp://127.0.0.1:8000/items/{listed.id}/"
                         f"\t{image_link}\t\tin_stock\t15.00 USD\tused\t{seller.id}"]
    assert str(unpictured.id) not in "".join(lines)  # no photo: Google would refuse it
    xml = b"".join(client.get("/api/partner/v1/feeds/google.xml").streaming_content).decode()
    assert f"<g:id>{listed.id}</g:id>" in xml and "<g:price>15.00 USD</g:price>" in xml and "Secret" not in xml


def test_keys_are_hashed_at_rest_and_revoked_keys_refused(partner_key):
    stored = ApiKey.objects.get()
    assert partner_key not in (stored.key_hash, stored.prefix)
    assert stored.key_hash == hashlib.sha256(partner_key.encode()).hexdigest()
    client = partner_client(partner_key)
    assert client.get("/api/partner/v1/products").status_code == 200
    revoke_key(stored.prefix)
    response = client.get("/api/partner/v1/products")
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    for bad in ("mk_nope_x", partner_key + "x", ""):
        assert partner_client(bad).get("/api/partner/v1/products").status_code == 401


def test_missing_scope_is_403_and_no_key_is_401():
    _, webhooks_only = issue_key(Partner.objects.create(name="Hooks"), ["webhooks:manage"])
    response = partner_client(webhooks_only).get("/api/partner/v1/products")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    response = APIClient().get("/api/partner/v1/products")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_bad_feed_parameters_are_400(partner_key):
    client = partner_client(partner_key)
    for params in ({"updated_since": "yesterday"}, {"cursor": "zzz"}, {"page_size": "0"}):
        assert client.get("/api/partner/v1/products", params).status_code == 400


def _start_server(port):
    import os

    return subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PARTNER_RATE_LIMIT": "60/min"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_61st_request_in_a_minute_is_429_across_two_server_processes(partner_key):
    ports = [_free_port(), _free_port()]
    servers = [_start_server(port) for port in ports]
    try:
        for port in ports:
            for _ in range(100):
                try:
                    requests.get(f"http://127.0.0.1:{port}/health/", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.2)
        # Start at a fresh window so all 61 requests fall in one.
        time.sleep(60 - time.time() % 60 if time.time() % 60 > 45 else 0)
        headers = {"Authorization": f"Api-Key {partner_key}"}
        statuses = [
            requests.get(
                f"http://127.0.0.1:{ports[n % 2]}/api/partner/v1/products?page_size=1", headers=headers, timeout=30
            )
            for n in range(61)
        ]
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
    assert [r.status_code for r in statuses[:60]] == [200] * 60
    assert statuses[60].status_code == 429
    assert statuses[60].json()["error"]["code"] == "throttled"
    assert int(statuses[60].headers["Retry-After"]) in range(1, 61)


def test_filters_never_match_what_is_not_public(partner_key):
    """`q` and `category` must not tell a partner which unlisted items hold a private word or category: unlisted
    items are removal records in a filtered feed whether or not they match."""
    (seller,) = make_users(2)[:1]
    secret = create_item(owner=seller, title="Diary", description="zanzibarword inside", price=100,
                         category="privatecat")
    other = create_item(owner=seller, title="Old shoe", description="nothing to see", price=100, category="shoes")
    for item in (secret, other):
        update_item(owner_id=seller.id, item_id=item.id, changes={"status": Item.UNLISTED})
    public = create_item(owner=seller, title="Map of zanzibarword", price=500, category="privatecat")
    plain = create_item(owner=seller, title="Chair", price=700, category="home")
    client = partner_client(partner_key)

    def feed(**params):
        response = client.get("/api/partner/v1/products", {"page_size": 100, **params})
        assert response.status_code == 200, response.json()
        return {record["id"]: record for record in response.json()["results"]}

    unlisted = {str(secret.id), str(other.id)}
    for params in ({"q": "zanzibarword"}, {"q": "shoe"}, {"category": "privatecat"}, {"category": "shoes"},
                   {"q": "zanzibarword", "category": "privatecat"}, {"q": "nothing-matches-this"}):
        records = feed(**params)
        hidden = {id_ for id_, record in records.items() if record["status"] == "unlisted"}
        assert hidden == unlisted, params  # the same whatever the filter says
        assert all(set(records[id_]) == {"id", "status", "updated_at"} for id_ in hidden)
    assert set(feed(q="zanzibarword")) - unlisted == {str(public.id)}
    assert set(feed(category="privatecat")) - unlisted == {str(public.id)}
    assert set(feed(category="home")) - unlisted == {str(plain.id)}
    assert set(feed(q="shoe")) - unlisted == set()
    # Unfiltered, everything is there: public items in full, unlisted ones as removal records.
    assert set(feed()) == unlisted | {str(public.id), str(plain.id)}
