"""Bad input: every refused request gets its status and error code and changes nothing."""
import pytest

from tests.conftest import worker_names

from .conftest import assert_error, describe, new_key

pytestmark = pytest.mark.usefixtures("clean_marketplace")

# Well-formed ids (41 bits of time, 13 of logical shard, 10 of sequence) that no row has:
# time 1 ms after the epoch, logical shards 0 and 1, so both workers are asked.
UNKNOWN_IDS = [str((1 << 23) | (shard << 10)) for shard in (0, 1)]
MAX_ID = str((1 << 63) - 1)  # well-formed digits, but its logical shard does not exist
_DROP = object()  # a field left out of the payload

BAD_AMOUNTS = [
    "-1.00", "0", "0.00", 0, -5, "abc", "", None, [], {}, True, "NaN", "Infinity", "-Infinity", "1e3", "0.001",
    "12.345", "1000000.01", 1000000.01, "10000000", "1,000.00", "12.5.3", 0.001, "-0.01",
]
BAD_PRICES = ["0.00", "0", "-1.00", "abc", "1e3", "0.001", "1000000.01", "NaN", [], None, {"a": 1}, "", True]


@pytest.fixture
def world(mk):
    """A seller (worker 1) with a listed, an unlisted and a sold item; a buyer (worker 2) with money; a poor user."""
    w1, w2 = worker_names()[:2]
    seller, buyer, poor = mk.user_on(w1), mk.user_on(w2), mk.user_on(w1)
    mk.deposit(seller, "100.00")
    mk.deposit(buyer, "50.00")
    mk.deposit(poor, "1.00")
    listed = mk.list_item(seller, price="10.00", title="listed")
    unlisted = mk.list_item(seller, price="10.00", title="unlisted")
    response = mk.patch(f"items/{unlisted['id']}", seller, json={"status": "unlisted"})
    assert response.status_code == 200 and response.json()["status"] == "unlisted", describe(response)
    sold = mk.list_item(seller, price="5.00", title="sold")
    response = mk.buy(buyer, sold)
    assert response.status_code == 201, describe(response)
    return {"seller": seller, "buyer": buyer, "poor": poor, "listed": listed, "unlisted": unlisted, "sold": sold,
            "bought": response.json()}


def test_bad_deposits(mk, world, refusals):
    buyer = world["buyer"]

    def deposit(payload=None, key="auto", data=None):
        key = new_key() if key == "auto" else key
        if data is not None:
            return lambda: mk.post("wallet/deposits", buyer, data=data, key=key)
        return lambda: mk.post("wallet/deposits", buyer, json=payload, key=key)

    for amount in BAD_AMOUNTS:
        refusals.expect(f"amount {amount!r}", deposit({"amount": amount}), 400, "validation_error")
    refusals.expect("amount missing", deposit({}), 400, "validation_error")
    refusals.expect("amount as a raw NaN", deposit(data='{"amount": NaN}'), 400, ("parse_error", "validation_error"))
    refusals.expect("malformed JSON", deposit(data='{"amount": "1.00"'), 400, "parse_error")
    refusals.expect("not JSON at all", deposit(data="amount=1.00"), 400, "parse_error")
    refusals.expect("a list body", deposit(["1.00"]), 400, ("validation_error", "parse_error"))
    refusals.expect("no Idempotency-Key", deposit({"amount": "1.00"}, key=None), 400, "idempotency_key_required")
    refusals.expect("empty Idempotency-Key", deposit({"amount": "1.00"}, key=""), 400)
    refusals.expect("Idempotency-Key of 256 chars", deposit({"amount": "1.00"}, key="k" * 256), 400)
    refusals.expect("non-ASCII Idempotency-Key", deposit({"amount": "1.00"}, key="cl\u00e9"), 400)
    refusals.verify()
    assert mk.balance(buyer) == "45.00"


