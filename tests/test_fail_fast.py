"""A node that stops answering costs a few seconds, never a hang or a 500: the circuit breaker, partial
search, the partner feed's 503, and maintenance that a slow webhook receiver cannot hold up."""
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from rest_framework.test import APIClient

import cluster
from app.catalog.services import create_item
from app.partners.http import PostFailed, post_bounded
from app.partners.keys import issue_key
from app.partners.models import Partner
from sharding import breaker
from sharding.breaker import NodeUnavailableError
from sharding.placement import all_workers, node_for_user
from tests.conftest import REPO, server_env, worker_names

pytestmark = pytest.mark.usefixtures("clean_marketplace")


@pytest.fixture
def stopped_worker():
    """The last worker, stopped (postgres and pgbouncer) for the test and started again after it."""
    name, victim = os.environ["CLUSTER_NAME"], worker_names()[-1]
    cluster.stop_node(name, victim, log=lambda *_: None)
    try:
        yield victim
    finally:
        cluster.start_node(name, victim, log=lambda *_: None)
        assert breaker.wait_closed(victim, timeout=10), f"{victim}'s breaker stayed open"


def users_on(alias, count=1):
    User = get_user_model()
    found = []
    for n in range(400):
        user = User.objects.create_user(f"ff-{alias}-{n}", f"ff-{alias}-{n}@example.com", "pw-long-enough-1")
        if node_for_user(user.id) == alias:
            found.append(user)
            if len(found) == count:
                return found
    raise AssertionError(f"no user on {alias}")


def test_the_breaker_opens_on_a_failure_fails_fast_and_closes_when_the_node_is_back():
    victim = worker_names()[-1]
    (user,) = users_on(victim)
    client = APIClient()
    client.force_authenticate(user)
    name = os.environ["CLUSTER_NAME"]
    cluster.stop_node(name, victim, log=lambda *_: None)
    try:
        first = client.get("/api/v1/wallet")
        assert first.status_code == 503 and first.json()["error"]["code"] == "try_again"
        assert breaker.is_open(victim)
        started = time.monotonic()
        again = client.get("/api/v1/wallet")
        took = time.monotonic() - started
        assert again.status_code == 503 and again["Retry-After"]
        assert took < 0.1, f"an open breaker still took {took:.3f}s"
        with pytest.raises(NodeUnavailableError):
            node_for_user(user.id)
    finally:
        cluster.start_node(name, victim, log=lambda *_: None)
    assert breaker.wait_closed(victim, timeout=10)
    assert client.get("/api/v1/wallet").status_code == 200


def test_requests_that_do_not_need_the_failed_node_are_unaffected(stopped_worker):
    healthy = next(alias for alias in all_workers() if alias != stopped_worker)
    (user,) = users_on(healthy)
    client = APIClient()
    client.force_authenticate(user)
    assert client.get("/api/v1/wallet").status_code == 200
    assert client.post("/api/v1/items", {"title": "Lamp", "price": "5.00"}, format="json").status_code == 201


def test_search_answers_with_the_workers_that_answered_flagged_partial(stopped_worker):
    healthy = next(alias for alias in all_workers() if alias != stopped_worker)
    (seller,) = users_on(healthy)
    create_item(owner=seller, title="Brass lamp", price=1500)
    for _ in range(2):  # the first finds the node down, the second meets the open breaker
        response = APIClient().get("/api/v1/listings", {"q": "lamp"})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["partial"] is True and body["unavailable_nodes"] == [stopped_worker]
        assert [row["title"] for row in body["results"]] == ["Brass lamp"]
    page = Client().get("/search/", {"q": "lamp"})
    assert page.status_code == 200 and b"Some listings are missing" in page.content
    home = Client().get("/")
    assert home.status_code == 200 and b"Some listings are missing" in home.content


def test_search_with_every_worker_up_is_not_partial():
    body = APIClient().get("/api/v1/listings").json()
    assert body["partial"] is False and body["unavailable_nodes"] == []


def test_the_partner_feed_answers_503_until_every_node_answers(stopped_worker, settings):
    settings.PARTNER_RATE_LIMIT = "1000/min"
    _, key = issue_key(Partner.objects.create(name="Acme"), ["products:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = client.get("/api/partner/v1/products")
    assert response.status_code == 503 and response.json()["error"]["code"] == "try_again"
    assert stopped_worker in response.json()["error"]["details"]["nodes"]


def test_an_unreachable_node_is_a_503_never_a_500(stopped_worker):
    (user,) = users_on(stopped_worker)
    api = APIClient()
    api.force_authenticate(user)
    for response in (api.get("/api/v1/wallet"), api.get("/api/v1/me/overview"),
                     api.post("/api/v1/wallet/deposits", {"amount": "1.00"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")):
        assert response.status_code == 503, response.content
        assert response.json()["error"]["code"] == "try_again" and response["Retry-After"]
    web = Client(raise_request_exception=False)
    web.force_login(user)
    page = web.get("/wallet/")
    assert page.status_code == 503 and b"not answering" in page.content


# --------------------------------------------------------------------------- webhooks and maintenance


class DrippingServer:
    """Accepts connections and answers one byte every `every` seconds, forever (or never a byte)."""

    def __init__(self, every=0.3, silent=False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.every, self.silent, self.stop = every, silent, threading.Event()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000:
                if self.stop.wait(self.every):
                    return
                if not self.silent:
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("silent", [False, True], ids=["drips", "never-answers"])
def test_a_post_to_a_slow_receiver_ends_within_its_deadline(silent):
    server = DrippingServer(silent=silent)
    try:
        started = time.monotonic()
        with pytest.raises(PostFailed):
            post_bounded(server.url, b"{}", {"Content-Type": "application/json"}, deadline_seconds=1.5, max_bytes=1024)
        assert time.monotonic() - started < 2.0
    finally:
        server.close()


def test_a_dripping_webhook_receiver_does_not_delay_recovery():
    from tests.test_webhooks import make_partner, register

    server = DrippingServer()
    _, client = make_partner("slowpoke")
    register(client, server.url)
    sellers = users_on(all_workers()[0], count=1)
    for n in range(20):
        create_item(owner=sellers[0], title=f"Lamp {n}", price=100 + n)
    victim = all_workers()[0]
    env = {**server_env(), "SHARDING_RECOVERY_GRACE_SECONDS": "0", "SHARDING_RECOVERY_INTERVAL_SECONDS": "0.5"}
    maintenance = subprocess.Popen([sys.executable, "manage.py", "maintenance"], cwd=REPO, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while server.connections == 0:  # maintenance is now busy with the slow receiver
            assert time.monotonic() < deadline and maintenance.poll() is None, "no webhook was sent"
            time.sleep(0.05)
        with connections[victim].cursor() as cursor:  # an in-doubt transaction of ours, past its grace at once
            cursor.execute("BEGIN")
            cursor.execute("SELECT 1")
            cursor.execute("PREPARE TRANSACTION %s", ["mkt_4242_" + victim])
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with connections[victim].cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_prepared_xacts WHERE gid = %s", ["mkt_4242_" + victim])
                if cursor.fetchone()[0] == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("recovery did not settle the in-doubt transaction within 2 s while a receiver dripped")
    finally:
        maintenance.terminate()
        maintenance.wait(10)
        server.close()
