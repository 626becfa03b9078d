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


# --------------------------------------------------------------------------- everything else (finding 5)


def make_user(name):
    return User.objects.create_user(name, f"{name}@example.com", PASSWORD)


def api_client(user, **extra):
    from app.accounts.services import issue_token

    token, _ = issue_token(user)
    return Client(HTTP_AUTHORIZATION=f"Token {token}", **extra)


def fund(user, amount=100_000):
    from app.wallet.services import deposit
    from sharding.placement import node_for_user
    from sharding.transactions import atomic_on_nodes

    with atomic_on_nodes([node_for_user(user.id)]):
        deposit(user.id, amount)


def post(client, path, body, **extra):
    return client.post(path, body, content_type="application/json", **extra)


def key():
    import uuid

    return {"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex}


def test_registrations_from_one_address_are_limited_api_and_web_together(rates):
    rates(register="3/hour")
    client = Client(REMOTE_ADDR="192.0.2.40")
    for index in range(2):
        response = post(client, "/api/v1/auth/register",
                        {"username": f"new{index}", "email": f"new{index}@example.com", "password": PASSWORD})
        assert response.status_code == 201, response.content
    response = client.post("/register/", {"username": "new2", "email": "new2@example.com", "password": PASSWORD,
                                          "password_again": PASSWORD})
    assert response.status_code == 302  # the web form counts in the same limit
    assert_throttled(post(client, "/api/v1/auth/register",
                          {"username": "new3", "email": "new3@example.com", "password": PASSWORD}))
    response = client.post("/register/", {"username": "new4", "email": "new4@example.com", "password": PASSWORD,
                                          "password_again": PASSWORD})
    assert response.status_code == 429 and response["Retry-After"].isdigit()
    assert "Too many requests" in response.content.decode()
    assert not User.objects.filter(username__in=["new3", "new4"]).exists()
    # Another address may register.
    response = post(Client(REMOTE_ADDR="192.0.2.41"), "/api/v1/auth/register",
                    {"username": "new5", "email": "new5@example.com", "password": PASSWORD})
    assert response.status_code == 201


def test_anonymous_requests_have_a_default_limit_per_address(rates):
    rates(anon="3/min")
    client = Client(REMOTE_ADDR="192.0.2.50")
    for _ in range(3):
        assert client.get("/api/v1/listings").status_code == 200
    assert_throttled(client.get("/api/v1/listings"))
    assert Client(REMOTE_ADDR="192.0.2.51").get("/api/v1/listings").status_code == 200


def test_every_user_has_a_default_limit(rates):
    rates(user="3/min")
    alice, bob = api_client(make_user("alice")), api_client(make_user("bob"))
    for _ in range(3):
        assert alice.get("/api/v1/wallet").status_code == 200
    assert_throttled(alice.get("/api/v1/wallet"))
    assert_throttled(alice.get("/api/v1/me/overview"))  # one count for all of the user's requests
    assert bob.get("/api/v1/wallet").status_code == 200


def test_deposits_are_limited_per_user_api_and_web_together(rates):
    rates(deposit="2/min")
    alice = make_user("alice")
    api = api_client(alice)
    assert post(api, "/api/v1/wallet/deposits", {"amount": "10.00"}, **key()).status_code == 201
    web = Client()
    web.force_login(alice)
    response = web.post("/wallet/", {"amount": "5.00", "idempotency_key": "web-deposit-1"})
    assert response.status_code == 302
    assert_throttled(post(api, "/api/v1/wallet/deposits", {"amount": "10.00"}, **key()))
    response = web.post("/wallet/", {"amount": "5.00", "idempotency_key": "web-deposit-2"})
    assert response.status_code == 429
    assert api.get("/api/v1/wallet").json()["balance"] == "15.00"  # the refused ones moved no money
    assert post(api_client(make_user("bob")), "/api/v1/wallet/deposits", {"amount": "1.00"}, **key()).status_code == 201


def test_purchases_are_limited_per_user(rates):
    from app.catalog.services import create_item

    rates(purchase="1/min")
    buyer, seller = make_user("buyer"), make_user("seller")
    fund(buyer)
    first, second = (
        create_item(owner=seller, title=f"thing {n}", description="", price=500, category="") for n in (1, 2)
    )
    api = api_client(buyer)
    response = post(api, "/api/v1/purchases", {"item_id": str(first.id), "expected_price": "5.00"}, **key())
    assert response.status_code == 201, response.content
    assert_throttled(post(api, "/api/v1/purchases", {"item_id": str(second.id), "expected_price": "5.00"}, **key()))
    assert api.get("/api/v1/purchases").status_code == 200  # listing my purchases is not a purchase
    web = Client()
    web.force_login(buyer)
    response = web.post(f"/items/{second.id}/buy/", {"expected_price": "500", "idempotency_key": "web-k1"})
    assert response.status_code == 429
    assert api.get("/api/v1/wallet").json()["balance"] == "995.00"


def test_listing_creation_is_limited_per_user(rates):
    rates(listing="2/min")
    alice = make_user("alice")
    api = api_client(alice)
    for index in range(2):
        response = post(api, "/api/v1/items", {"title": f"thing {index}", "description": "", "price": "1.00"})
        assert response.status_code == 201, response.content
    assert_throttled(post(api, "/api/v1/items", {"title": "one more", "description": "", "price": "1.00"}))
    assert api.get("/api/v1/items").status_code == 200  # my inventory is not a listing
    web = Client()
    web.force_login(alice)
    assert web.post("/sell/", {"title": "from the web", "price": "1.00"}).status_code == 429


def test_photo_uploads_are_limited_per_user_api_and_web_together(rates):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from app.catalog.services import create_item
    from tests.images import png

    rates(photo="2/min")
    alice = make_user("alice")
    item = create_item(owner=alice, title="lamp", description="", price=500, category="")
    api = api_client(alice)

    def upload():
        return api.post(f"/api/v1/items/{item.id}/photos", {"image": SimpleUploadedFile("a.png", png(), "image/png")})

    assert upload().status_code == 201
    web = Client()
    web.force_login(alice)
    response = web.post(f"/items/{item.id}/edit/", {
        "title": "lamp", "price": "5.00", "photos": [SimpleUploadedFile("b.png", png(), "image/png")],
    })
    assert response.status_code == 302, response.content[:500]
    assert_throttled(upload())
    assert web.post(f"/items/{item.id}/edit/", {
        "title": "lamp", "price": "5.00", "photos": [SimpleUploadedFile("c.png", png(), "image/png")],
    }).status_code == 429
    assert api.get(f"/api/v1/items/{item.id}").json()["photos"].__len__() == 2


def test_search_is_limited_per_client_api_and_web_together(rates):
    rates(search="3/min")
    client = Client(REMOTE_ADDR="192.0.2.60")
    assert client.get("/api/v1/listings", {"q": "lamp"}).status_code == 200
    assert client.get("/api/v1/listings", {"q": "desk"}).status_code == 200
    assert client.get("/search/", {"q": "chair"}).status_code == 200
    assert_throttled(client.get("/api/v1/listings", {"q": "lamp"}))
    assert client.get("/search/", {"q": "chair"}).status_code == 429
    user = api_client(make_user("alice"), REMOTE_ADDR="192.0.2.60")  # a logged-in user counts on their own
    assert user.get("/api/v1/listings", {"q": "lamp"}).status_code == 200


def test_password_changes_are_limited_per_user(rates):
    rates(password_change="2/hour")
    api = api_client(make_user("alice"))
    for _ in range(2):
        assert_error_code(post(api, "/api/v1/auth/password", {"old_password": "guess", "new_password": "x" * 20}),
                          400, "wrong_password")
    assert_throttled(post(api, "/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "x" * 20}))
    assert User.objects.get(username="alice").check_password(PASSWORD)


def test_reset_emails_are_limited_per_address_and_per_email(rates, mailoutbox):
    rates(password_reset="2/hour")
    make_user("alice")
    for index in range(2):
        response = Client(REMOTE_ADDR=f"192.0.2.{70 + index}").post("/password-reset/", {"email": "alice@example.com"})
        assert response.status_code == 302
    response = Client(REMOTE_ADDR="192.0.2.79").post("/password-reset/", {"email": "ALICE@example.com"})
    assert response.status_code == 429  # per email address, from anywhere
    assert len(mailoutbox) == 2
    client = Client(REMOTE_ADDR="192.0.2.80")
    for index in range(2):
        assert client.post("/password-reset/", {"email": f"other{index}@example.com"}).status_code == 302
    assert client.post("/password-reset/", {"email": "other9@example.com"}).status_code == 429  # per address


def assert_error_code(response, status, code):
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response.json()["error"]["code"] == code, response.json()


def test_the_shared_cache_writes_in_one_statement_and_culls_expired_rows_then_the_soonest_expiring(
        django_assert_num_queries):
    from django.core.cache import caches

    from app.core.cache import DatabaseCache

    backend = caches["default"]
    assert isinstance(backend, DatabaseCache)
    with django_assert_num_queries(1):
        backend.set("count", [1.0, 2.0], 60)
    with django_assert_num_queries(1):
        backend.set("count", [1.0, 2.0, 3.0], 60)  # an existing key: the same single upsert
    assert backend.get("count") == [1.0, 2.0, 3.0]

    backend.set("expired", 1, -1)
    for index, seconds in enumerate((100, 200, 300)):
        backend.set(f"live{index}", index, seconds)
    limit, backend._max_entries = backend._max_entries, 2
    try:
        assert backend.cull() == 3  # the expired row, then the two expiring soonest ("count" and "live0")
    finally:
        backend._max_entries = limit
    assert backend.get_many(["count", "live0", "live1", "live2"]) == {"live1": 1, "live2": 2}
