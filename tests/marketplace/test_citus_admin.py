"""The DBA commands, /health/ and the cluster page on a Citus cluster (make test-citus only: marker citus_engine).

Shards move for real (citus_move_shard_placement, a drain and a rebalance through Citus's background jobs)
while the marketplace's rows stay where the app can read them, and money stays as it was.
"""
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from sharding import citus_admin
from sharding.config import COORDINATOR_ALIAS
from sharding.health import node_health
from sharding.ids import shard_of_id
from tests.conftest import home_of_user, two_homes

from .conftest import cents, run_manage

pytestmark = [pytest.mark.citus_engine, pytest.mark.slow]


def _shard_group_node(logical_shard):
    """host:port holding the Citus shard group of a logical shard."""
    with connections[COORDINATOR_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT nodename || ':' || nodeport FROM citus_shards WHERE table_name = 'wallet_wallet'::regclass "
            "AND shardid = get_shard_id_for_distribution_column('wallet_wallet', %s)",
            [logical_shard],
        )
        return cursor.fetchone()[0]


def _placements_by_node():
    return {node.address: node.shards for node in citus_admin.citus_nodes()}


def _balances(mk, users):
    return [mk.balance(user) for user in users]


@pytest.fixture
def funded_users(mk):
    users = [mk.register() for _ in range(4)]
    for user in users:
        mk.deposit(user, "25.00")
    return users


def test_health_lists_the_coordinator_and_every_citus_worker():
    nodes = node_health()
    workers = [node.name for node in nodes if node.role == "worker"]
    assert nodes[0].name == "coordinator" and nodes[0].ok
    assert sorted(workers) == sorted(citus_admin.active_worker_addresses())
    assert len(workers) >= 2 and all(node.ok for node in nodes)


def test_the_cluster_page_shows_citus_workers_with_every_logical_shard_once(mk):
    staff = get_user_model().objects.create_user("citus-staff", "staff@example.com", "pw-Ke9!x2", is_staff=True)
    client = Client()
    client.force_login(staff)
    response = client.get("/staff/cluster/")
    assert response.status_code == 200
    html = response.content.decode()
    by_node = citus_admin.logical_shards_by_node()
    assert sorted(shard for shards in by_node.values() for shard in shards) == list(range(64))
    for address, shards in by_node.items():
        assert re.search(rf'<th scope="row">{re.escape(address)}</th>\s*<td>worker</td>.*?status-up">up</span>'
                         rf'.*?<td>{len(shards)} <span class="meta shard-list">\({", ".join(map(str, shards))}\)',
                         html, re.S), address


def test_move_shard_moves_the_shard_group_and_the_rows_stay_readable(mk, funded_users):
    user = funded_users[0]
    shard = shard_of_id(user["id"])
    source = _shard_group_node(shard)
    target = next(address for address in citus_admin.active_worker_addresses() if address != source)
    before = _balances(mk, funded_users)

    moved = run_manage("move_shard", str(shard), "--to", target, timeout=300)
    assert moved.returncode == 0, moved.stderr
    assert f"moved from {source} to {target}" in moved.stdout
    assert _shard_group_node(shard) == target
    assert _balances(mk, funded_users) == before
    mk.deposit(user, "1.00")  # writes reach the shard on its new node
    assert cents(mk.balance(user)) == cents(before[0]) + 100

    back = run_manage("move_shard", str(shard), "--to", source, timeout=300)
    assert back.returncode == 0, back.stderr
    assert _shard_group_node(shard) == source


def test_move_shard_refusals_change_nothing(mk):
    before = _placements_by_node()
    for args, message in [
        (("move_shard", "3", "--to", "127.0.0.1:1"), "is not a Citus worker"),
        (("move_shard", "3", "--to", _shard_group_node(3)), "already"),
        (("move_shard", "3", "--resume"), "nothing to resume"),
    ]:
        result = run_manage(*args)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
    assert _placements_by_node() == before


def test_drain_node_empties_a_worker_and_rebalance_evens_them_out_again(mk, funded_users):
    before = _balances(mk, funded_users)
    drained = citus_admin.active_worker_addresses()[-1]

    dry = run_manage("drain_node", drained, "--dry-run")
    assert dry.returncode == 0 and "dry run: nothing moved" in dry.stdout, dry.stderr
    assert _placements_by_node()[drained] > 0

    drain = run_manage("drain_node", drained, "--yes", timeout=900)
    assert drain.returncode == 0, drain.stderr
    assert "finished" in drain.stdout and "job" in drain.stdout
    assert _placements_by_node()[drained] == 0
    assert _balances(mk, funded_users) == before

    with connections[COORDINATOR_ALIAS].cursor() as cursor:  # the node takes shards again
        cursor.execute("SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', true)",
                       drained.rsplit(":", 1))
    rebalance = run_manage("rebalance", "--yes", timeout=900)
    assert rebalance.returncode == 0, rebalance.stderr
    counts = _placements_by_node()
    assert min(counts.values()) > 0 and max(counts.values()) - min(counts.values()) <= max(counts.values()) // 4
    assert _balances(mk, funded_users) == before


def test_add_worker_of_a_known_node_and_remove_worker_of_a_node_with_shards_change_nothing(mk):
    address = citus_admin.active_worker_addresses()[0]
    host, port = address.rsplit(":", 1)
    before = _placements_by_node()

    again = run_manage("add_worker", "worker1", "--host", host, "--port", port)
    assert again.returncode == 0 and "was a Citus worker already" in again.stdout, again.stderr
    removed = run_manage("remove_worker", address)
    assert removed.returncode != 0 and "drain_node" in removed.stderr, removed.stderr
    assert _placements_by_node() == before


def test_a_purchase_between_users_on_two_citus_workers_moves_the_money_on_both(mk):
    """Citus's own two-phase commit: the buyer's and the seller's rows are on different Citus workers."""
    first, second = two_homes()
    seller, buyer = mk.register(), mk.register()
    while home_of_user(int(seller["id"])) != first:
        seller = mk.register()
    while home_of_user(int(buyer["id"])) != second:
        buyer = mk.register()
    mk.deposit(buyer, "30.00")
    listing = mk.list_item(seller, price="12.50")
    bought = mk.buy(buyer, listing)
    assert bought.status_code == 201, bought.text
    assert (cents(mk.balance(buyer)), cents(mk.balance(seller))) == (1750, 1250)
    with connections[COORDINATOR_ALIAS].cursor() as cursor:
        cursor.execute("SELECT recover_prepared_transactions()")  # nothing is left in doubt on either worker
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM run_command_on_workers('SELECT count(*) FROM pg_prepared_xacts') "
                       "WHERE result <> '0'")
        assert cursor.fetchone()[0] == 0
