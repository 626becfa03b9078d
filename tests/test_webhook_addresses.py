"""Webhooks never reach into our own network (SSRF): a host name is resolved at each send, every address it
resolves to must be public, and the POST goes to the address that was checked (no second lookup: DNS
rebinding). DNS is simulated by replacing socket.getaddrinfo; no real lookup is made, and nothing is sent
anywhere but to receivers on 127.0.0.1."""
import socket
import ssl
import threading
import time

import pytest
from django.utils import timezone

from app.catalog.services import create_item
from app.partners import http as partner_http
from app.partners.http import AddressRefused, PostFailed, post_bounded
from app.partners.models import WebhookDelivery
from app.partners.webhooks.delivery import deliver_due
from app.partners.webhooks.outbox import dispatch_events
from tests.test_webhooks import Receiver, all_deliveries, make_partner, register, users_on_every_worker

pytestmark = pytest.mark.usefixtures("clean_marketplace")

NAME = "hooks.partner.test"
PUBLIC = "93.184.215.14"  # a global address; the tests never connect to it (open_connection is replaced)
NOT_PUBLIC = [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "fc00::1", "fe80::1",
]


class FakeDNS:
    """socket.getaddrinfo for made-up names: each lookup of a name pops its next answer (the last one stays)."""

    def __init__(self, monkeypatch, answers):
        self.answers = {name: list(addresses) for name, addresses in answers.items()}
        self.lookups = []
        real = socket.getaddrinfo

        def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
            if host not in self.answers:
                return real(host, port, family, type, proto, flags)
            self.lookups.append(host)
            queue = self.answers[host]
            found = queue.pop(0) if len(queue) > 1 else queue[0]
            found = [found] if isinstance(found, str) else found
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, int(port), 0, 0)) if ":" in ip
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port)))
                for ip in found
            ]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def private_off(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False  # as in production


@pytest.fixture
def no_connection(monkeypatch):
    def refuse(family, sockaddr, timeout):
        raise AssertionError(f"a connection was opened to {sockaddr}")

    monkeypatch.setattr(partner_http, "open_connection", refuse)


def redirect_connections(monkeypatch, port):
    """open_connection records the address it is asked for and connects to the local receiver instead."""
    asked = []

    def to_receiver(family, sockaddr, timeout):
        asked.append(sockaddr[0])
        return socket.create_connection(("127.0.0.1", port), timeout=timeout)

    monkeypatch.setattr(partner_http, "open_connection", to_receiver)
    return asked


def receiver_port(receiver):
    return receiver.server.server_address[1]


# --- post_bounded ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_a_name_that_resolves_to_a_non_public_address_is_refused(monkeypatch, no_connection, address):
    FakeDNS(monkeypatch, {NAME: [address]})
    with pytest.raises(AddressRefused, match="not a public address"):
        post_bounded(f"http://{NAME}/hooks", b"{}", {}, deadline_seconds=2, max_bytes=1024)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]"])
def test_a_literal_private_address_is_refused_at_send(no_connection, address):
    with pytest.raises(AddressRefused):
        post_bounded(f"http://{address}:8080/hooks", b"{}", {}, deadline_seconds=2, max_bytes=1024)


def test_one_private_answer_among_public_ones_is_enough_to_refuse(monkeypatch, no_connection):
    FakeDNS(monkeypatch, {NAME: [[PUBLIC, "10.0.0.7"]]})
    with pytest.raises(AddressRefused, match="10.0.0.7"):
        post_bounded(f"https://{NAME}/hooks", b"{}", {}, deadline_seconds=2, max_bytes=1024)


def test_the_connection_goes_to_the_checked_address_not_to_a_second_lookup(monkeypatch, receiver):
    dns = FakeDNS(monkeypatch, {NAME: [PUBLIC, "127.0.0.1"]})  # rebinding: the second answer would be ours
    asked = redirect_connections(monkeypatch, receiver_port(receiver))
    answer = post_bounded(f"http://{NAME}/hooks", b'{"a":1}', {"Content-Type": "application/json"},
                          deadline_seconds=5, max_bytes=1024)
    assert answer.status == 200
    assert dns.lookups == [NAME] and asked == [PUBLIC]
    (received,) = receiver.received
    assert received["headers"]["Host"] == NAME and received["body"] == b'{"a":1}'


