"""Idempotency-Key: a retried request returns the first result and moves money once."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import worker_names

from .conftest import assert_error, new_key

pytestmark = pytest.mark.usefixtures("clean_marketplace")


def ledger_kinds(mk, user):
    return [entry["kind"] for entry in mk.all_pages("wallet/ledger", user)]


def test_same_deposit_key_in_parallel_deposits_once(mk):
    user = mk.register()
    key = new_key()
    start = threading.Barrier(10)

    def deposit(_):
        start.wait(timeout=30)
        return mk.post("wallet/deposits", user, json={"amount": "25.00"}, key=key)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(deposit, range(10)))
    assert [r.status_code for r in responses] == [201] * 10, [(r.status_code, r.text[:200]) for r in responses]
    bodies = [r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies), bodies
    assert bodies[0]["amount"] == "25.00" and bodies[0]["balance"] == "25.00"
    assert mk.balance(user) == "25.00"
    assert ledger_kinds(mk, user) == ["deposit"]

    # Later retries still return the first result.
    again = mk.post("wallet/deposits", user, json={"amount": "25.00"}, key=key)
    assert again.status_code == 201 and again.json() == bodies[0]
    assert mk.balance(user) == "25.00"


def test_purchase_retried_after_client_timeout_is_charged_once(mk):
    w1, w2 = worker_names()[:2]
    seller, buyer = mk.user_on(w1), mk.user_on(w2)
    mk.deposit(buyer, "50.00")
    item = mk.list_item(seller, price="12.50")
    key = new_key()
    payload = {"item_id": item["id"], "expected_price": "12.50"}

    first = None
    try:
        # Connect normally, then give up waiting for the answer almost at once.
        first = mk.post("purchases", buyer, json=payload, key=key, timeout=(10, 0.001))
    except requests.exceptions.Timeout:
        pass
    retry = mk.post("purchases", buyer, json=payload, key=key)
    assert retry.status_code == 201, retry.text
    purchase = retry.json()
    if first is not None:  # the server was quicker than the client's timeout
        assert first.status_code == 201 and first.json() == purchase

    assert purchase["source_item_id"] == item["id"] and purchase["balance"] == "37.50"
    assert [p["id"] for p in mk.all_pages("purchases", buyer)] == [purchase["id"]]
    assert mk.balance(buyer) == "37.50"
    assert mk.balance(seller) == "12.50"
    assert ledger_kinds(mk, buyer) == ["purchase", "deposit"]
    assert ledger_kinds(mk, seller) == ["sale"]
    assert len(mk.all_pages("items", buyer)) == 1

    # Once more, after everything settled: the same purchase, not a 409 for a sold item.
    time.sleep(0.2)
    third = mk.post("purchases", buyer, json=payload, key=key)
    assert third.status_code == 201 and third.json() == purchase
    assert mk.balance(buyer) == "37.50"


def test_same_key_with_another_body_is_refused(mk, snapshot):
    w1, w2 = worker_names()[:2]
    seller, buyer = mk.user_on(w1), mk.user_on(w2)
    first_deposit = mk.deposit(buyer, "40.00", key="deposit-key")
    item, other = mk.list_item(seller, price="10.00"), mk.list_item(seller, price="10.00")
    bought = mk.buy(buyer, item, key="purchase-key")
    assert bought.status_code == 201, bought.text

    before = snapshot()
    assert_error(
        mk.post("wallet/deposits", buyer, json={"amount": "41.00"}, key="deposit-key"), 422, "idempotency_key_reused"
    )
    assert_error(
        mk.post("purchases", buyer, json={"item_id": other["id"], "expected_price": "10.00"}, key="purchase-key"),
        422,
        "idempotency_key_reused",
    )
    assert_error(
        mk.post("purchases", buyer, json={"item_id": item["id"], "expected_price": "11.00"}, key="purchase-key"),
        422,
        "idempotency_key_reused",
    )
    # A deposit's key used for a purchase is not the same request either.
    assert_error(
        mk.post("purchases", buyer, json={"item_id": other["id"], "expected_price": "10.00"}, key="deposit-key"),
        422,
        "idempotency_key_reused",
    )
    assert snapshot() == before
    assert mk.balance(buyer) == "30.00"

    # The original requests still replay.
    replay = mk.post("wallet/deposits", buyer, json={"amount": "40.00"}, key="deposit-key")
    assert replay.status_code == 201 and replay.json() == first_deposit
    replay = mk.buy(buyer, item, key="purchase-key")
    assert replay.status_code == 201 and replay.json() == bought.json()
    assert snapshot() == before


def test_keys_belong_to_one_user(mk):
    alice, bob = mk.register(), mk.register()
    a = mk.deposit(alice, "10.00", key="shared-key")
    b = mk.deposit(bob, "20.00", key="shared-key")
    assert a["id"] != b["id"]
    assert a["balance"] == "10.00" and b["balance"] == "20.00"
    assert mk.balance(alice) == "10.00" and mk.balance(bob) == "20.00"
    # Bob's key with another amount than Alice's is not a reuse of Alice's key.
    assert mk.post("wallet/deposits", bob, json={"amount": "20.00"}, key="shared-key").json() == b


def test_stored_business_errors_replay(mk):
    w1, w2 = worker_names()[:2]
    seller, buyer = mk.user_on(w1), mk.user_on(w2)
    item = mk.list_item(seller, price="30.00")
    mk.deposit(buyer, "10.00")

    poor = mk.buy(buyer, item, key="too-poor")
    assert_error(poor, 402, "insufficient_funds")
    changed = mk.buy(buyer, item, expected_price="29.00", key="stale-price")
    assert_error(changed, 409, "price_changed")

    mk.deposit(buyer, "50.00")
    # The same keys give the stored answers, even though the purchase would now succeed.
    again = mk.buy(buyer, item, key="too-poor")
    assert again.status_code == 402 and again.json() == poor.json()
    again = mk.buy(buyer, item, expected_price="29.00", key="stale-price")
    assert again.status_code == 409 and again.json() == changed.json()
    assert mk.balance(buyer) == "60.00"
    assert mk.get(f"items/{item['id']}").json()["status"] == "listed"

    # A new key buys it; then a stored 409 for the sold item replays too.
    assert mk.buy(buyer, item, key="fresh").status_code == 201
    assert mk.balance(buyer) == "30.00"
    latecomer = mk.user_on(w1)
    mk.deposit(latecomer, "100.00")
    late = mk.buy(latecomer, item, key="late")
    assert_error(late, 409, "item_not_available")
    again = mk.buy(latecomer, item, key="late")
    assert again.status_code == 409 and again.json() == late.json()
    assert mk.balance(latecomer) == "100.00"


def test_same_purchase_key_in_parallel_buys_once(mk):
    w1, w2 = worker_names()[:2]
    seller, buyer = mk.user_on(w2), mk.user_on(w1)
    mk.deposit(buyer, "30.00")
    item = mk.list_item(seller, price="9.99")
    key = new_key()
    start = threading.Barrier(10)

    def buy(_):
        start.wait(timeout=30)
        return mk.buy(buyer, item, key=key)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(buy, range(10)))
    assert [r.status_code for r in responses] == [201] * 10, [r.text[:200] for r in responses]
    bodies = [r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies), bodies
    assert bodies[0]["balance"] == "20.01"
    assert mk.balance(buyer) == "20.01" and mk.balance(seller) == "9.99"
    assert len(mk.all_pages("purchases", buyer)) == 1
    assert len(mk.all_pages("sales", seller)) == 1
    assert ledger_kinds(mk, buyer) == ["purchase", "deposit"]
