"""End to end over HTTP: register, deposit, list, buy, re-list, buy again; rows on the right workers."""
import pytest

from sharding.placement import node_for_user
from tests.conftest import all_homes, two_workers, worker_names

from .conftest import assert_error, describe, is_id, run_manage

pytestmark = pytest.mark.usefixtures("clean_marketplace")


def other_worker(alias):
    """Another worker than `alias`; with Citus's one alias, that one."""
    return next((name for name in worker_names() if name != alias), alias)


def rows_by_worker(db_rows, table, column, value):
    """{worker: number of rows of `table` whose `column` = value} on every worker."""
    return {
        name: db_rows(name, f"SELECT count(*) FROM {table} WHERE {column} = %s", [int(value)])[0][0]
        for name in worker_names()
    }


def only_on(counts, alias, expected):
    """`expected` rows on `alias` and none anywhere else."""
    return counts == {name: (expected if name == alias else 0) for name in counts}


def test_health_lists_every_node(mk):
    from django.conf import settings

    assert mk.get("/health/").json() == {"status": "ok"}  # the details only with the monitoring token
    response = mk.get("/health/", headers={"Authorization": f"Bearer {settings.HEALTH_MONITORING_TOKEN}"})
    assert response.status_code == 200, describe(response)
    body = response.json()
    assert body["status"] == "ok"
    assert body["in_doubt_transactions"] == 0
    names = [node["name"] for node in body["nodes"]]
    assert sorted(names) == sorted(["coordinator", *all_homes()])
    for node in body["nodes"]:
        assert node["ok"] is True, node
        assert node["role"] == ("coordinator" if node["name"] == "coordinator" else "worker"), node
        assert isinstance(node["latency_ms"], (int, float)) and node["latency_ms"] >= 0, node