def test_https_sends_and_verifies_the_original_name(monkeypatch, receiver):
    FakeDNS(monkeypatch, {NAME: [PUBLIC]})
    asked = redirect_connections(monkeypatch, receiver_port(receiver))
    wrapped = []
    real_context = ssl.create_default_context

    def context():
        real = real_context()

        class Recording:
            def wrap_socket(self, sock, server_hostname=None):
                wrapped.append((server_hostname, real.check_hostname, real.verify_mode))
                raise ssl.SSLError("stopped by the test before the handshake")

        return Recording()

    monkeypatch.setattr(partner_http.ssl, "create_default_context", context)
    with pytest.raises(PostFailed, match="stopped by the test"):
        post_bounded(f"https://{NAME}/hooks", b"{}", {}, deadline_seconds=5, max_bytes=1024)
    assert asked == [PUBLIC]
    assert wrapped == [(NAME, True, ssl.CERT_REQUIRED)]


def test_ports_outside_the_allowed_ones_are_refused_before_any_lookup(monkeypatch, no_connection):
    dns = FakeDNS(monkeypatch, {NAME: [PUBLIC]})
    for url in (f"https://{NAME}:8443/x", f"https://{NAME}:22/x", f"http://{NAME}:6379/x"):
        with pytest.raises(AddressRefused, match="port"):
            post_bounded(url, b"{}", {}, deadline_seconds=2, max_bytes=1024, allowed_ports={443, 80})
    assert dns.lookups == []


def test_private_addresses_only_with_the_explicit_switch(receiver):
    url = receiver.url  # http://127.0.0.1:<port>/hooks
    with pytest.raises(AddressRefused):
        post_bounded(url, b"{}", {}, deadline_seconds=5, max_bytes=1024)
    assert receiver.received == []
    assert post_bounded(url, b"{}", {}, deadline_seconds=5, max_bytes=1024, allow_private=True).status == 200


class EndlessServer:
    """Answers 200 and then streams bytes as fast as it can, forever, or `size` bytes with a Content-Length."""

    def __init__(self, size=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.size, self.stop = size, threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            length = f"Content-Length: {self.size}\r\n" if self.size else ""
            try:
                conn.sendall(f"HTTP/1.1 200 OK\r\n{length}\r\n".encode())
                sent = 0
                while not self.stop.is_set() and (self.size is None or sent < self.size):
                    conn.sendall(b"x" * 65536)
                    sent += 65536
            except OSError:
                return

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("size", [1_000_000, None], ids=["one-megabyte", "endless"])
def test_an_answer_is_read_up_to_the_byte_cap_only(size):
    server = EndlessServer(size)
    try:
        started = time.monotonic()
        answer = post_bounded(server.url, b"{}", {}, deadline_seconds=5, max_bytes=4096, allow_private=True)
        assert time.monotonic() - started < 3
        assert answer.status == 200 and answer.truncated and answer.body == b"x" * 4096
    finally:
        server.close()


# --- deliveries ------------------------------------------------------------------------------------------------


def test_a_delivery_to_a_name_that_resolves_to_our_network_is_refused_and_retried(monkeypatch, settings, receiver):
    """Registered under a name (which passes registration), resolving to 127.0.0.1 at send: nothing is sent while
    private addresses are off (production); the same delivery goes through once they are allowed (development)."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    FakeDNS(monkeypatch, {NAME: ["127.0.0.1"]})
    users = users_on_every_worker(per_worker=1)
    _, client = make_partner("acme")
    register(client, f"http://{NAME}:{receiver_port(receiver)}/hooks", events=["listing.created"])
    create_item(owner=next(iter(users.values()))[0], title="Lamp", price=100)
    dispatch_events()
    assert deliver_due() == (0, 0)
    (delivery,) = all_deliveries()
    assert receiver.received == []
    assert delivery.status == WebhookDelivery.PENDING and delivery.attempts == 1
    assert delivery.last_error == f"refused: {NAME} resolves to 127.0.0.1, which is not a public address"

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    WebhookDelivery.objects.using(delivery._state.db).filter(id=delivery.id).update(next_attempt_at=timezone.now())
    assert deliver_due() == (1, 0)
    assert len(receiver.ok()) == 1


def test_the_settings_of_production_and_of_development():
    import subprocess
    import sys

    from tests.conftest import REPO, server_env

    def setting(**env):
        code = (
            "from django.conf import settings; "
            "print(settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES, settings.WEBHOOK_ALLOWED_PORTS)"
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
            env={**server_env(), "DJANGO_SETTINGS_MODULE": "app.settings", "DJANGO_SECRET_KEY": "k" * 50,
                 "DJANGO_ALLOWED_HOSTS": "market.example.com", **env},
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    assert setting(MARKETPLACE_ENV="production") == "False (443, 80)"
    assert setting(MARKETPLACE_ENV="development") == "True (443, 80)"
