"""Round trips per purchase on each node, counted by the nodes' pgbouncers.

    CLUSTER_NAME=bench .venv/bin/python -m benchmarks.round_trips [--purchases 50]

(or `make bench-round-trips`). Makes a buyer and two sellers, one on the
buyer's worker and one on the other, and buys their listings through the
API in-process (Django's test client: the same views, services and
transactions as a server, without HTTP). pgbouncer counts every query a
client sends (SHOW STATS, total_query_count), which is every round trip:
BEGIN, each statement, PREPARE TRANSACTION, COMMIT PREPARED. Nothing else
may use the cluster meanwhile (run it with no server and no maintenance).
"""
import argparse
import os
import uuid

from benchmarks import UNTHROTTLED_ENV
from benchmarks.twopc_transfers import _setup_django
from cluster import bouncer


def _user_on(alias):
    from django.contrib.auth.models import User

    from sharding.placement import node_for_user

    while True:
        user = User.objects.create_user(f"rt{uuid.uuid4().hex[:12]}", password=uuid.uuid4().hex)
        if node_for_user(user.id) == alias:
            return user


def _client(user):
    from django.test import Client

    from app.accounts.services import issue_token

    token, _ = issue_token(user, client="benchmarks.round_trips")
    return Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")


def _post(client, path, body, *, key=True):
    headers = {"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex} if key else {}
    response = client.post(path, body, content_type="application/json", **headers)
    if response.status_code != 201:
        raise SystemExit(f"POST {path}: {response.status_code} {response.content[:300]!r}")
    return response.json()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=50, help="purchases measured per kind (default 50)")
    args = parser.parse_args()
    os.environ.setdefault("CLUSTER_NAME", "bench")
    for name, rate in UNTHROTTLED_ENV.items():  # 50 purchases a run: over the default purchase limit
        os.environ.setdefault(name, rate)
    _setup_django()
    from django.conf import settings

    from sharding.placement import all_workers

    workers = all_workers()
    if len(workers) < 2:
        raise SystemExit("needs a cluster with at least 2 workers")
    buyer = _client(_user_on(workers[0]))
    _post(buyer, "/api/v1/wallet/deposits", {"amount": "100000.00"})
    print(f"round trips per purchase, counted by pgbouncer, {args.purchases} purchases each")
    for kind, seller_node in (("same-worker", workers[0]), ("cross-worker", workers[1])):
        seller = _client(_user_on(seller_node))
        listings = [
            _post(
                seller, "/api/v1/items", {"title": f"round trip {i}", "price": "1.00", "status": "listed"}, key=False
            )["id"]
            for i in range(args.purchases + 1)
        ]
        # The first purchase creates the seller's wallet: not the steady state.
        _post(buyer, "/api/v1/purchases", {"item_id": listings.pop(), "expected_price": "1.00"})
        before = bouncer.query_counts(settings.CLUSTER_CONFIG)
        for listing in listings:
            _post(buyer, "/api/v1/purchases", {"item_id": listing, "expected_price": "1.00"})
        after = bouncer.query_counts(settings.CLUSTER_CONFIG)
        per_node = {node: (after[node] - before[node]) / len(listings) for node in after}
        total = sum(per_node.values())
        nodes = ", ".join(f"{node} {count:.1f}" for node, count in per_node.items())
        print(f"{kind:13} {total:5.1f}  ({nodes})")


if __name__ == "__main__":
    main()
