"""sharding.placement's map on its own (built by hand, nothing read from the catalogue)."""
from sharding.placement import MoveInfo, Placement, node_sort_key


def placement(*moves):
    return Placement(version=3, nodes=("worker1", "worker2", "worker1", "worker10"), loaded_at=0.0,
                     workers=("worker1", "worker2", "worker10"), moves=tuple(moves))


def test_workers_sort_by_their_number_not_as_text():
    assert sorted(["worker10", "worker2", "worker1"], key=node_sort_key) == ["worker1", "worker2", "worker10"]


def test_the_map_answers_both_ways():
    found = placement()
    assert [found.node_of_shard(shard) for shard in range(4)] == ["worker1", "worker2", "worker1", "worker10"]
    assert found.shards_of_node("worker1") == [0, 2]
    assert found.shards_of_node("worker3") == []


def test_a_moves_copy_is_left_out_where_it_is_not_the_shards_home():
    # Before the switch the target's rows are a copy; after it, the source's are (until clean-up deletes them).
    copying = MoveInfo(shard=1, source="worker2", target="worker10", state="copying")
    cleaning = MoveInfo(shard=2, source="worker1", target="worker2", state="cleaning")
    found = placement(copying, cleaning)
    assert found.copied_shards_on("worker10") == [1]
    assert found.copied_shards_on("worker1") == [2]
    assert found.copied_shards_on("worker2") == []  # the source of shard 1 before its switch, the target of 2 after
    assert placement(MoveInfo(shard=1, source="worker2", target="worker10", state="done")).copied_shards_on(
        "worker10") == []
