"""Online shard moves on the real test cluster: under load, through crashes at every step, with stale
placements, partners polling, idempotent retries, growing to three workers and back, and bad requests.

Moves run as `manage.py move_shard` subprocesses (a mover that dies is a process that exits); what they
did is checked through direct connections to every node. Every test puts the shards it moved back.
"""
import json
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import SimpleNamespace

import psycopg2
import pytest
from django.conf import settings

from app.catalog.services import create_item, update_item
from app.partners.webhooks.delivery import deliver_due
from app.partners.webhooks.outbox import dispatch_events
from app.wallet.services import deposit_funds
from sharding import failpoints
from sharding.config import COORDINATOR_ALIAS
from sharding.fencing import sharded_tables
from sharding.models import ShardMove
from sharding.placement import current_placement, invalidate_placement, shard_of
from tests.conftest import REPO, server_env

from .conftest import assert_error, cents, describe, new_key, run_manage

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- helpers


def move(shard, *args, env_extra=None, timeout=180):
    env = {**server_env(), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "manage.py", "move_shard", str(shard), *args], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=timeout,
    )


def must(result):
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def placement_now():
    invalidate_placement()
    return current_placement()


def other_worker(node):
    return next(worker for worker in placement_now().workers if worker != node)


@pytest.fixture
def restore_placement():
    """Put every shard back where it was, and prove that no move left anything behind."""
    before = list(placement_now().nodes)
    yield before
    for move_row in ShardMove.objects.using(COORDINATOR_ALIAS).exclude(state__in=ShardMove.FINISHED):
        must(move(move_row.shard, "--resume"))
    now = placement_now()
    for shard, node in enumerate(before):
        if now.node_of_shard(shard) != node:
            must(move(shard, "--to", node))
    assert leftovers() == []


def leftovers():
    """Publications, subscriptions, slots, prepared fences and markers of moves, on every node."""
    found = []
    for name in placement_now().workers:
        with psycopg2.connect(**direct_params(name)) as conn, conn.cursor() as cursor:
            for label, sql in (
                ("publication", "SELECT pubname FROM pg_publication WHERE pubname LIKE 'shard_move_%'"),
                ("subscription", "SELECT subname FROM pg_subscription WHERE subname LIKE 'shard_move_%'"),
                ("slot", "SELECT slot_name FROM pg_replication_slots"),
                ("prepared fence", "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'shard_move_%'"),
                ("marker", "SELECT move_id::text FROM sharding_move_marker"),
            ):
                cursor.execute(sql)
                found += [f"{label} {row[0]} on {name}" for row in cursor.fetchall()]
        conn.close()
    return found


def direct_params(name):
    from sharding.placement import direct_connection_params

    return direct_connection_params(name)


def query(node, sql, params=()):
    conn = psycopg2.connect(**direct_params(node))
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        conn.close()


def shard_fingerprint(node, shard):
    """{table: (rows, md5 of the rows)} of one shard on one node."""
    result = {}
    for table in sharded_tables():
        ((count, digest),) = query(
            node, f'SELECT count(*), coalesce(md5(string_agg(t::text, \'|\' ORDER BY t.id)), \'\') FROM "{table}" t '
                  "WHERE logical_shard = %s", [shard],
        )
        result[table] = (count, digest)
    return result


def assert_rows_where_their_shards_are():
    """Every row of every sharded table sits on the worker that the placement gives its shard (direct look)."""
    placement = placement_now()
    for node in placement.workers:
        owned = set(placement.shards_of_node(node))
        for table in sharded_tables():
            shards = {row[0] for row in query(node, f'SELECT DISTINCT logical_shard FROM "{table}"')}
            assert shards <= owned, f"{table} on {node} has rows of shards {sorted(shards - owned)} it does not hold"
        assert {row[0] for row in query(node, "SELECT shard FROM sharding_owned_shard")} == owned, node


def user_ids_on(shard, count):
    """User ids whose logical shard is `shard` (rows can be made for them without a coordinator account)."""
    shards = settings.SHARDING["LOGICAL_SHARDS"]
    base = 10**12 + uuid.uuid4().int % 10**9 * shards
    return [base + shard + shards * k for k in range(count)]


def seed_shard(shard, users=3):
    """A few deposits and listings for users of one shard (in-process, through the services)."""
    for user_id in user_ids_on(shard, users):
        owner = SimpleNamespace(id=user_id, username=f"user{user_id}")
        assert deposit_funds(user_id=user_id, amount=12_345, idempotency_key=new_key()).status == 201
        item = create_item(owner=owner, title=f"Lamp {user_id}", price=1_000)
        update_item(owner_id=user_id, item_id=item.id, changes={"price": 1_200})