def test_deposit_limits_are_inclusive(mk):
    user = mk.register()
    assert mk.deposit(user, "0.01")["balance"] == "0.01"
    assert mk.deposit(user, "1000000.00")["balance"] == "1000000.01"
    assert mk.deposit(user, "7")["amount"] == "7.00"
    key = "k" * 255
    response = mk.post("wallet/deposits", user, json={"amount": "1.10"}, key=key)
    assert response.status_code == 201, describe(response)
    assert mk.balance(user) == "1000008.11"


def test_bad_items(mk, world, refusals):
    seller = world["seller"]
    good = {"title": "ok", "description": "", "price": "1.00"}

    def create(**changes):
        payload = {**good, **changes}
        payload = {k: v for k, v in payload.items() if v is not _DROP}
        return lambda: mk.post("items", seller, json=payload)

    for title in ["", "t" * 201, "t" * 10_000, {"a": 1}, None, []]:
        refusals.expect(f"title {str(title)[:20]!r}", create(title=title), 400, "validation_error")
    refusals.expect("title missing", create(title=_DROP), 400, "validation_error")
    for description in ["d" * 5001, {"a": 1}, []]:
        refusals.expect(
            f"description {str(description)[:20]!r}", create(description=description), 400, "validation_error"
        )
    for price in BAD_PRICES:
        refusals.expect(f"price {price!r}", create(price=price), 400, "validation_error")
    refusals.expect("price missing", create(price=_DROP), 400, "validation_error")
    for category in ["c" * 51, {"a": 1}, []]:
        refusals.expect(f"category {str(category)[:20]!r}", create(category=category), 400, "validation_error")
    refusals.expect("malformed JSON", lambda: mk.post("items", seller, data='{"title": "x", '), 400, "parse_error")
    refusals.expect(
        "a list body", lambda: mk.post("items", seller, json=[good]), 400, ("validation_error", "parse_error")
    )
    refusals.verify()


def test_item_limits_are_inclusive(mk):
    user = mk.register()
    item = mk.list_item(user, price="1000000.00", title="t" * 200, description="d" * 5000, category="c" * 50)
    assert item["price"] == "1000000.00" and len(item["title"]) == 200 and len(item["description"]) == 5000
    assert item["category"] == "c" * 50
    cheap = mk.list_item(user, price="0.01")
    assert cheap["price"] == "0.01" and cheap["category"] == ""
    # 200 characters, not bytes; one decimal is fine and comes back with two.
    accented = mk.list_item(user, price="12.3", title="\u00e9" * 199 + "\U0001fa94", description="Lampe \u00e0 huile")
    assert accented["title"] == "\u00e9" * 199 + "\U0001fa94" and accented["price"] == "12.30"
    assert mk.get(f"items/{accented['id']}").json()["description"] == "Lampe \u00e0 huile"


