"""Writing the placement catalogue: nodes, the first placement of a new cluster, and each worker's owned shards."""
from django.db import transaction
from django.db.models import F

from .config import COORDINATOR_ALIAS, ClusterConfig
from .errors import PlacementError
from .fencing import owned_shards, set_owned_shards
from .models import Node, PlacementVersion, ShardMove, ShardPlacement
from .placement import current_placement, invalidate_placement


def bootstrap_catalogue(config: ClusterConfig) -> int:
    """Record the config's nodes and, for a new cluster, spread the shards round-robin over its workers.

    Idempotent: an existing placement is never changed (moving shards is a
    separate, deliberate operation); nodes are recorded or their addresses
    brought up to date. Then every worker is told which shards it owns (the
    fence: see sharding.fencing). Returns the number of shards placed by this call.
    """
    shards = config["logical_shards"]
    workers = [node["name"] for node in config["nodes"] if node["role"] == "worker"]
    with transaction.atomic(using=COORDINATOR_ALIAS):
        for node in config["nodes"]:
            record_node(name=node["name"], role=node["role"], host=node["host"], port=node["port"],
                        bouncer_port=node.get("bouncer_port"))
        version, created = PlacementVersion.objects.using(COORDINATOR_ALIAS).select_for_update().get_or_create(
            id=1, defaults={"logical_shards": shards}
        )
        if version.logical_shards != shards:
            raise PlacementError(
                f"the catalogue has {version.logical_shards} logical shards, the cluster config {shards}"
            )
        placed = set(ShardPlacement.objects.using(COORDINATOR_ALIAS).values_list("shard", flat=True))
        missing = [shard for shard in range(shards) if shard not in placed]
        if missing and not workers:
            raise PlacementError(
                "the cluster has no worker to place its shards on: add one with `manage.py add_worker`"
            )
        ShardPlacement.objects.using(COORDINATOR_ALIAS).bulk_create(
            ShardPlacement(shard=shard, node_id=workers[shard % len(workers)]) for shard in missing
        )
        if not created:
            bump_placement_version()
    invalidate_placement()
    sync_owned_shards()
    return len(missing)


def record_node(*, name: str, role: str, host: str, port: int | None, bouncer_port: int | None = None) -> None:
    """Add a node to the catalogue, or update its address (the caller bumps the version)."""
    Node.objects.using(COORDINATOR_ALIAS).update_or_create(
        name=name, defaults={"role": role, "host": host, "port": port, "bouncer_port": bouncer_port}
    )


def bump_placement_version() -> None:
    """Tell every process to reload the map (inside the caller's coordinator transaction)."""
    PlacementVersion.objects.using(COORDINATOR_ALIAS).filter(id=1).update(version=F("version") + 1)


def sync_owned_shards() -> None:
    """Each worker owns the shards the placement gives it, except shards being moved (the move owns those)."""
    placement = current_placement()
    moving = set(
        ShardMove.objects.using(COORDINATOR_ALIAS).exclude(state__in=ShardMove.FINISHED).values_list("shard", flat=True)
    )
    for alias in placement.workers:
        owned = set(placement.shards_of_node(alias)) - moving
        with transaction.atomic(using=alias):
            if moving:  # a shard being moved keeps whatever ownership the move gave it
                owned |= {shard for shard in owned_shards(alias) if shard in moving}
            set_owned_shards(alias, sorted(owned))
