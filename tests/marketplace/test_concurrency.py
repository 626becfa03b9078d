"""Races over real HTTP: one winner per item, no overdraft, no lost deposits."""
import random
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from tests.conftest import worker_names

from .conftest import assert_error, cents, describe, fmt, new_key, run_manage

pytestmark = [pytest.mark.usefixtures("clean_marketplace"), pytest.mark.slow]

THREADS = 20


def outcome(response):
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("error", {}).get("code") if isinstance(body, dict) and "error" in body else None
    return response.status_code, code, body


def audit_ok():
    audit = run_manage("audit_ledger")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert audit.stdout.strip(), "audit_ledger printed no summary"


def test_many_buyers_race_for_each_item(mk, db_rows):
    w1, w2 = worker_names()[:2]
    buyers = [mk.user_on(w1) for _ in range(20)]
    # 25 items whose seller is on the buyers' worker, 25 on the other one.
    sellers = [mk.user_on(w1), mk.user_on(w1), mk.user_on(w2), mk.user_on(w2)]
    deposit = "200.00"
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda buyer: mk.deposit(buyer, deposit), buyers))

    specs = []
    for n in range(50):
        seller = sellers[(0 if n % 2 else 2) + (n // 2) % 2]  # odd n: same worker as the buyers, even n: the other
        specs.append((seller, fmt(100 + n)))  # distinct prices 1.00 .. 1.49
    with ThreadPoolExecutor(THREADS) as pool:
        items = list(pool.map(lambda spec: mk.list_item(spec[0], price=spec[1]), specs))
    owner = {item["id"]: seller for item, (seller, _) in zip(items, specs, strict=True)}
    assert sum(1 for item in items if owner[item["id"]] in sellers[:2]) == 25

    # Item-major order: the 20 attempts on one item are in flight together.
    attempts = []
    for item in items:
        order = buyers[:]
        random.shuffle(order)
        attempts.extend((item, buyer) for buyer in order)

    def attempt(pair):
        item, buyer = pair
        return item, buyer, outcome(mk.buy(buyer, item))

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(attempt, attempts))

    winners = defaultdict(list)  # item id -> buyers who got 201
    unexpected = []
    spent = Counter()
    for item, buyer, (status, code, body) in results:
        if status == 201:
            winners[item["id"]].append(buyer)
            assert body["source_item_id"] == item["id"] and body["price"] == item["price"], body
            spent[buyer["id"]] += cents(item["price"])
        elif (status, code) != (409, "item_not_available"):
            unexpected.append((item["id"], buyer["username"], status, body))
    assert not unexpected, f"{len(unexpected)} unexpected responses, e.g. {unexpected[:5]}"
    assert {item_id: len(won) for item_id, won in winners.items()} == {item["id"]: 1 for item in items}

    # Buyers paid exactly for what they won; losers' balances did not move.
    for buyer in buyers:
        assert mk.balance(buyer) == fmt(cents(deposit) - spent[buyer["id"]]), buyer["username"]
        bought = {p["source_item_id"] for p in mk.all_pages("purchases", buyer)}
        assert bought == {item_id for item_id, won in winners.items() if won[0] is buyer}
    # Each seller was credited once per item.
    for seller in sellers:
        mine = [item for item in items if owner[item["id"]] is seller]
        assert mk.balance(seller) == fmt(sum(cents(item["price"]) for item in mine)), seller["username"]
        sales = mk.all_pages("sales", seller)
        assert sorted(s["item_id"] for s in sales) == sorted(item["id"] for item in mine)
        ledger = mk.all_pages("wallet/ledger", seller)
        assert Counter(e["kind"] for e in ledger) == Counter({"sale": len(mine)})
    for item in items:
        assert mk.get(f"items/{item['id']}", owner[item["id"]]).json()["status"] == "sold"
    no_transaction_in_doubt(mk, db_rows)
    audit_ok()


def test_one_wallet_cannot_overspend(mk):
    w1, w2 = worker_names()[:2]
    buyer = mk.user_on(w1)
    sellers = [mk.user_on(w1), mk.user_on(w2)]
    mk.deposit(buyer, "37.50")
    items = [mk.list_item(sellers[n % 2], price="5.00") for n in range(20)]
    expected_successes = 7  # floor(37.50 / 5.00)

    start = threading.Barrier(len(items))

    def attempt(item):
        start.wait(timeout=30)
        return outcome(mk.buy(buyer, item))

    with ThreadPoolExecutor(len(items)) as pool:
        results = list(pool.map(attempt, items))

    statuses = Counter((status, code) for status, code, _ in results)
    assert statuses == Counter(
        {(201, None): expected_successes, (402, "insufficient_funds"): 20 - expected_successes}
    ), statuses
    assert mk.balance(buyer) == "2.50"
    ledger = mk.all_pages("wallet/ledger", buyer)
    assert Counter(e["kind"] for e in ledger) == Counter({"deposit": 1, "purchase": expected_successes})
    assert all(cents(e["balance_after"]) >= 0 for e in ledger), ledger
    # Serialized debits: the running balances are 37.50, 32.50, ..., 2.50, each once.
    assert sorted(cents(e["balance_after"]) for e in ledger) == [250 + 500 * n for n in range(expected_successes + 1)]
    assert len(mk.all_pages("items", buyer)) == expected_successes
    credited = sum(cents(mk.balance(seller)) for seller in sellers)
    assert credited == expected_successes * 500
    audit_ok()


def test_concurrent_deposits_are_all_counted(mk):
    user = mk.register()

    def deposit(_):
        response = mk.post("wallet/deposits", user, json={"amount": "1.00"}, key=new_key())
        return response.status_code, response.text

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(deposit, range(200)))
    failed = [r for r in results if r[0] != 201]
    assert not failed, f"{len(failed)} deposits failed, e.g. {failed[:3]}"
    assert mk.balance(user) == "200.00"

    ledger = mk.all_pages("wallet/ledger", user)
    assert len(ledger) == 200
    assert len({e["id"] for e in ledger}) == 200
    assert all(e["kind"] == "deposit" and e["amount"] == "1.00" for e in ledger)
    # Serialized: the running balances are exactly 1.00, 2.00, ..., 200.00, each once.
    assert sorted(cents(e["balance_after"]) for e in ledger) == [n * 100 for n in range(1, 201)]

    # page_size above 100 is capped at 100.
    response = mk.get("wallet/ledger", user, params={"page_size": 1000})
    assert response.status_code == 200, describe(response)
    assert len(response.json()["results"]) == 100 and response.json()["next"]
    audit_ok()


