"""Who may see and touch what: other users' ids are 404, other users' rows never show, no token is 401."""
import pytest

from tests.conftest import worker_names

from .conftest import assert_error, describe, new_key

pytestmark = pytest.mark.usefixtures("clean_marketplace")

FAKE_ID = str(1 << 23)  # well-formed, no such item

PROTECTED = [
    ("GET", "wallet", None),
    ("POST", "wallet/deposits", {"amount": "1.00"}),
    ("GET", "wallet/ledger", None),
    ("GET", "items", None),
    ("POST", "items", {"title": "x", "description": "", "price": "1.00"}),
    ("PATCH", f"items/{FAKE_ID}", {"title": "x"}),
    ("DELETE", f"items/{FAKE_ID}", None),
    ("POST", "purchases", {"item_id": FAKE_ID, "expected_price": "1.00"}),
    ("GET", "purchases", None),
    ("GET", "sales", None),
    ("POST", "auth/logout", None),
]


@pytest.mark.parametrize("method, path, payload", PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
def test_protected_endpoints_need_a_token(mk, snapshot, method, path, payload):
    before = snapshot()
    kwargs = {"key": new_key()} if method == "POST" else {}
    if payload is not None:
        kwargs["json"] = payload
    assert_error(mk.request(method, path, **kwargs), 401, "not_authenticated")
    assert_error(mk.request(method, path, "not-a-real-token", **kwargs), 401, "authentication_failed")
    assert snapshot() == before


@pytest.mark.parametrize("placement", ["different_workers", "same_worker"])
def test_other_users_ids_are_not_found(mk, snapshot, refusals, placement):
    w1, w2 = worker_names()[:2]
    alice = mk.user_on(w1)
    bob = mk.user_on(w2 if placement == "different_workers" else w1)
    carol = mk.user_on(w2)
    mk.deposit(alice, "100.00")
    mk.deposit(bob, "100.00")
    mk.deposit(carol, "100.00")
    listed = mk.list_item(alice, price="3.00", title="alice listed")
    unlisted = mk.list_item(alice, price="4.00", title="alice unlisted")
    assert mk.patch(f"items/{unlisted['id']}", alice, json={"status": "unlisted"}).status_code == 200
    sold = mk.list_item(alice, price="5.00", title="alice sold")
    # Alice buys something from Carol, so she also owns an inventory item that came from a purchase.
    carols = mk.list_item(carol, price="6.00", title="carol listed")
    response = mk.buy(alice, carols)
    assert response.status_code == 201, describe(response)
    alices_bought = response.json()["item_id"]
    response = mk.buy(carol, sold)
    assert response.status_code == 201, describe(response)

    for label, item_id in (("unlisted", unlisted["id"]), ("bought", alices_bought)):
        refusals.expect(f"GET {label}", lambda i=item_id: mk.get(f"items/{i}", bob), 404, "not_found")
        refusals.expect(f"GET {label} anonymous", lambda i=item_id: mk.get(f"items/{i}"), 404, "not_found")
    # The sold listing: only the seller sees it, not even its buyer.
    refusals.expect("GET sold", lambda: mk.get(f"items/{sold['id']}", bob), 404, "not_found")
    refusals.expect("GET sold by its buyer", lambda: mk.get(f"items/{sold['id']}", carol), 404, "not_found")
    for label, item_id in (
        ("listed", listed["id"]), ("unlisted", unlisted["id"]), ("bought", alices_bought), ("sold", sold["id"])
    ):
        for payload in ({"title": "bob was here"}, {"price": "0.01"}, {"status": "listed"}, {"status": "unlisted"}):
            refusals.expect(
                f"PATCH {label} {payload}", lambda i=item_id, p=payload: mk.patch(f"items/{i}", bob, json=p), 404,
                "not_found",
            )
        refusals.expect(f"DELETE {label}", lambda i=item_id: mk.delete(f"items/{i}", bob), 404, "not_found")
    # Bob cannot buy what is not for sale, whoever owns it.
    refusals.expect("buy unlisted", lambda: mk.buy(bob, unlisted), 409, "item_not_available")
    refusals.expect("buy bought (unlisted)", lambda: mk.buy(bob, alices_bought, "6.00"), 409, "item_not_available")
    refusals.verify()

    # The owner still sees and controls her items.
    assert mk.get(f"items/{unlisted['id']}", alice).json()["title"] == "alice unlisted"
    assert mk.get(f"items/{listed['id']}", bob).json()["title"] == "alice listed"
    assert mk.get(f"items/{listed['id']}").json()["price"] == "3.00"
    assert mk.get(f"items/{sold['id']}", alice).json()["status"] == "sold"
    assert mk.patch(f"items/{listed['id']}", alice, json={"title": "renamed"}).json()["title"] == "renamed"
    response = mk.delete(f"items/{listed['id']}", alice)
    assert response.status_code == 204, describe(response)
    assert_error(mk.get(f"items/{listed['id']}", alice), 404, "not_found")
    assert_error(mk.buy(bob, listed), 404, "not_found")


def test_lists_show_only_your_own_rows(mk):
    w1, w2 = worker_names()[:2]
    alice, bob, carol = mk.user_on(w1), mk.user_on(w2), mk.user_on(w1)
    mk.deposit(alice, "70.00")
    mk.deposit(bob, "30.00")
    mk.deposit(carol, "50.00")
    alice_item = mk.list_item(alice, price="2.00")
    bob_item = mk.list_item(bob, price="3.00")
    assert mk.buy(carol, alice_item).status_code == 201
    assert mk.buy(carol, bob_item).status_code == 201
    carol_item = mk.list_item(carol, price="4.00")
    assert mk.buy(alice, carol_item).status_code == 201

    assert mk.balance(alice) == "68.00"
    assert mk.balance(bob) == "33.00"
    assert mk.balance(carol) == "49.00"

    def owners(rows, key):
        return {row[key]["id"] for row in rows}

    for user in (alice, bob, carol):
        items = mk.all_pages("items", user)
        assert {item["owner"]["id"] for item in items} <= {user["id"]}, (user["username"], items)
        purchases = mk.all_pages("purchases", user)
        sales = mk.all_pages("sales", user)
        assert user["id"] not in owners(purchases, "seller")
        assert user["id"] not in owners(sales, "buyer")
    assert len(mk.all_pages("purchases", bob)) == 0
    assert [s["item_id"] for s in mk.all_pages("sales", bob)] == [bob_item["id"]]
    assert owners(mk.all_pages("purchases", carol), "seller") == {alice["id"], bob["id"]}
    assert [p["source_item_id"] for p in mk.all_pages("purchases", alice)] == [carol_item["id"]]
    assert [s["item_id"] for s in mk.all_pages("sales", alice)] == [alice_item["id"]]
    assert [(e["kind"], e["amount"]) for e in mk.all_pages("wallet/ledger", bob)] == [
        ("sale", "3.00"), ("deposit", "30.00")
    ]
    assert [(e["kind"], e["amount"]) for e in mk.all_pages("wallet/ledger", alice)] == [
        ("purchase", "-4.00"),
        ("sale", "2.00"),
        ("deposit", "70.00"),
    ]
    assert len(mk.all_pages("items", carol)) == 2  # what she bought; the one she sold is gone