# --------------------------------------------------------------------------- bad requests


def test_bad_moves_are_refused_and_change_nothing(restore_placement):
    shard = 7
    source = placement_now().node_of_shard(shard)
    version = placement_now().version
    journaled = ShardMove.objects.using(COORDINATOR_ALIAS).count()
    cases = [
        (("--to", "coordinator"), "is not a worker"),
        (("--to", "nosuchnode"), "is not a worker"),
        (("--to", source), "already"),
    ]
    for args, message in cases:
        result = move(shard, *args)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
    for bad_shard in (64, -1, 100000):
        result = move(bad_shard, "--to", other_worker(source))
        assert result.returncode != 0 and "no logical shard" in result.stderr, result.stderr
    result = move(shard)
    assert result.returncode != 0 and "--to" in result.stderr
    result = move(shard, "--resume")
    assert result.returncode != 0 and "no unfinished move" in result.stderr
    assert placement_now().version == version
    assert ShardMove.objects.using(COORDINATOR_ALIAS).count() == journaled

    # A second move of a shard that is moving already: the first is left where it crashed.
    crashed = move(shard, "--to", other_worker(source), env_extra={"SHARDING_FAILPOINTS": "move_copied=exit"})
    assert crashed.returncode == failpoints.EXIT_CODE, crashed.stderr
    version = placement_now().version
    again = move(shard, "--to", other_worker(source))
    assert again.returncode != 0 and "being moved already" in again.stderr, again.stderr
    assert placement_now().version == version
    assert ShardMove.objects.using(COORDINATOR_ALIAS).exclude(state__in=ShardMove.FINISHED).count() == 1
    must(move(shard, "--abort"))


# --------------------------------------------------------------------------- crash at every step


BEFORE_SWITCH = ("announced", "published", "subscribed", "copied", "fenced", "marked", "owned")


@pytest.mark.parametrize("then", ["resume", "abort"])
@pytest.mark.parametrize("step", failpoints.MOVE_STEPS)
def test_a_mover_that_dies_at_any_step_is_resumed_or_aborted(step, then, clean_marketplace, restore_placement):
    shard = 11
    seed_shard(shard)
    source = placement_now().node_of_shard(shard)
    target = other_worker(source)
    before = shard_fingerprint(source, shard)
    assert sum(count for count, _ in before.values()) > 0

    crashed = move(shard, "--to", target, env_extra={"SHARDING_FAILPOINTS": f"move_{step}=exit"})
    assert crashed.returncode == failpoints.EXIT_CODE, describe_run(crashed)

    if then == "abort" and step in BEFORE_SWITCH:
        must(move(shard, "--abort"))
        holder = source
    else:
        if then == "abort":  # past the switch: abort is refused, the move can only be finished
            refused = move(shard, "--abort")
            assert refused.returncode != 0 and "can only be finished" in refused.stderr, describe_run(refused)
        must(move(shard, "--resume"))
        holder = target
    assert placement_now().node_of_shard(shard) == holder
    assert shard_fingerprint(holder, shard) == before
    empty = other_worker(holder)
    assert all(count == 0 for count, _ in shard_fingerprint(empty, shard).values())
    assert_rows_where_their_shards_are()
    assert leftovers() == []
    # The shard takes writes where it now is.
    seed_shard(shard, users=1)


def describe_run(result):
    return f"exit {result.returncode}:\n{result.stdout[-1500:]}\n{result.stderr[-2500:]}"


# --------------------------------------------------------------------------- stale placement


def test_a_write_with_a_stale_placement_is_refused_by_the_old_worker_and_lands_on_the_new(
    clean_marketplace, restore_placement, caplog, monkeypatch
):
    shard = 13
    (user_id,) = user_ids_on(shard, 1)
    source = placement_now().node_of_shard(shard)
    target = other_worker(source)
    # This process keeps the map it cached before the move.
    monkeypatch.setitem(settings.SHARDING, "PLACEMENT_TTL", 3600)
    stale = placement_now()
    must(move(shard, "--to", target))
    assert current_placement() is stale and current_placement().node_of_shard(shard) == source
    caplog.set_level("INFO", logger="sharding.transactions")

    status, body = deposit_funds(user_id=user_id, amount=4_200, idempotency_key=new_key())

    assert status == 201, body
    assert "a shard moved; retrying" in caplog.text
    assert query(target, "SELECT balance FROM wallet_wallet WHERE user_id = %s", [user_id]) == [(4_200,)]
    assert query(source, "SELECT count(*) FROM wallet_wallet WHERE user_id = %s", [user_id]) == [(0,)]
    assert current_placement().node_of_shard(shard) == target