def test_bad_item_edits(mk, world, refusals, snapshot):
    seller, listed, unlisted, sold = world["seller"], world["listed"], world["unlisted"], world["sold"]

    def patch(item, payload=None, data=None):
        if data is not None:
            return lambda: mk.patch(f"items/{item['id']}", seller, data=data)
        return lambda: mk.patch(f"items/{item['id']}", seller, json=payload)

    for item in (listed, unlisted):
        name = item["title"]
        refusals.expect(f"{name}: status sold", patch(item, {"status": "sold"}), 400, "validation_error")
        refusals.expect(f"{name}: status bogus", patch(item, {"status": "bogus"}), 400, "validation_error")
        for price in ["0.00", "-1", "abc", "0.001", "1000000.01", None]:
            refusals.expect(f"{name}: price {price!r}", patch(item, {"price": price}), 400, "validation_error")
        for title in ["", "t" * 10_000, {"a": 1}]:
            refusals.expect(
                f"{name}: title {str(title)[:20]!r}", patch(item, {"title": title}), 400, "validation_error"
            )
        refusals.expect(f"{name}: malformed JSON", patch(item, data='{"title": '), 400, "parse_error")
    # A sold listing is frozen.
    for payload in ({"title": "renamed"}, {"status": "listed"}, {"price": "1.00"}, {"status": "unlisted"}):
        refusals.expect(f"sold: PATCH {payload}", patch(sold, payload), 409, "item_sold")
    refusals.expect("sold: DELETE", lambda: mk.delete(f"items/{sold['id']}", seller), 409, "item_sold")
    refusals.verify()

    # Read-only fields are ignored.
    buyer = world["buyer"]
    before = mk.get(f"items/{listed['id']}", seller).json()
    response = mk.patch(
        f"items/{listed['id']}",
        seller,
        json={
            "owner": {"id": buyer["id"], "username": buyer["username"]},
            "id": world["unlisted"]["id"],
            "source_item_id": world["sold"]["id"],
            "currency": "EUR",
            "created_at": "2001-01-01T00:00:00Z",
            "user_id": buyer["id"],
        },
    )
    assert response.status_code == 200, describe(response)
    after = mk.get(f"items/{listed['id']}", seller).json()
    for field in ("id", "owner", "source_item_id", "currency", "created_at", "title", "price", "status"):
        assert after[field] == before[field], field
    assert listed["id"] not in {item["id"] for item in mk.all_pages("items", buyer)}
    assert_error(mk.patch(f"items/{listed['id']}", buyer, json={"title": "mine now"}), 404, "not_found")

    # And on creation.
    created = mk.list_item(seller, owner={"id": buyer["id"]}, id="1234", source_item_id=listed["id"])
    assert created["owner"]["id"] == seller["id"] and created["id"] != "1234" and created["source_item_id"] is None
    assert created["status"] == "listed"
    # An item is never created sold: either refused, or created as a listing.
    before = snapshot()
    response = mk.post("items", seller, json={"title": "x", "description": "", "price": "1.00", "status": "sold"})
    if response.status_code == 201:
        assert response.json()["status"] == "listed", describe(response)
    else:
        assert_error(response, 400, "validation_error")
        assert snapshot() == before


def test_bad_purchases(mk, world, refusals):
    seller, buyer, poor = world["seller"], world["buyer"], world["poor"]
    listed, unlisted, sold = world["listed"], world["unlisted"], world["sold"]

    def buy(user, item_id, expected_price="10.00", key="auto", **extra):
        key = new_key() if key == "auto" else key
        payload = {"item_id": item_id, "expected_price": expected_price, **extra}
        return lambda: mk.post("purchases", user, json=payload, key=key)

    for item_id in ["abc", "-1", "", 1.5, "1.5", 99999999999999999999, "99999999999999999999", None, [], {}, True]:
        refusals.expect(f"item_id {item_id!r}", buy(buyer, item_id), 400, "validation_error")
    refusals.expect(
        "item_id missing",
        lambda: mk.post("purchases", buyer, json={"expected_price": "10.00"}, key=new_key()),
        400,
        "validation_error",
    )
    for price in ["abc", "-1.00", [], "0.001"]:
        refusals.expect(f"expected_price {price!r}", buy(buyer, listed["id"], price), 400, "validation_error")
    for unknown in UNKNOWN_IDS:
        refusals.expect(f"unknown item {unknown}", buy(buyer, unknown), 404, "not_found")
    refusals.expect("own item", buy(seller, listed["id"]), 400, "own_item")
    refusals.expect("insufficient funds", buy(poor, listed["id"]), 402, "insufficient_funds")
    refusals.expect("unlisted item", buy(buyer, unlisted["id"]), 409, "item_not_available")
    refusals.expect("sold item", buy(buyer, sold["id"], "5.00"), 409, "item_not_available")
    refusals.expect("price changed (lower)", buy(buyer, listed["id"], "9.99"), 409, "price_changed")
    refusals.expect("price changed (higher)", buy(buyer, listed["id"], "10.01"), 409, "price_changed")
    refusals.expect("no Idempotency-Key", buy(buyer, listed["id"], key=None), 400, "idempotency_key_required")
    refusals.expect(
        "malformed JSON",
        lambda: mk.post("purchases", buyer, data='{"item_id": ', key=new_key()),
        400,
        "parse_error",
    )
    refusals.verify()
    assert mk.balance(buyer) == "45.00" and mk.balance(poor) == "1.00" and mk.balance(seller) == "105.00"
    assert mk.get(f"items/{listed['id']}").json()["status"] == "listed"


