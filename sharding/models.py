"""The cluster catalogue (on the coordinator) and the base class of sharded models."""
from collections.abc import Iterable
from typing import Any, Self, cast

from django.contrib.postgres.fields import ArrayField
from django.db import models

from .engine import is_citus
from .ids import shard_of_id
from .placement import current_placement, shard_of


class Node(models.Model):
    """A PostgreSQL node and how to reach it: app processes learn the workers from here, not from a config file.

    A worker that is `draining` keeps its shards until they are moved off, and
    is never chosen as the target of a move.
    """

    COORDINATOR = "coordinator"
    WORKER = "worker"
    ACTIVE, DRAINING = "active", "draining"

    name = models.CharField(max_length=63, primary_key=True)
    role = models.CharField(max_length=16, choices=[(COORDINATOR, "coordinator"), (WORKER, "worker")])
    host = models.CharField(max_length=255, default="")
    port = models.IntegerField(null=True)
    bouncer_port = models.IntegerField(null=True)  # null: connect to PostgreSQL directly
    state = models.CharField(max_length=16, choices=[(ACTIVE, "active"), (DRAINING, "draining")], default=ACTIVE)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "sharding_node"

    def __str__(self) -> str:
        return self.name


class ShardPlacement(models.Model):
    """Which worker holds a logical shard. Moving a shard changes one row and bumps the version."""

    shard = models.IntegerField(primary_key=True)
    node = models.ForeignKey(Node, on_delete=models.PROTECT, db_column="node", related_name="placements")

    class Meta:
        db_table = "sharding_shard_placement"
        constraints = [
            models.CheckConstraint(condition=models.Q(shard__gte=0), name="shard_placement_shard_non_negative")
        ]