def test_the_old_worker_refuses_a_direct_write_to_a_moved_shard(clean_marketplace, restore_placement):
    shard = 17
    source = placement_now().node_of_shard(shard)
    must(move(shard, "--to", other_worker(source)))
    (user_id,) = user_ids_on(shard, 1)
    with pytest.raises(psycopg2.Error) as refused:
        query(source, "INSERT INTO wallet_wallet (user_id, logical_shard, balance, updated_at) "
                      "VALUES (%s, %s, 5, now())", [user_id, shard])
    assert refused.value.pgcode == "SH001"


# --------------------------------------------------------------------------- idempotency


def test_a_retry_with_the_same_key_after_a_move_returns_the_first_response(mk, restore_placement):
    user = mk.user_on(placement_now().workers[0])
    shard = shard_of(int(user["id"]))
    key = new_key()
    first = mk.post("wallet/deposits", user, json={"amount": "25.00"}, key=key)
    assert first.status_code == 201, describe(first)
    must(move(shard, "--to", other_worker(placement_now().node_of_shard(shard))))

    again = mk.post("wallet/deposits", user, json={"amount": "25.00"}, key=key)

    assert again.status_code == 201 and again.json() == first.json()
    assert mk.balance(user) == "25.00"
    assert_error(mk.post("wallet/deposits", user, json={"amount": "26.00"}, key=key), 422, "idempotency_key_reused")


# --------------------------------------------------------------------------- under load


def test_a_shard_moves_while_eight_threads_deposit_and_buy_across_workers(mk, restore_placement):
    w1, w2 = placement_now().workers[:2]
    moving_user = mk.user_on(w1)
    shard = shard_of(int(moving_user["id"]))
    others = [mk.user_on(w2) for _ in range(3)] + [mk.user_on(w1)]
    everyone = [moving_user, *others]
    for user in everyone:
        mk.deposit(user, "5000.00")
    deposited = 5000_00 * len(everyone)
    # Listings of the moving user bought by others, and others' listings bought by the moving user.
    sales = [(buyer, mk.list_item(moving_user, price="3.00")) for buyer in others for _ in range(12)]
    sales += [(moving_user, mk.list_item(seller, price="2.00")) for seller in others for _ in range(12)]
    stop = threading.Event()
    errors, lock = [], threading.Lock()
    deposits = []

    def depositor(user):
        while not stop.is_set():
            response = mk.post("wallet/deposits", user, json={"amount": "1.00"}, key=new_key(), timeout=30)
            with lock:
                (deposits if response.status_code == 201 else errors).append(describe(response))

    def buyer(jobs):
        done = 0
        for buyer_user, item in jobs:
            response = mk.buy(buyer_user, item, timeout=30)
            with lock:
                if response.status_code != 201:
                    errors.append(f"buy {item['id']}: {describe(response)}")
            done += 1
            time.sleep(0.02)
        return done

    with ThreadPoolExecutor(8) as pool:
        depositing = [pool.submit(depositor, user) for user in (moving_user, others[0], moving_user, others[1])]
        buying = [pool.submit(buyer, sales[i::4]) for i in range(4)]
        time.sleep(0.5)
        result = move(shard, "--to", w2)
        time.sleep(0.5)
        stop.set()
        bought = sum(f.result() for f in buying)
        for f in depositing:
            f.result()
    must(result)
    assert placement_now().node_of_shard(shard) == w2
    assert errors == [], f"{len(errors)} failed requests, e.g. {errors[:3]}"
    assert bought == len(sales)

    total = sum(
        query(node, "SELECT coalesce(sum(balance), 0) FROM wallet_wallet")[0][0] for node in placement_now().workers
    )
    assert total == deposited + 100 * len(deposits), "money was created or lost"
    sold_once = [
        query(node, "SELECT count(*), count(DISTINCT item_id) FROM orders_sale")[0] for node in placement_now().workers
    ]
    assert sum(c for c, _ in sold_once) == sum(d for _, d in sold_once) == len(sales)
    audit = run_manage("audit_ledger")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert_rows_where_their_shards_are()
    # Read-your-writes through the server after the switch.
    assert cents(mk.balance(moving_user)) == query(w2, "SELECT balance FROM wallet_wallet WHERE user_id = %s",
                                                   [int(moving_user["id"])])[0][0]


# --------------------------------------------------------------------------- partners