def test_item_id_without_a_shard_is_refused_cleanly(mk, world, refusals):
    """19 digits that parse as a 64-bit id but whose logical shard does not exist: refused, not a crash."""
    refusals.expect(
        "purchase",
        lambda: mk.post("purchases", world["buyer"], json={"item_id": MAX_ID, "expected_price": "1.00"}, key=new_key()),
        (400, 404),
        ("validation_error", "not_found"),
    )
    refusals.expect("GET anonymous", lambda: mk.get(f"items/{MAX_ID}"), 404, "not_found")
    refusals.expect("GET", lambda: mk.get(f"items/{MAX_ID}", world["seller"]), 404, "not_found")
    refusals.expect(
        "PATCH", lambda: mk.patch(f"items/{MAX_ID}", world["seller"], json={"title": "x"}), 404, "not_found"
    )
    refusals.expect("DELETE", lambda: mk.delete(f"items/{MAX_ID}", world["seller"]), 404, "not_found")
    refusals.verify()


def test_item_urls_with_bad_ids(mk, world, refusals):
    seller = world["seller"]
    for bad in ["abc", "99999999999999999999", "0", "-1", "1.5", *UNKNOWN_IDS]:
        refusals.expect(f"GET items/{bad} anonymous", lambda bad=bad: mk.get(f"items/{bad}"), 404, "not_found")
        refusals.expect(f"GET items/{bad}", lambda bad=bad: mk.get(f"items/{bad}", seller), 404, "not_found")
        refusals.expect(
            f"PATCH items/{bad}", lambda bad=bad: mk.patch(f"items/{bad}", seller, json={"title": "x"}), 404,
            "not_found",
        )
        refusals.expect(f"DELETE items/{bad}", lambda bad=bad: mk.delete(f"items/{bad}", seller), 404, "not_found")
    refusals.verify()


def test_bad_registrations(mk, refusals):
    taken = mk.register_only(username="Alice_Taken", email="A_Taken@Example.com")

    def register(payload=None, data=None):
        if data is not None:
            return lambda: mk.post("auth/register", data=data)
        return lambda: mk.post("auth/register", json=payload)

    def fields(**changes):
        payload = {
            "username": "newcomer", "email": "newcomer@example.com", "password": "correct-horse-battery-9", **changes
        }
        return {k: v for k, v in payload.items() if v is not _DROP}

    cases = [
        ("nothing", {}, ("username", "email", "password")),
        ("no username", fields(username=_DROP), ("username",)),
        ("no email", fields(email=_DROP), ("email",)),
        ("no password", fields(password=_DROP), ("password",)),
        ("bad email", fields(email="not-an-email"), ("email",)),
        ("email without domain", fields(email="newcomer@"), ("email",)),
        ("password 'password'", fields(password="password"), ("password",)),
        ("numeric password", fields(password="12345678"), ("password",)),
        ("short password", fields(password="x7#qP"), ("password",)),
        ("password like the username", fields(username="margaretsmith", password="margaretsmith1"), ("password",)),
        ("username as an object", fields(username={"a": 1}), ("username",)),
        ("username of 10,000 chars", fields(username="u" * 10_000), ("username",)),
        ("email of 10,000 chars", fields(email="e" * 10_000 + "@example.com"), ("email",)),
        ("password of wrong type", fields(password=["a"]), ("password",)),
    ]
    for label, payload, expected_fields in cases:
        response = refusals.expect(label, register(payload), 400, "validation_error")
        if response is not None and response.status_code == 400:
            details = response.json()["error"]["details"]
            missing = [f for f in expected_fields if f not in details]
            if missing:
                refusals.failures.append(f"{label}: details lack {missing}: {details}")
    refusals.expect("malformed JSON", register(data='{"username": '), 400, "parse_error")
    refusals.expect("username taken, other case", register(fields(username="alice_taken")), 409, "username_taken")
    refusals.expect("username taken, same case", register(fields(username="Alice_Taken")), 409, "username_taken")
    refusals.expect("email taken, other case", register(fields(email="a_taken@example.com")), 409, "email_taken")
    refusals.expect("email taken, upper case", register(fields(email="A_TAKEN@EXAMPLE.COM")), 409, "email_taken")
    refusals.verify()
    assert taken["username"] == "Alice_Taken"


