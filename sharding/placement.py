"""Writing the placement catalogue: the first placement of a new cluster."""
from django.db import transaction

from .config import COORDINATOR_ALIAS
from .errors import PlacementError
from .models import Node, PlacementVersion, ShardPlacement
from .routing import invalidate_placement


def bootstrap_catalogue(config):
    """Record the config's nodes and, for a new cluster, spread the shards round-robin over its workers.

    Idempotent: an existing placement is never changed (moving shards is a
    separate, deliberate operation), and new workers are only recorded.
    Returns the number of shards placed by this call.
    """
    shards = config["logical_shards"]
    workers = [node["name"] for node in config["nodes"] if node["role"] == "worker"]
    with transaction.atomic(using=COORDINATOR_ALIAS):
        for node in config["nodes"]:
            Node.objects.using(COORDINATOR_ALIAS).get_or_create(name=node["name"], defaults={"role": node["role"]})
        version, created = PlacementVersion.objects.using(COORDINATOR_ALIAS).select_for_update().get_or_create(
            id=1, defaults={"logical_shards": shards}
        )
        if version.logical_shards != shards:
            raise PlacementError(
                f"the catalogue has {version.logical_shards} logical shards, the cluster config {shards}"
            )
        placed = set(ShardPlacement.objects.using(COORDINATOR_ALIAS).values_list("shard", flat=True))
        missing = [shard for shard in range(shards) if shard not in placed]
        ShardPlacement.objects.using(COORDINATOR_ALIAS).bulk_create(
            ShardPlacement(shard=shard, node_id=workers[shard % len(workers)]) for shard in missing
        )
        if missing and not created:
            version.version += 1
            version.save(using=COORDINATOR_ALIAS, update_fields=["version"])
    invalidate_placement()
    return len(missing)
