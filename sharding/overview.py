"""The cluster as a staff page or a monitor sees it, whichever engine runs (sharding.engine).

Our own engine: the nodes of the catalogue and the logical shards the placement gives each worker. Citus: the
coordinator, and the workers and shard placements Citus reports (sharding.citus_admin); a Citus worker is named
host:port, as Citus names it.
"""
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Model

from . import citus_admin
from .engine import is_citus
from .fanout import fan_out
from .placement import current_placement


@dataclass(frozen=True)
class ClusterNode:
    name: str
    role: str  # coordinator or worker
    address: str  # host:port of its PostgreSQL
    bouncer_port: int | None
    shards: list[int] | None  # the logical shards a worker holds; None for the coordinator


def cluster_nodes() -> list[ClusterNode]:
    """Coordinator first, then the workers."""
    placement = current_placement()
    info = next(node for node in placement.node_info.values() if node.role == "coordinator")
    nodes = [ClusterNode("coordinator", "coordinator", f"{info.host}:{info.port}", info.bouncer_port, None)]
    if is_citus():
        shards = citus_admin.logical_shards_by_node()
        return nodes + [ClusterNode(node.address, "worker", node.address, None, shards.get(node.address, []))
                        for node in citus_admin.citus_nodes()]
    return nodes + [ClusterNode(name, "worker", f"{placement.node_info[name].host}:{placement.node_info[name].port}",
                                placement.node_info[name].bouncer_port, placement.shards_of_node(name))
                    for name in placement.workers]


def row_counts_by_worker(models: Sequence[type[Model]]) -> dict[str, list[int]]:
    """Worker name -> count(*) of each model's table there; a worker that did not answer is left out."""
    if is_citus():
        return citus_admin.row_counts_by_node([model._meta.db_table for model in models])

    def count(alias: str) -> list[int]:
        return [model._default_manager.using(alias).count() for model in models]

    return fan_out(count, allow_partial=True).results
