"""Ids are 64-bit, carry their logical shard, and are distinct across processes."""
import multiprocessing
import random
from datetime import datetime, timedelta, timezone

import pytest

from sharding.errors import InvalidIdError
from sharding.ids import MAX_LOGICAL_SHARDS, decode_id, new_ids, parse_id, shard_of_id
from sharding.placement import logical_shard_count, node_of_shard

PROCESSES = 4
IDS_PER_PROCESS = 25_000


def _make_ids(seed):
    """Runs in a fresh process: make ids for random shards, each on the worker that holds the shard."""
    import django

    django.setup()
    from sharding.ids import new_ids
    from sharding.placement import logical_shard_count, node_of_shard

    rng = random.Random(seed)
    made = []
    while len(made) < IDS_PER_PROCESS:
        shard = rng.randrange(logical_shard_count())
        batch = rng.randint(1, 200)
        made.extend((shard, value) for value in new_ids(node_of_shard(shard), shard, batch))
    return made


@pytest.mark.slow
def test_ids_made_by_four_processes_at_once_are_distinct_and_decode_to_their_shard():
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        batches = pool.map(_make_ids, range(PROCESSES))
    made = [pair for batch in batches for pair in batch]
    assert len(made) >= PROCESSES * IDS_PER_PROCESS
    assert len({value for _, value in made}) == len(made)
    assert all(shard_of_id(value) == shard for shard, value in made)
    assert all(0 < value < 2**63 for _, value in made)


def test_id_carries_creation_time_and_shard():
    shard = logical_shard_count() - 1
    before = datetime.now(timezone.utc)
    (value,) = new_ids(node_of_shard(shard), shard)
    decoded = decode_id(value)
    assert decoded.logical_shard == shard
    # The id clock may run ahead of the wall clock only under >1,024 ids per ms.
    assert before - timedelta(seconds=1) <= decoded.created_at <= datetime.now(timezone.utc) + timedelta(seconds=1)


def test_ids_from_one_shard_increase():
    values = new_ids(node_of_shard(3), 3, 500)
    assert values == sorted(values) and len(set(values)) == 500


def test_shard_out_of_range_is_refused_by_the_database():
    from django.db import DatabaseError

    with pytest.raises(DatabaseError, match="out of range"):
        new_ids(node_of_shard(0), MAX_LOGICAL_SHARDS)


@pytest.mark.parametrize(
    "bad", ["", "abc", "-5", "0", "1.5", " 12", "99999999999999999999", "１２", True, None, 0, -1, 2**63, 3.0]
)
def test_parse_id_rejects_what_is_not_an_id(bad):
    with pytest.raises(InvalidIdError):
        parse_id(bad)


def test_parse_id_accepts_decimal_strings_and_ints():
    assert parse_id("123456789012345678") == 123456789012345678
    assert parse_id(42) == 42


def test_id_of_a_shard_the_cluster_does_not_have_is_not_routable():
    from sharding.placement import node_for_id, parse_routable_id

    foreign = (1 << 23) | (logical_shard_count() << 10)  # a well-formed id of shard L
    with pytest.raises(InvalidIdError):
        parse_routable_id(foreign)
    with pytest.raises(InvalidIdError):
        node_for_id(foreign)
