"""The cluster catalogue (on the coordinator) and the base class of sharded models."""
from django.contrib.postgres.fields import ArrayField
from django.db import models

from .routing import shard_of


class Node(models.Model):
    """A PostgreSQL node known to the catalogue; connection details live in the cluster config."""

    COORDINATOR = "coordinator"
    WORKER = "worker"

    name = models.CharField(max_length=63, primary_key=True)
    role = models.CharField(max_length=16, choices=[(COORDINATOR, "coordinator"), (WORKER, "worker")])
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "sharding_node"

    def __str__(self):
        return self.name


class ShardPlacement(models.Model):
    """Which worker holds a logical shard. Moving a shard changes one row and bumps the version."""

    shard = models.IntegerField(primary_key=True)
    node = models.ForeignKey(Node, on_delete=models.PROTECT, db_column="node", related_name="placements")

    class Meta:
        db_table = "sharding_shard_placement"
        constraints = [models.CheckConstraint(condition=models.Q(shard__gte=0), name="shard_placement_shard_non_negative")]


class PlacementVersion(models.Model):
    """A single row whose version changes whenever any placement does; processes cache by it."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=1)
    logical_shards = models.IntegerField()

    class Meta:
        db_table = "sharding_placement_version"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="placement_version_single_row")]


class ShardedIdField(models.BigIntegerField):
    """A primary key filled in by the database from the row's logical shard (see sharding.ids)."""

    db_returning = True


class LogicalShardField(models.SmallIntegerField):
    """The owner's logical shard, derived from `user_id` when the row is first saved."""

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        if value is None:
            value = shard_of(model_instance.user_id)
            setattr(model_instance, self.attname, value)
        return value


class ShardedModel(models.Model):
    """Base of every model whose rows live on their owner's worker.

    Rows carry their owner (`user_id`) and logical shard, and ids that encode
    the shard. Queries must name a node: `Model.objects.using(node_for_user(uid))`.
    A table of a subclass needs `sharding.operations.AssignShardedIds` in its
    migration so that inserts get ids.
    """

    id = ShardedIdField(primary_key=True)
    user_id = models.BigIntegerField(db_index=True)
    logical_shard = LogicalShardField(editable=False)

    class Meta:
        abstract = True


class TransactionDecision(models.Model):
    """The commit point of a two-phase transaction: while this row exists, its participants must commit."""

    txid = models.BigIntegerField(primary_key=True)
    participants = ArrayField(models.CharField(max_length=63))
    created_at = models.DateTimeField()

    class Meta:
        db_table = "sharding_transaction_decision"
        indexes = [models.Index(fields=["created_at"], name="sharding_decision_created")]