class PlacementVersion(models.Model):
    """A single row whose version changes whenever any placement does; processes cache by it."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=1)
    logical_shards = models.IntegerField()

    class Meta:
        db_table = "sharding_placement_version"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="placement_version_single_row")]


class ShardedIdField(models.BigIntegerField):
    """A primary key filled in by the database from the row's logical shard (see sharding.ids).

    On our own workers a trigger fills it in. With Citus the INSERT carries `shard_next_id(<shard>)`, which the
    coordinator evaluates before it routes the row to its Citus shard (no trigger runs on Citus's shards).
    """

    db_returning = True

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = super().pre_save(model_instance, add)
        if value is None and add and is_citus():
            shard = getattr(model_instance, "logical_shard", None)
            if shard is None:
                shard = shard_of(cast("ShardedModel", model_instance).user_id)
            return models.Func(models.Value(shard), function="shard_next_id", output_field=models.BigIntegerField())
        return value


class LogicalShardField(models.SmallIntegerField):
    """The owner's logical shard, derived from `user_id` when the row is first saved."""

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = getattr(model_instance, self.attname)
        if value is None:
            value = shard_of(cast("ShardedModel", model_instance).user_id)
            setattr(model_instance, self.attname, value)
        return value


class ShardedQuerySet(models.QuerySet):
    """Rows of one node that the node serves: a move's copy of a shard there is left out while it exists."""

    def using(self, alias: str | None) -> Self:
        queryset = super().using(alias)
        if is_citus():
            return queryset  # Citus moves shards itself: no copy of ours is ever on a node
        copied = current_placement().copied_shards_on(alias) if alias else ()
        return queryset.exclude(logical_shard__in=copied) if copied else queryset

    def filter(self, *args: Any, **kwargs: Any) -> Self:
        return super().filter(*args, **_with_distribution_value(kwargs))

    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        """With Citus, one INSERT per logical shard: Citus returns a multi-shard INSERT's RETURNING rows in its
        own order, and Django hands the ids out in the order of the objects, so ids would go to the wrong rows."""
        if not is_citus():
            return super().bulk_create(objs, *args, **kwargs)
        objs = list(objs)
        by_shard: dict[int, list[Any]] = {}
        for obj in objs:
            shard = obj.logical_shard if obj.logical_shard is not None else shard_of(obj.user_id)
            by_shard.setdefault(shard, []).append(obj)
        for group in by_shard.values():
            super().bulk_create(group, *args, **kwargs)
        return objs


def _with_distribution_value(lookups: dict[str, Any]) -> dict[str, Any]:
    """With Citus, a lookup by id or by user also names the row's logical shard, Citus's distribution column.

    Citus then routes the query to the one Citus shard holding the row (and allows FOR UPDATE on it), where a
    lookup by id alone would be sent to every shard. The result is the same: ids carry their shard and users
    own theirs, so the added condition holds for every row the lookup matches.
    """
    if not lookups or "logical_shard" in lookups or not is_citus():
        return lookups
    for key, shard_of_value in (("id", shard_of_id), ("pk", shard_of_id), ("user_id", shard_of)):
        value = lookups.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            shard = shard_of_value(int(value))
        except (TypeError, ValueError, ArithmeticError):
            continue  # not an id (InvalidIdError is a ValueError): the lookup itself finds nothing or complains
        return {**lookups, "logical_shard": shard}
    return lookups


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

    objects = ShardedQuerySet.as_manager()

    class Meta:
        abstract = True

    def _do_update(self, base_qs: Any, using: Any, pk_val: Any, values: Any, update_fields: Any,
                   forced_update: Any) -> Any:
        """save()'s UPDATE, which Django sends through the base manager, not `objects`. With Citus it names the
        row's logical shard and leaves that column out of SET: an UPDATE by id alone would go to every Citus
        shard (and Citus serialises such multi-shard writes), and Citus refuses one that sets the distribution
        column."""
        if is_citus():
            base_qs = base_qs.filter(logical_shard=self.logical_shard)
            values = [value for value in values if value[0].attname != "logical_shard"]
        return super()._do_update(base_qs, using, pk_val, values, update_fields, forced_update)


class TransactionDecision(models.Model):
    """The commit point of a two-phase transaction: while this row exists, its participants must commit."""

    txid = models.BigIntegerField(primary_key=True)
    participants = ArrayField(models.CharField(max_length=63))
    created_at = models.DateTimeField()

    class Meta:
        db_table = "sharding_transaction_decision"
        indexes = [models.Index(fields=["created_at"], name="sharding_decision_created")]


class ShardMove(models.Model):
    """The journal of one logical shard's move: every step is recorded here before it is taken.

    A move goes forward through STATES; `aborting` and `aborted` end a move
    that had not switched yet. At most one move of a shard is unfinished.
    """

    PENDING, COPYING, CATCHING_UP, FENCING = "pending", "copying", "catching_up", "fencing"
    SWITCHED, CLEANING, DONE = "switched", "cleaning", "done"
    ABORTING, ABORTED = "aborting", "aborted"
    STATES = (PENDING, COPYING, CATCHING_UP, FENCING, SWITCHED, CLEANING, DONE, ABORTING, ABORTED)
    FINISHED = (DONE, ABORTED)
    # From SWITCHED on, the target holds the shard: the move can only be finished.
    PAST_SWITCH = (SWITCHED, CLEANING, DONE)

    shard = models.IntegerField()
    source = models.CharField(max_length=63)
    target = models.CharField(max_length=63)
    state = models.CharField(max_length=16, choices=[(s, s) for s in STATES], default=PENDING)
    rows_total = models.BigIntegerField(default=0)  # rows of the shard on the source when the copy started
    rows_copied = models.BigIntegerField(default=0)
    lag_bytes = models.BigIntegerField(null=True)
    write_pause_ms = models.FloatField(null=True)  # writes to the shard were blocked this long at the switch
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    copy_started_at = models.DateTimeField(null=True)
    switched_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "sharding_shard_move"
        constraints = [
            models.UniqueConstraint(
                fields=["shard"], condition=~models.Q(state__in=["done", "aborted"]), name="shard_move_one_unfinished"
            ),
            models.CheckConstraint(condition=~models.Q(source=models.F("target")), name="shard_move_to_another_node"),
        ]

    @property
    def finished(self) -> bool:
        return self.state in self.FINISHED

    @property
    def duration_seconds(self) -> float | None:
        end = self.finished_at or self.updated_at
        return None if end is None or self.created_at is None else (end - self.created_at).total_seconds()