def test_bad_list_parameters(mk, world, refusals):
    buyer = world["buyer"]
    for path in ("items", "wallet/ledger", "purchases", "sales"):
        for size in ["0", "-1", "abc", "1.5"]:
            refusals.expect(
                f"{path}?page_size={size}",
                lambda path=path, size=size: mk.get(path, buyer, params={"page_size": size}),
                400,
                "validation_error",
            )
        for cursor in ["abc", "garbage!!", "eyJ4IjoxfQ"]:
            refusals.expect(
                f"{path}?cursor={cursor}",
                lambda path=path, cursor=cursor: mk.get(path, buyer, params={"cursor": cursor}),
                400,
                "invalid_cursor",
            )
    refusals.verify()
    for path, user in (("items", buyer), ("wallet/ledger", buyer), ("purchases", buyer), ("sales", world["seller"])):
        response = mk.get(path, user, params={"page_size": "1000"})
        assert response.status_code == 200, f"{path}: {describe(response)}"
        assert response.json()["results"], path


NOT_OBJECTS = ["[1, 2]", "null", '"text"', "42", "true", "[]"]
TOO_DEEP = "[" * 2000 + "]" * 2000  # deeper than Python's recursion limit: the parser raised RecursionError
TOO_DEEP_INSIDE = '{"amount": ' + TOO_DEEP + "}"


def test_bodies_that_are_not_json_objects_or_nest_too_deeply(mk, world, refusals):
    """Every POST or PATCH body is an object; anything else (or a body nested 2,000 levels deep) is a 400."""
    seller, listed = world["seller"], world["listed"]
    partner_headers = mk.partner_headers()
    sends = {
        "POST auth/token": lambda data: mk.post("auth/token", data=data),
        "POST auth/register": lambda data: mk.post("auth/register", data=data),
        "POST wallet/deposits": lambda data: mk.post("wallet/deposits", seller, data=data, key=new_key()),
        "POST items": lambda data: mk.post("items", seller, data=data),
        "PATCH items/{id}": lambda data: mk.patch(f"items/{listed['id']}", seller, data=data),
        "POST purchases": lambda data: mk.post("purchases", world["buyer"], data=data, key=new_key()),
        "POST partner webhooks": lambda data: mk.post("/api/partner/v1/webhooks", data=data, headers=partner_headers),
    }
    for name, send in sends.items():
        for body in NOT_OBJECTS:
            refusals.expect(f"{name} {body}", lambda send=send, body=body: send(body), 400, "validation_error")
        for label, body in (("2,000 levels deep", TOO_DEEP), ("2,000 levels deep inside an object", TOO_DEEP_INSIDE)):
            refusals.expect(f"{name} {label}", lambda send=send, body=body: send(body), 400, "parse_error")
    refusals.verify()


def test_a_nul_in_a_login_username_is_an_answer_not_a_500(mk):
    """The login limit keys the shared (database) cache by username, and PostgreSQL text cannot hold a NUL."""
    for username in ("bad\u0000name", "\u0000"):
        response = mk.post("auth/token", json={"username": username, "password": "whatever-it-is-1"})
        assert_error(response, 400, "validation_error")
    # What the escape of a NUL looks like is an ordinary username with its own count.
    response = mk.post("auth/token", json={"username": "bad\\0name", "password": "whatever-it-is-1"})
    assert_error(response, 401, "authentication_failed")