@pytest.mark.parametrize("placement", ["different_workers", "same_worker"])
def test_buy_and_resell(mk, db_rows, placement):
    w1, w2 = two_workers()
    seller_node = w1
    buyer_node = w2 if placement == "different_workers" else w1
    seller = mk.user_on(seller_node)
    buyer = mk.user_on(buyer_node)
    anonymous = None

    # New wallets are empty.
    for user in (seller, buyer):
        response = mk.get("wallet", user)
        assert response.status_code == 200, describe(response)
        assert response.json() == {"balance": "0.00", "currency": "USD"}

    deposit = mk.deposit(buyer, "100.00")
    assert is_id(deposit["id"]) and deposit["amount"] == "100.00" and deposit["balance"] == "100.00", deposit

    # The seller lists an item.
    response = mk.post(
        "items", seller, json={"title": "Brass lamp", "description": "Works.", "price": "12.34", "category": "home"}
    )
    assert response.status_code == 201, describe(response)
    listing = response.json()
    assert is_id(listing["id"])
    assert listing["title"] == "Brass lamp" and listing["description"] == "Works."
    assert listing["price"] == "12.34" and listing["currency"] == "USD" and listing["category"] == "home"
    assert listing["status"] == "listed"
    assert listing["owner"] == {"id": seller["id"], "username": seller["username"]}
    assert listing["source_item_id"] is None
    assert listing["created_at"] and listing["updated_at"]

    # Anyone sees a listed item; the seller's inventory has it.
    for viewer in (anonymous, buyer, seller):
        response = mk.get(f"items/{listing['id']}", viewer)
        assert response.status_code == 200, describe(response)
        assert response.json()["id"] == listing["id"] and response.json()["status"] == "listed"
    inventory = mk.get("items", seller).json()
    assert [item["id"] for item in inventory["results"]] == [listing["id"]]
    assert mk.get("items", buyer).json()["results"] == []

    # The buyer buys it.
    response = mk.buy(buyer, listing, expected_price="12.34")
    assert response.status_code == 201, describe(response)
    purchase = response.json()
    assert is_id(purchase["id"]) and is_id(purchase["item_id"])
    assert purchase["source_item_id"] == listing["id"]
    assert purchase["item_id"] != listing["id"]
    assert purchase["price"] == "12.34"
    assert purchase["seller"] == {"id": seller["id"], "username": seller["username"]}
    assert purchase["balance"] == "87.66"
    assert purchase["created_at"]

    assert mk.balance(buyer) == "87.66"
    assert mk.balance(seller) == "12.34"

    # The listing is sold: only the seller still sees it.
    response = mk.get(f"items/{listing['id']}", seller)
    assert response.status_code == 200, describe(response)
    assert response.json()["status"] == "sold"
    assert_error(mk.get(f"items/{listing['id']}", anonymous), 404, "not_found")
    assert_error(mk.get(f"items/{listing['id']}", buyer), 404, "not_found")
    assert mk.get("items", seller).json()["results"] == []

    # The buyer's inventory has a new, unlisted item that came from the listing.
    inventory = mk.get("items", buyer).json()["results"]
    assert len(inventory) == 1
    bought = inventory[0]
    assert bought["id"] == purchase["item_id"]
    assert bought["status"] == "unlisted"
    assert bought["source_item_id"] == listing["id"]
    assert bought["title"] == "Brass lamp"
    assert bought["owner"] == {"id": buyer["id"], "username": buyer["username"]}
    assert_error(mk.get(f"items/{bought['id']}", anonymous), 404, "not_found")
    assert_error(mk.get(f"items/{bought['id']}", seller), 404, "not_found")

    # Purchases and sales.
    purchases = mk.get("purchases", buyer).json()
    assert purchases["next"] is None
    assert len(purchases["results"]) == 1
    row = purchases["results"][0]
    assert row["id"] == purchase["id"] and row["item_id"] == purchase["item_id"]
    assert row["source_item_id"] == listing["id"] and row["title"] == "Brass lamp" and row["price"] == "12.34"
    assert row["seller"] == {"id": seller["id"], "username": seller["username"]}
    assert row["created_at"]
    sales = mk.get("sales", seller).json()
    assert len(sales["results"]) == 1
    sale = sales["results"][0]
    assert is_id(sale["id"])
    assert sale["item_id"] == listing["id"] and sale["purchase_id"] == purchase["id"]
    assert sale["title"] == "Brass lamp" and sale["price"] == "12.34"
    assert sale["buyer"] == {"id": buyer["id"], "username": buyer["username"]}
    assert mk.get("sales", buyer).json()["results"] == []
    assert mk.get("purchases", seller).json()["results"] == []

    # Ledgers, newest first, signed amounts, running balances.
    ledger = mk.get("wallet/ledger", buyer).json()["results"]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in ledger] == [
        ("purchase", "-12.34", "87.66"),
        ("deposit", "100.00", "100.00"),
    ]
    assert is_id(ledger[0]["reference_id"])
    for entry in ledger:
        assert is_id(entry["id"]) and entry["created_at"]
    ledger = mk.get("wallet/ledger", seller).json()["results"]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in ledger] == [("sale", "12.34", "12.34")]
    assert is_id(ledger[0]["reference_id"])

    # Each user's rows are on that user's worker and nowhere else.
    assert node_for_user(int(seller["id"])) == seller_node and node_for_user(int(buyer["id"])) == buyer_node
    assert only_on(rows_by_worker(db_rows, "wallet_wallet", "user_id", buyer["id"]), buyer_node, 1)
    assert only_on(rows_by_worker(db_rows, "wallet_wallet", "user_id", seller["id"]), seller_node, 1)
    assert only_on(rows_by_worker(db_rows, "catalog_item", "id", listing["id"]), seller_node, 1)
    assert only_on(rows_by_worker(db_rows, "catalog_item", "id", bought["id"]), buyer_node, 1)
    assert only_on(rows_by_worker(db_rows, "catalog_item", "user_id", seller["id"]), seller_node, 1)
    assert only_on(rows_by_worker(db_rows, "catalog_item", "user_id", buyer["id"]), buyer_node, 1)
    assert only_on(rows_by_worker(db_rows, "orders_purchase", "id", purchase["id"]), buyer_node, 1)
    assert only_on(rows_by_worker(db_rows, "orders_purchase", "user_id", buyer["id"]), buyer_node, 1)
    assert only_on(rows_by_worker(db_rows, "orders_purchase", "user_id", seller["id"]), seller_node, 0)
    assert only_on(rows_by_worker(db_rows, "orders_sale", "id", sale["id"]), seller_node, 1)
    assert only_on(rows_by_worker(db_rows, "orders_sale", "user_id", seller["id"]), seller_node, 1)
    assert only_on(rows_by_worker(db_rows, "orders_sale", "user_id", buyer["id"]), buyer_node, 0)
    assert only_on(rows_by_worker(db_rows, "wallet_ledgerentry", "user_id", buyer["id"]), buyer_node, 2)
    assert only_on(rows_by_worker(db_rows, "wallet_ledgerentry", "user_id", seller["id"]), seller_node, 1)

    # The buyer re-lists what they bought; a third user buys it.
    response = mk.patch(f"items/{bought['id']}", buyer, json={"status": "listed", "price": "20.00"})
    assert response.status_code == 200, describe(response)
    relisted = response.json()
    assert relisted["status"] == "listed" and relisted["price"] == "20.00" and relisted["id"] == bought["id"]
    assert relisted["source_item_id"] == listing["id"]
    assert mk.get(f"items/{bought['id']}", anonymous).status_code == 200

    third_node = other_worker(buyer_node)
    third = mk.user_on(third_node)
    mk.deposit(third, "50.00")
    response = mk.buy(third, bought["id"], expected_price="20.00")
    assert response.status_code == 201, describe(response)
    second = response.json()
    assert second["source_item_id"] == bought["id"] and second["price"] == "20.00" and second["balance"] == "30.00"
    assert second["seller"] == {"id": buyer["id"], "username": buyer["username"]}

    assert mk.balance(third) == "30.00"
    assert mk.balance(buyer) == "107.66"
    assert mk.balance(seller) == "12.34"
    assert mk.get("items", buyer).json()["results"] == []
    third_items = mk.get("items", third).json()["results"]
    assert [(i["id"], i["source_item_id"], i["status"], i["title"]) for i in third_items] == [
        (second["item_id"], bought["id"], "unlisted", "Brass lamp")
    ]
    assert mk.get(f"items/{bought['id']}", buyer).json()["status"] == "sold"
    assert [s["item_id"] for s in mk.get("sales", buyer).json()["results"]] == [bought["id"]]
    assert [p["id"] for p in mk.get("purchases", buyer).json()["results"]] == [purchase["id"]]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in mk.get("wallet/ledger", buyer).json()["results"]] == [
        ("sale", "20.00", "107.66"),
        ("purchase", "-12.34", "87.66"),
        ("deposit", "100.00", "100.00"),
    ]
    assert only_on(rows_by_worker(db_rows, "catalog_item", "id", second["item_id"]), third_node, 1)
    assert only_on(rows_by_worker(db_rows, "orders_purchase", "user_id", third["id"]), third_node, 1)
    assert only_on(rows_by_worker(db_rows, "orders_sale", "user_id", buyer["id"]), buyer_node, 1)

    audit = run_manage("audit_ledger")
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_number_amounts_and_listing_pages(mk):
    user = mk.register()
    first = mk.post("wallet/deposits", user, json={"amount": 12.5}, key="number-amount")
    assert first.status_code == 201, first.text
    assert first.json()["amount"] == "12.50" and first.json()["balance"] == "12.50"
    second = mk.post("wallet/deposits", user, json={"amount": 7}, key="integer-amount")
    assert second.status_code == 201, second.text
    assert second.json()["balance"] == "19.50"

    ids = [mk.list_item(user, price=f"{n}.00", title=f"item {n}")["id"] for n in range(1, 6)]
    pages, cursor = [], None
    while True:
        params = {"page_size": 2, **({"cursor": cursor} if cursor else {})}
        response = mk.get("items", user, params=params)
        assert response.status_code == 200, describe(response)
        body = response.json()
        assert len(body["results"]) <= 2
        pages.append([item["id"] for item in body["results"]])
        cursor = body["next"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 10
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [item_id for page in pages for item_id in page] == ids[::-1]  # newest first


def test_exact_funds_buy_and_then_nothing_more(mk):
    seller, buyer = mk.register(), mk.register()
    mk.deposit(buyer, "5.00")
    exact = mk.list_item(seller, price="5.00")
    cent = mk.list_item(seller, price="0.01")
    response = mk.buy(buyer, exact)
    assert response.status_code == 201, describe(response)
    assert response.json()["balance"] == "0.00"
    assert_error(mk.buy(buyer, cent), 402, "insufficient_funds")
    assert mk.balance(buyer) == "0.00" and mk.balance(seller) == "5.00"
    assert mk.get(f"items/{cent['id']}").json()["status"] == "listed"
