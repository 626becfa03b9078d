"""Plans that spread logical shards evenly over the active workers, and run them one move at a time."""
from dataclasses import dataclass

from django.db import transaction

from .config import COORDINATOR_ALIAS
from .models import Node, ShardMove
from .moves import MoveError, run_move, start_move
from .placement import bump_placement_version
from .routing import current_placement, invalidate_placement, node_sort_key


@dataclass(frozen=True)
class PlannedMove:
    shard: int
    source: str
    target: str


def plan_rebalance(placement=None):
    """Moves that leave every active worker within one shard of the others, and draining workers empty.

    Moves as few shards as it can: the workers that hold the most keep the
    extra shards, and a worker gives up its highest-numbered shards.
    """
    placement = placement or current_placement()
    active = [w for w in placement.workers if placement.node_info[w].state == Node.ACTIVE]
    if not active:
        raise MoveError("no active worker to place shards on: add one with `python -m cluster add-node`")
    held = {w: placement.shards_of_node(w) for w in placement.workers}
    base, extra = divmod(len(placement.nodes), len(active))
    by_load = sorted(active, key=lambda w: (-len(held[w]), node_sort_key(w)))
    quota = {w: base + (1 if rank < extra else 0) for rank, w in enumerate(by_load)}
    surplus = []
    for worker in placement.workers:
        keep = quota.get(worker, 0)
        surplus += [(shard, worker) for shard in held[worker][keep:]]
    return _assign(surplus, {w: len(held[w]) for w in active}, quota)


def plan_drain(node, placement=None):
    """Moves of every shard off `node`, each to the active worker that holds the fewest at that point."""
    placement = placement or current_placement()
    active = [w for w in placement.workers if w != node and placement.node_info[w].state == Node.ACTIVE]
    if not active:
        raise MoveError(f"no other active worker to take the shards of {node}: add one first")
    counts = {w: len(placement.shards_of_node(w)) for w in active}
    return _assign([(shard, node) for shard in placement.shards_of_node(node)], counts, None)


def _assign(surplus, counts, quota):
    plan = []
    for shard, source in surplus:
        open_targets = [w for w in counts if quota is None or counts[w] < quota[w]]
        target = min(open_targets, key=lambda w: (counts[w], node_sort_key(w)))
        counts[target] += 1
        plan.append(PlannedMove(shard, source, target))
    return plan


def unfinished_moves():
    return list(ShardMove.objects.using(COORDINATOR_ALIAS).exclude(state__in=ShardMove.FINISHED).order_by("id"))


def run_plan(plan, *, progress=None, on_move=None):
    """Finish every unfinished move first (an interrupted run's), then the plan's, one at a time."""
    for move in unfinished_moves():
        if on_move:
            on_move(move, resumed=True)
        run_move(move, progress=progress)
    for planned in plan:
        if current_placement().node_of_shard(planned.shard) != planned.source:
            continue  # moved meanwhile (a resumed move did it)
        move = start_move(shard=planned.shard, target=planned.target)
        if on_move:
            on_move(move, resumed=False)
        run_move(move, progress=progress)


def mark_draining(node):
    with transaction.atomic(using=COORDINATOR_ALIAS):
        Node.objects.using(COORDINATOR_ALIAS).filter(name=node).update(state=Node.DRAINING)
        bump_placement_version()
    invalidate_placement()
