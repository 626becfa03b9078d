"""sharding.db_router on its own (no query is sent): where each model is read, written and migrated."""
import pytest
from django.contrib.auth import get_user_model

from sharding.config import COORDINATOR_ALIAS
from sharding.db_router import ShardRouter, is_sharded
from sharding.errors import UnroutedQueryError
from tests.shardtest.models import Note

router = ShardRouter()


def test_unsharded_models_live_on_the_coordinator():
    User = get_user_model()
    assert not is_sharded(User)
    assert router.db_for_read(User) == COORDINATOR_ALIAS == router.db_for_write(User)


def test_a_sharded_model_without_a_node_is_refused_rather_than_sent_to_default():
    assert is_sharded(Note)
    with pytest.raises(UnroutedQueryError, match="must name its node"):
        router.db_for_read(Note)
    with pytest.raises(UnroutedQueryError):
        router.db_for_write(Note)


def test_a_sharded_instance_stays_on_the_node_it_was_loaded_from():
    note = Note(user_id=7, body="x")
    note._state.db = "worker2"
    assert router.db_for_write(Note, instance=note) == "worker2"


def test_rows_relate_only_on_the_same_node():
    first, second = Note(user_id=1), Note(user_id=2)
    first._state.db = second._state.db = "worker1"
    assert router.allow_relation(first, second)
    second._state.db = "worker2"
    assert not router.allow_relation(first, second)


@pytest.mark.own_engine  # our router puts tables on workers
def test_tables_are_migrated_where_their_rows_live():
    assert router.allow_migrate("worker1", "shardtest", "note") is True
    assert router.allow_migrate(COORDINATOR_ALIAS, "shardtest", "note") is False
    assert router.allow_migrate(COORDINATOR_ALIAS, "auth", "user") is True
    assert router.allow_migrate("worker1", "auth", "user") is False
    # RunSQL / RunPython say where they belong with a hint; without a model they run on the coordinator only.
    assert router.allow_migrate("worker1", "shardtest", sharded=True) is True
    assert router.allow_migrate(COORDINATOR_ALIAS, "shardtest", sharded=True) is False
    assert router.allow_migrate("worker1", "shardtest") is False
    assert router.allow_migrate("worker1", "shardtest", "no_such_model") is None