def no_transaction_in_doubt(mk, db_rows):
    # The details of /health/ are for staff and monitoring only.
    health = mk.get("/health/", headers={"Authorization": f"Bearer {settings.HEALTH_MONITORING_TOKEN}"}).json()
    assert health["in_doubt_transactions"] == 0, health
    for name in worker_names():
        assert db_rows(name, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()") == [], name


def test_price_change_races_with_purchases(mk, db_rows):
    """The buyer pays the price they saw or nothing, whatever the seller does meanwhile."""
    w1, w2 = worker_names()[:2]
    seller, buyer = mk.user_on(w1), mk.user_on(w2)
    mk.deposit(buyer, "100.00")
    items = [mk.list_item(seller, price="2.00") for _ in range(10)]

    def race(item):
        start = threading.Barrier(2)

        def reprice():
            start.wait(timeout=30)
            return mk.patch(f"items/{item['id']}", seller, json={"price": "3.00"})

        def buy():
            start.wait(timeout=30)
            return mk.buy(buyer, item, expected_price="2.00")

        with ThreadPoolExecutor(2) as pool:
            edit, purchase = pool.submit(reprice), pool.submit(buy)
            return item, edit.result(), purchase.result()

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(race, items))
    bought = 0
    for item, edit, purchase in results:
        status, code, body = outcome(purchase)
        if status == 201:
            bought += 1
            assert body["price"] == "2.00", body
            # The listing was sold first: the edit is refused.
            assert_error(edit, 409, "item_sold")
        else:
            assert (status, code) == (409, "price_changed"), describe(purchase)
            assert edit.status_code == 200 and edit.json()["price"] == "3.00", describe(edit)
            assert mk.get(f"items/{item['id']}").json()["status"] == "listed"
    assert mk.balance(buyer) == fmt(10000 - 200 * bought)
    assert mk.balance(seller) == fmt(200 * bought)
    assert len(mk.all_pages("purchases", buyer)) == bought
    no_transaction_in_doubt(mk, db_rows)


