"""Partner webhooks on the real test cluster: outbox -> deliveries -> signed POSTs to a local receiver."""
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from app.catalog.models import ListingEvent
from app.catalog.services import create_item, delete_item, update_item
from app.orders.services import buy_listing
from app.partners.keys import issue_key
from app.partners.models import Partner, WebhookDelivery, WebhookEndpoint
from app.partners.webhooks import run_webhooks
from app.partners.webhooks.delivery import deliver_due
from app.partners.webhooks.outbox import dispatch_events
from app.partners.webhooks.signing import event_body, sign, verify_signature
from app.wallet.services import deposit
from sharding.ids import shard_of_id
from sharding.placement import all_workers, node_for_id, node_for_user
from sharding.transactions import atomic_on_nodes
from tests.conftest import all_homes, home_of_shard, home_of_user

pytestmark = pytest.mark.usefixtures("clean_marketplace")

URL = "/api/partner/v1/webhooks"


class Receiver:
    """A local HTTP server recording every POST as (headers, body); answers 500 while `down`."""

    def __init__(self):
        self.received = []
        self.down = False
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 500 if receiver.down else 200
                with receiver.lock:
                    receiver.received.append({"headers": dict(self.headers), "body": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ok(self):
        return [r for r in self.received if r["status"] == 200]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def make_partner(name, scopes=("products:read", "webhooks:manage")):
    partner = Partner.objects.create(name=name)
    _, plaintext = issue_key(partner, list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plaintext}")
    return partner, client


def users_on_every_worker(per_worker=2):
    """At least `per_worker` users on each worker (ids are placed by id mod the logical shard count), by home."""
    User = get_user_model()
    by_worker = {home: [] for home in all_homes()}
    n = 0
    while any(len(users) < per_worker for users in by_worker.values()):
        n += 1
        user = User.objects.create(username=f"wh-user-{n}", email=f"wh{n}@example.com")
        by_worker[home_of_user(user.id)].append(user)
        assert n < 200
    return by_worker


def buy(buyer, item):
    with atomic_on_nodes([node_for_user(buyer.id)]):
        deposit(buyer.id, item.price)
    with atomic_on_nodes([node_for_user(buyer.id), node_for_id(item.id)]):
        buy_listing(buyer, item.id, item.price)


def register(client, url, events=("listing.created", "listing.updated", "listing.sold", "listing.deleted")):
    response = client.post(URL, {"url": url, "events": list(events)}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def all_deliveries():
    return [d for alias in all_workers() for d in WebhookDelivery.objects.using(alias).all()]


def make_due():
    for alias in all_workers():
        WebhookDelivery.objects.using(alias).filter(status=WebhookDelivery.PENDING).update(next_attempt_at=timezone.now())


def make_changes(users):
    """Create, update, sell and delete listings of users on both workers; the expected (type, item id) pairs."""
    (w1a, w1b), (w2a, w2b) = (users[home][:2] for home in list(users)[:2])
    expected = []
    for seller, buyer in ((w1a, w2a), (w2b, w1b), (w1a, w1b)):  # cross-worker sales and a same-worker one
        kept = create_item(owner=seller, title=f"Lamp of {seller.username}", price=1500)
        sold = create_item(owner=seller, title=f"Chair of {seller.username}", price=2500)
        gone = create_item(owner=seller, title=f"Desk of {seller.username}", price=3500)
        expected += [("listing.created", kept.id), ("listing.created", sold.id), ("listing.created", gone.id)]
        update_item(owner_id=seller.id, item_id=kept.id, changes={"price": 1600})
        expected.append(("listing.updated", kept.id))
        buy(buyer, sold)
        expected.append(("listing.sold", sold.id))
        delete_item(owner_id=seller.id, item_id=gone.id)
        expected.append(("listing.deleted", gone.id))
    return expected


def test_every_change_is_delivered_signed(receiver):
    users = users_on_every_worker()
    _, client = make_partner("acme")
    create_item(owner=next(iter(users.values()))[0], title="Before the endpoint existed", price=100)
    time.sleep(0.01)
    endpoint = register(client, receiver.url)
    expected = make_changes(users)

    for _ in range(3):
        run_webhooks()

    got = [(r["headers"], r["body"]) for r in receiver.ok()]
    bodies = [json.loads(body) for _, body in got]
    assert sorted((b["type"], int(b["data"]["id"])) for b in bodies) == sorted(expected)
    assert len({b["id"] for b in bodies}) == len(bodies) == len(expected)  # one each, ids unique
    assert {home_of_shard(shard_of_id(int(b["data"]["id"]))) for b in bodies} == set(list(users)[:2])
    for headers, body in got:
        event = json.loads(body)
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Marketplace-Event-Id"] == event["id"]
        assert verify_signature(
            endpoint["secret"], headers["X-Marketplace-Timestamp"], body, headers["X-Marketplace-Signature"]
        )
        assert set(event) == {"id", "type", "created_at", "data"}
    sold = next(b for b in bodies if b["type"] == "listing.sold")
    assert sold["data"]["status"] == "sold" and sold["data"]["price"] == "25.00"
    assert all(d.status == WebhookDelivery.DELIVERED and d.delivered_at for d in all_deliveries())
    for alias in all_workers():
        assert not ListingEvent.objects.using(alias).filter(dispatched_at=None).exists()

    # Forgeries do not verify.
    headers, body = got[0]
    ts, sig = headers["X-Marketplace-Timestamp"], headers["X-Marketplace-Signature"]
    assert not verify_signature("0" * 64, ts, body, sig)
    assert not verify_signature(endpoint["secret"], ts, body.replace(b'"data"', b'"data" '), sig)
    assert not verify_signature(endpoint["secret"], str(int(ts) + 1), body, sig)
    old = int(time.time()) - 301
    assert not verify_signature(endpoint["secret"], old, body, sign(endpoint["secret"], old, body))
    assert not verify_signature(endpoint["secret"], "not-a-number", body, sig)
    assert not verify_signature(endpoint["secret"], ts, body, "")


def test_only_subscribed_events_and_active_endpoints(receiver):
    users = users_on_every_worker(per_worker=1)
    seller = next(iter(users.values()))[0]
    _, client = make_partner("acme")
    register(client, receiver.url, events=["listing.deleted"])
    inactive = register(client, receiver.url + "/inactive")
    WebhookEndpoint.objects.filter(id=inactive["id"]).update(is_active=False)
    item = create_item(owner=seller, title="Vase", price=900)
    delete_item(owner_id=seller.id, item_id=item.id)
    run_webhooks()
    assert [json.loads(r["body"])["type"] for r in receiver.received] == ["listing.deleted"]


@pytest.mark.own_engine  # one failed attempt per worker and run: each delivery tried once while down needs one each
def test_receiver_down_then_back(receiver):
    users = users_on_every_worker(per_worker=1)
    _, client = make_partner("acme")
    endpoint = register(client, receiver.url)
    items = [
        create_item(owner=user, title=f"Bike {n}", price=5000)
        for n, user in enumerate(u for us in users.values() for u in us)
    ]

    receiver.down = True
    dispatch_events()
    deliver_due()
    deliver_due()  # nothing is due yet: the backoff holds them back
    deliveries = all_deliveries()
    assert len(deliveries) == len(items) == len(receiver.received)
    now = timezone.now()
    for d in deliveries:
        assert d.status == WebhookDelivery.PENDING and d.attempts == 1 and d.next_attempt_at > now
        assert d.last_error.startswith("HTTP 500")
    assert WebhookEndpoint.objects.get(id=endpoint["id"]).consecutive_failures == len(items)

    make_due()
    deliver_due()
    assert {d.attempts for d in all_deliveries()} == {2}

    receiver.down = False
    make_due()
    run_webhooks()
    deliveries = all_deliveries()
    assert {d.status for d in deliveries} == {WebhookDelivery.DELIVERED}
    delivered_ids = {json.loads(r["body"])["id"] for r in receiver.ok()}
    assert delivered_ids == {str(d.event_id) for d in deliveries}
    assert len(delivered_ids) == len(items)
    for r in receiver.received:  # retries are signed afresh, with the same event id
        assert verify_signature(
            endpoint["secret"], r["headers"]["X-Marketplace-Timestamp"], r["body"],
            r["headers"]["X-Marketplace-Signature"],
        )
    assert WebhookEndpoint.objects.get(id=endpoint["id"]).consecutive_failures == 0


def test_gives_up_after_max_attempts(receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    users = users_on_every_worker(per_worker=1)
    _, client = make_partner("acme")
    register(client, receiver.url)
    create_item(owner=next(iter(users.values()))[0], title="Lamp", price=100)
    receiver.down = True
    dispatch_events()
    for _ in range(5):
        make_due()
        deliver_due()
    (delivery,) = all_deliveries()
    assert delivery.status == WebhookDelivery.FAILED and delivery.attempts == 3
    assert len(receiver.received) == 3


def test_repeated_failures_disable_the_endpoint(receiver, settings):
    settings.WEBHOOK_DISABLE_AFTER = 3
    users = users_on_every_worker(per_worker=1)
    seller = next(iter(users.values()))[0]
    _, client = make_partner("acme")
    endpoint = register(client, receiver.url)
    receiver.down = True
    create_item(owner=seller, title="Lamp", price=100)
    dispatch_events()
    for _ in range(3):
        make_due()
        deliver_due()
    stored = WebhookEndpoint.objects.get(id=endpoint["id"])
    assert not stored.is_active and stored.disabled_at is not None and stored.consecutive_failures == 3
    sent = len(receiver.received)
    assert sent == 3

    # Nothing more is sent to it: the pending delivery fails when due, new events are not queued for it.
    receiver.down = False
    create_item(owner=seller, title="Chair", price=100)
    make_due()
    run_webhooks()
    assert len(receiver.received) == sent
    (delivery,) = all_deliveries()
    assert delivery.status == WebhookDelivery.FAILED and delivery.last_error == "endpoint disabled"
    listed = client.get(URL).json()["results"]
    assert listed[0]["is_active"] is False


def test_deleted_endpoint_gets_nothing(receiver):
    users = users_on_every_worker(per_worker=1)
    _, client = make_partner("acme")
    endpoint = register(client, receiver.url)
    create_item(owner=next(iter(users.values()))[0], title="Lamp", price=100)
    dispatch_events()
    assert client.delete(f"{URL}/{endpoint['id']}").status_code == 204
    deliver_due()
    assert receiver.received == []
    (delivery,) = all_deliveries()
    assert delivery.status == WebhookDelivery.FAILED and delivery.last_error == "endpoint disabled"


def test_two_dispatchers_never_double_dispatch(receiver):
    users = users_on_every_worker(per_worker=1)
    _, client = make_partner("acme")
    register(client, receiver.url)
    for n, user in enumerate(u for us in users.values() for u in us):
        for k in range(20):
            create_item(owner=user, title=f"Thing {n}-{k}", price=100)
    results = []

    def dispatch():
        try:
            results.append(dispatch_events(batch=7))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=dispatch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == len(all_deliveries()) == 20 * sum(len(us) for us in users.values())


def test_signature_helpers():
    body = event_body(
        type("E", (), {"id": 7, "event_type": "listing.sold", "created_at": timezone.now(), "payload": {"a": 1}})()
    )
    now = int(time.time())
    assert verify_signature("s3cret", now, body, sign("s3cret", now, body))
    assert verify_signature("s3cret", str(now), body.decode(), sign("s3cret", now, body))
    assert verify_signature("s3cret", now, body, "v0=abc, " + sign("s3cret", now, body))
    assert not verify_signature("s3cret", now + 400, body, sign("s3cret", now + 400, body))


# --- the endpoints API ---------------------------------------------------------------------------------------------

def test_api_auth_and_scopes(receiver):
    assert APIClient().get(URL).status_code == 401
    assert APIClient().post(URL, {"url": receiver.url, "events": ["listing.sold"]}, format="json").status_code == 401
    _, reader = make_partner("reader", scopes=["products:read"])
    response = reader.get(URL)
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert reader.post(URL, {"url": receiver.url, "events": ["listing.sold"]}, format="json").status_code == 403
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Api-Key mk_nothing_here")
    assert bad.get(URL).status_code == 401


@pytest.mark.parametrize("payload", [
    {"url": "ftp://127.0.0.1/x", "events": ["listing.sold"]},
    {"url": "not a url", "events": ["listing.sold"]},
    {"url": "javascript:alert(1)", "events": ["listing.sold"]},
    {"events": ["listing.sold"]},
    {"url": "http://127.0.0.1/x", "events": []},
    {"url": "http://127.0.0.1/x", "events": ["listing.exploded"]},
    {"url": "http://127.0.0.1/x", "events": "listing.sold"},
    {"url": "http://127.0.0.1/x"},
])
def test_api_rejects_bad_input(payload):
    _, client = make_partner("acme")
    response = client.post(URL, payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
    assert not WebhookEndpoint.objects.exists()


def test_production_requires_public_https_on_a_usual_port(settings):
    # As app.settings has them in production.
    settings.PRODUCTION, settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True, False
    _, client = make_partner("acme")
    for url in (
        "http://hooks.example.com/x", "https://127.0.0.1/x", "https://localhost/x", "https://10.0.0.5/x",
        "https://169.254.169.254/latest", "https://[::1]/x", "https://[::ffff:127.0.0.1]/x", "https://[fe80::1]/x",
        "https://hooks.example.com:8443/x", "https://hooks.example.com:22/x", "https://hooks.example.com:99999/x",
    ):
        response = client.post(URL, {"url": url, "events": ["listing.sold"]}, format="json")
        assert response.status_code == 400, url
        assert response.json()["error"]["code"] == "validation_error", url
    for url in ("https://hooks.example.com/x", "https://hooks.example.com:443/y", "https://93.184.215.14/x"):
        assert client.post(URL, {"url": url, "events": ["listing.sold"]}, format="json").status_code == 201, url
    settings.WEBHOOK_ALLOWED_PORTS = (443, 8443)
    assert client.post(URL, {"url": "https://hooks.example.com:8443/x", "events": ["listing.sold"]},
                       format="json").status_code == 201


def test_api_create_list_delete(receiver):
    mine, client = make_partner("acme")
    _, other = make_partner("globex")
    created = register(client, "http://localhost:9/hooks", events=["listing.sold", "listing.created", "listing.sold"])
    assert set(created) == {"id", "url", "events", "is_active", "created_at", "disabled_at", "secret"}
    assert isinstance(created["id"], str) and len(created["secret"]) == 64 and created["is_active"] is True
    assert created["events"] == ["listing.created", "listing.sold"]
    theirs = register(other, "https://example.com/theirs")
    assert theirs["secret"] != created["secret"]

    listed = client.get(URL).json()["results"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]

    assert client.delete(f"{URL}/{theirs['id']}").status_code == 404
    assert client.delete(f"{URL}/not-a-number").status_code == 404
    assert client.delete(f"{URL}/99999999999999999999999").status_code == 404
    assert WebhookEndpoint.objects.filter(id=theirs["id"]).exists()
    assert client.delete(f"{URL}/{created['id']}").status_code == 204
    assert client.get(URL).json() == {"results": []}
    assert client.delete(f"{URL}/{created['id']}").status_code == 404
    assert [e["id"] for e in other.get(URL).json()["results"]] == [theirs["id"]]


def test_a_down_endpoint_costs_one_attempt_per_run_and_does_not_hold_up_others(receiver):
    users = users_on_every_worker(per_worker=1)
    seller = next(iter(users.values()))[0]
    healthy = Receiver()
    try:
        _, client = make_partner("acme")
        down = register(client, receiver.url)
        up = register(client, healthy.url)
        for n in range(4):
            create_item(owner=seller, title=f"Lamp {n}", price=100)
        receiver.down = True
        run_webhooks()
        assert len(receiver.received) == 1  # the first failure holds the endpoint's other deliveries back
        assert len(healthy.ok()) == 4
        mine = sorted((d for d in all_deliveries() if d.endpoint_id == int(down["id"])), key=lambda d: d.attempts)
        assert [d.attempts for d in mine] == [0, 0, 0, 1]
        assert all(d.status == WebhookDelivery.PENDING and d.next_attempt_at > timezone.now() for d in mine)
        assert {d.status for d in all_deliveries() if d.endpoint_id == int(up["id"])} == {WebhookDelivery.DELIVERED}

        receiver.down = False
        make_due()
        run_webhooks()
        assert len(receiver.ok()) == 4
        assert {d.status for d in all_deliveries()} == {WebhookDelivery.DELIVERED}
    finally:
        healthy.close()


def test_an_outcome_is_recorded_only_while_the_claim_is_ours(receiver, monkeypatch):
    from app.partners.webhooks import delivery as sending

    users = users_on_every_worker(per_worker=1)
    seller = next(iter(users.values()))[0]
    _, client = make_partner("acme")
    register(client, receiver.url)
    create_item(owner=seller, title="Lamp", price=100)
    dispatch_events()
    real_post = sending.post_event

    def slow_post(endpoint, event, timeout):  # the lease ran out meanwhile and another process claimed the delivery
        try:
            WebhookDelivery.objects.using(node_for_user(seller.id)).update(
                next_attempt_at=timezone.now() + timedelta(hours=5)
            )
        finally:
            connections.close_all()  # this runs in a sending thread
        return real_post(endpoint, event, timeout)

    monkeypatch.setattr(sending, "post_event", slow_post)
    deliver_due()
    (delivery,) = all_deliveries()
    assert len(receiver.received) == 1
    assert delivery.status == WebhookDelivery.PENDING and delivery.attempts == 0  # the other claimant records it


def test_a_run_stops_sending_at_its_time_budget(receiver, settings):
    settings.WEBHOOK_RUN_SECONDS = 0
    users = users_on_every_worker(per_worker=1)
    _, client = make_partner("acme")
    register(client, receiver.url)
    create_item(owner=next(iter(users.values()))[0], title="Lamp", price=100)
    run_webhooks()
    (delivery,) = all_deliveries()
    assert receiver.received == [] and delivery.attempts == 0
    assert delivery.status == WebhookDelivery.PENDING and delivery.next_attempt_at <= timezone.now()  # released
    settings.WEBHOOK_RUN_SECONDS = 10
    run_webhooks()
    assert len(receiver.ok()) == 1
