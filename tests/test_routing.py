"""Rows live on their owner's worker, and the router refuses queries that name no node."""
import pytest
from django.conf import settings
from django.db import connections

from sharding.config import COORDINATOR_ALIAS
from sharding.errors import UnroutedQueryError
from sharding.ids import shard_of_id
from sharding.placement import all_workers, current_placement, node_for_id, node_for_user, shard_of
from tests.conftest import worker_names
from tests.shardtest.models import Note

pytestmark = pytest.mark.usefixtures("clean_shardtest")


def test_every_logical_shard_is_placed_evenly_over_the_workers():
    # Round-robin at creation; shard moves may have changed which shard is where since, not the balance.
    placement = current_placement()
    workers = all_workers()
    assert len(placement.nodes) == settings.SHARDING["LOGICAL_SHARDS"]
    assert set(placement.nodes) == set(workers)
    counts = [placement.nodes.count(worker) for worker in workers]
    assert max(counts) - min(counts) <= 1, counts


def test_shard_of_is_stable_and_in_range():
    shards = settings.SHARDING["LOGICAL_SHARDS"]
    assert [shard_of(uid) for uid in (1, 2, shards, shards + 1)] == [1, 2, 0, 1]
    for bad in (0, -1, "7", 1.0, True):
        with pytest.raises(ValueError):
            shard_of(bad)


@pytest.mark.parametrize("user_id", [1, 2, 77, 10_001, 123_456_789])
def test_row_of_user_is_on_that_users_worker_and_no_other(user_id, direct_connect):
    alias = node_for_user(user_id)
    note = Note.objects.using(alias).create(user_id=user_id, body=f"note of {user_id}")
    assert shard_of_id(note.id) == shard_of(user_id) == note.logical_shard
    assert node_for_id(note.id) == alias

    holders = []
    for name in worker_names():
        with direct_connect(name).cursor() as cursor:
            cursor.execute("SELECT user_id, body FROM shardtest_note WHERE id = %s", [note.id])
            if cursor.fetchone() == (user_id, f"note of {user_id}"):
                holders.append(name)
    assert holders == [alias]


def test_users_spread_over_every_worker():
    assert {node_for_user(uid) for uid in range(1, 200)} == set(all_workers())


def test_bulk_create_assigns_ids_from_each_rows_shard():
    alias = node_for_user(5)
    notes = Note.objects.using(alias).bulk_create([Note(user_id=5, body=str(i)) for i in range(50)])
    assert len({note.id for note in notes}) == 50
    assert all(shard_of_id(note.id) == shard_of(5) for note in notes)


@pytest.mark.parametrize(
    "unrouted",
    [
        lambda: list(Note.objects.all()),
        lambda: Note.objects.filter(user_id=1).count(),
        lambda: Note.objects.create(user_id=1, body="x"),
        lambda: Note(user_id=1, body="x").save(),
        lambda: Note.objects.filter(user_id=1).delete(),
    ],
    ids=["list", "count", "create", "save", "delete"],
)
def test_unrouted_query_on_sharded_model_is_refused(unrouted):
    with pytest.raises(UnroutedQueryError, match="shardtest.Note is sharded"):
        unrouted()


def test_instance_loaded_from_a_node_saves_back_to_that_node():
    alias = node_for_user(9)
    note = Note.objects.using(alias).create(user_id=9, body="before")
    note.body = "after"
    note.save()  # routed by the instance's own node
    assert Note.objects.using(alias).get(id=note.id).body == "after"


def _tables(alias):
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.own_engine  # our workers hold the sharded tables
def test_sharded_tables_exist_only_on_workers_and_catalogue_only_on_coordinator():
    coordinator_tables = _tables(COORDINATOR_ALIAS)
    assert "sharding_shard_placement" in coordinator_tables and "auth_user" in coordinator_tables
    assert "shardtest_note" not in coordinator_tables
    for alias in all_workers():
        tables = _tables(alias)
        assert "shardtest_note" in tables and "shardtest_account" in tables
        assert "sharding_shard_placement" not in tables and "auth_user" not in tables