def test_feed_polls_and_webhook_deliveries_that_span_a_move_see_each_change_once(
    clean_marketplace, restore_placement, settings
):
    from rest_framework.test import APIClient

    from app.partners.keys import issue_key
    from app.partners.models import Partner
    from tests.test_webhooks import Receiver, register

    settings.PARTNER_RATE_LIMIT = "100000/min"
    partner = Partner.objects.create(name="Mover")
    _, plaintext = issue_key(partner, ["products:read", "webhooks:manage"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plaintext}")
    receiver = Receiver()
    try:
        register(client, receiver.url)
        shard = 19
        seed_shard(shard, users=4)
        other_shard_users = user_ids_on(20, 2)
        for user_id in other_shard_users:
            create_item(owner=SimpleNamespace(id=user_id, username=f"user{user_id}"), title="Chair", price=900)
        seen, cursor = poll(client, None)
        dispatch_events()  # some events become deliveries before the move, the rest after
        for user_id in user_ids_on(shard, 2):
            create_item(owner=SimpleNamespace(id=user_id, username=f"user{user_id}"), title="Desk", price=700)
        source = placement_now().node_of_shard(shard)
        must(move(shard, "--to", other_worker(source)))
        invalidate_placement()
        for user_id in user_ids_on(shard, 1):
            create_item(owner=SimpleNamespace(id=user_id, username=f"user{user_id}"), title="Sofa", price=800)
        more, cursor = poll(client, cursor)
        seen += more
        time.sleep(1.1)  # past the newest change's frontier
        more, cursor = poll(client, cursor)
        seen += more
        dispatch_events()
        deliver_due()
        deliver_due()
    finally:
        receiver.close()
    expected = expected_changes()
    assert sorted(seen) == sorted(expected), "the feed missed or repeated a change"
    delivered = [json.loads(r["body"])["id"] for r in receiver.ok()]
    assert len(delivered) == len(set(delivered)), "an event was delivered twice"
    events = {
        str(row[0]) for node in placement_now().workers for row in query(node, "SELECT id FROM catalog_listingevent")
    }
    assert set(delivered) == events


def poll(client, cursor):
    seen = []
    while True:
        response = client.get("/api/partner/v1/products", {"page_size": 3, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [(r["id"], datetime.fromisoformat(r["updated_at"])) for r in body["results"]]
        cursor = body["next"]
        if not body["has_more"]:
            return seen, cursor


def expected_changes():
    """Each item once, as it is now: (id, updated_at)."""
    return [
        (str(i), u) for node in placement_now().workers
        for i, u in query(node, "SELECT id, updated_at FROM catalog_item")
    ]


# --------------------------------------------------------------------------- grow and shrink


def test_grow_to_three_workers_and_back(clean_marketplace, restore_placement):
    for shard in (1, 2, 30, 63):
        seed_shard(shard, users=2)
    before = {shard: shard_fingerprint(placement_now().node_of_shard(shard), shard) for shard in range(64)}
    env = {**server_env()}
    added = subprocess.run([sys.executable, "-m", "cluster", "add-node"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=180)
    assert added.returncode == 0, added.stderr
    new = added.stdout.strip().splitlines()[-1]
    try:
        assert new in placement_now().workers and placement_now().shards_of_node(new) == []
        must(run_manage("rebalance", "--yes", timeout=600))
        counts = sorted(len(placement_now().shards_of_node(w)) for w in placement_now().workers)
        assert counts == [21, 21, 22], counts
        assert_rows_where_their_shards_are()
        moved = placement_now().shards_of_node(new)
        for shard in moved:
            assert shard_fingerprint(new, shard) == before[shard], f"shard {shard} changed in its move"
        listing = run_manage("shard_moves")
        assert "done" in listing.stdout

        must(run_manage("drain_node", new, "--yes", timeout=600))
        assert placement_now().shards_of_node(new) == []
        removed = subprocess.run([sys.executable, "-m", "cluster", "remove-node", new, "--yes"], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert removed.returncode == 0, removed.stderr
        assert new not in placement_now().workers
    finally:
        if new in placement_now().workers:  # a failure above: put its shards back and forget it
            run_manage("drain_node", new, "--yes", timeout=600)
            subprocess.run([sys.executable, "-m", "cluster", "remove-node", new, "--yes"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert_rows_where_their_shards_are()
    for shard in range(64):
        assert shard_fingerprint(placement_now().node_of_shard(shard), shard) == before[shard]


def test_a_worker_that_holds_shards_cannot_be_removed():
    worker = placement_now().workers[0]
    result = run_manage("remove_worker", worker)
    assert result.returncode != 0 and "holds" in result.stderr and "drain_node" in result.stderr
    assert worker in placement_now().workers


def test_rebalance_dry_run_moves_nothing():
    version = placement_now().version
    result = must(run_manage("rebalance", "--dry-run"))
    assert "nothing to move" in result.stdout or "dry run: nothing moved" in result.stdout
    assert placement_now().version == version