def test_delete_races_with_purchase(mk, db_rows):
    """Deleting a listing while someone buys it: exactly one of the two wins."""
    w1, w2 = worker_names()[:2]
    seller, buyer = mk.user_on(w2), mk.user_on(w1)
    mk.deposit(buyer, "100.00")
    items = [mk.list_item(seller, price="4.00") for _ in range(10)]

    def race(item):
        start = threading.Barrier(2)

        def delete():
            start.wait(timeout=30)
            return mk.delete(f"items/{item['id']}", seller)

        def buy():
            start.wait(timeout=30)
            return mk.buy(buyer, item)

        with ThreadPoolExecutor(2) as pool:
            removal, purchase = pool.submit(delete), pool.submit(buy)
            return removal.result(), purchase.result()

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(race, items))
    bought = 0
    for removal, purchase in results:
        if purchase.status_code == 201:
            bought += 1
            assert_error(removal, 409, "item_sold")
        else:
            assert_error(purchase, (404, 409), ("not_found", "item_not_available"))
            assert removal.status_code == 204, describe(removal)
    assert mk.balance(buyer) == fmt(10000 - 400 * bought)
    assert mk.balance(seller) == fmt(400 * bought)
    assert len(mk.all_pages("items", buyer)) == bought
    assert mk.all_pages("items", seller) == []
    no_transaction_in_doubt(mk, db_rows)


def test_users_on_two_workers_buy_from_each_other_at_once(mk, db_rows):
    """Opposite cross-worker purchases lock the same two wallets: no deadlock, no lost update."""
    w1, w2 = worker_names()[:2]
    alice, bob = mk.user_on(w1), mk.user_on(w2)
    mk.deposit(alice, "50.00")
    mk.deposit(bob, "50.00")
    alices = [mk.list_item(alice, price="1.25") for _ in range(10)]
    bobs = [mk.list_item(bob, price="2.50") for _ in range(10)]
    pairs = [(bob, item) for item in alices] + [(alice, item) for item in bobs]
    random.shuffle(pairs)
    start = threading.Barrier(len(pairs))

    def buy(pair):
        start.wait(timeout=30)
        return mk.buy(*pair)

    with ThreadPoolExecutor(len(pairs)) as pool:
        responses = list(pool.map(buy, pairs))
    assert [r.status_code for r in responses] == [201] * len(pairs), [
        describe(r) for r in responses if r.status_code != 201
    ]
    # Alice: 50 - 10 * 2.50 + 10 * 1.25; Bob: 50 - 10 * 1.25 + 10 * 2.50.
    assert mk.balance(alice) == "37.50"
    assert mk.balance(bob) == "62.50"
    for user in (alice, bob):
        ledger = mk.all_pages("wallet/ledger", user)
        assert Counter(e["kind"] for e in ledger) == Counter({"deposit": 1, "purchase": 10, "sale": 10})
        assert sum(cents(e["amount"]) for e in ledger) == cents(mk.balance(user))
    no_transaction_in_doubt(mk, db_rows)
    audit_ok()
