"""Rate limits (OWASP API4), in-process through Django's test client with low rates from the `settings` fixture.

The suite's own settings (tests/settings.py) raise every limit but the per-username login limit, so the other tests
are never throttled; here each test sets the rates it checks. The counts live in the coordinator's cache table,
which clean_marketplace empties before and after every test.
"""
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from tests.marketplace.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("clean_marketplace")

User = get_user_model()


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def rates(settings):
    """rates(scope="n/period", ...): set throttle rates for this test (settings restores them)."""

    def set_rates(**scopes):
        rest = dict(settings.REST_FRAMEWORK)
        rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], **scopes}
        settings.REST_FRAMEWORK = rest

    return set_rates


@pytest.fixture
def num_proxies(settings):
    def set_proxies(count):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": count}

    return set_proxies


def login(client, username, password="wrong-password", **extra):
    return client.post("/api/v1/auth/token", {"username": username, "password": password},
                       content_type="application/json", **extra)


def assert_throttled(response):
    assert response.status_code == 429, (response.status_code, response.content[:300])
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == "throttled", body
    assert set(body["error"]) == {"code", "message", "details"}, body
    retry_after = response.headers.get("Retry-After")
    assert retry_after and retry_after.isdigit() and int(retry_after) >= 1, response.headers


# --------------------------------------------------------------------------- login (finding 1)


def test_login_guesses_from_one_address_are_limited_whatever_the_usernames(rates):
    """30 wrong guesses in a row, each at another username, from one address: refused after the address's limit."""
    rates(login_address="20/min")
    client = Client(REMOTE_ADDR="192.0.2.10")
    statuses = [login(client, f"someone{index}").status_code for index in range(30)]
    assert statuses[:20] == [401] * 20, statuses
    assert set(statuses[20:]) == {429}, statuses
    assert_throttled(login(client, "someone-else"))
    # Another address has its own count.
    assert login(Client(REMOTE_ADDR="192.0.2.11"), "someone0").status_code == 401


def test_ipv6_clients_share_the_count_of_their_64_network(rates):
    rates(login_address="5/min")
    for index in range(5):
        assert login(Client(REMOTE_ADDR=f"2001:db8:1:2::{index + 1}"), f"user{index}").status_code == 401
    assert_throttled(login(Client(REMOTE_ADDR="2001:db8:1:2:ffff::9"), "user9"))
    assert login(Client(REMOTE_ADDR="2001:db8:1:3::1"), "user9").status_code == 401  # another /64


def test_forwarded_for_is_ignored_unless_num_proxies_is_set(rates, num_proxies):
    rates(login_address="3/min")
    client = Client(REMOTE_ADDR="192.0.2.20")
    for index in range(3):
        assert login(client, f"user{index}", HTTP_X_FORWARDED_FOR=f"198.51.100.{index}").status_code == 401
    assert_throttled(login(client, "user9", HTTP_X_FORWARDED_FOR="198.51.100.99"))

    # Behind one proxy, the client is the address the proxy appended last; what the client sent before it is not.
    cache.clear()
    num_proxies(1)
    proxy = Client(REMOTE_ADDR="10.0.0.1")
    for index in range(3):
        forged = f"203.0.113.{index}, 198.51.100.5"
        assert login(proxy, f"user{index}", HTTP_X_FORWARDED_FOR=forged).status_code == 401
    assert_throttled(login(proxy, "user9", HTTP_X_FORWARDED_FOR="203.0.113.50, 198.51.100.5"))
    assert login(proxy, "user9", HTTP_X_FORWARDED_FOR="198.51.100.6").status_code == 401  # another client


def test_the_web_login_form_shares_the_address_limit(rates):
    rates(login_address="4/min")
    User.objects.create_user("carol", "carol@example.com", PASSWORD)
    api, web = Client(REMOTE_ADDR="192.0.2.30"), Client(REMOTE_ADDR="192.0.2.30")
    for index in range(2):
        assert login(api, f"user{index}").status_code == 401
    for index in range(2):
        response = web.post("/login/", {"username": f"other{index}", "password": "wrong"})
        assert response.status_code == 200 and "correct username and password" in response.content.decode()
    response = web.post("/login/", {"username": "carol", "password": PASSWORD})
    assert response.status_code == 200 and "Too many login attempts" in response.content.decode()
    assert_throttled(login(api, "carol", PASSWORD))
