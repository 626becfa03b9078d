"""Plans that spread logical shards evenly over the active workers, and run them one move at a time."""
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from django.db import transaction

from .catalogue import bump_placement_version
from .config import COORDINATOR_ALIAS
from .models import Node, ShardMove
from .moves import MoveError, ProgressCallback, run_move, start_move
from .placement import Placement, current_placement, invalidate_placement, node_sort_key


@dataclass(frozen=True)
class PlannedMove:
    shard: int
    source: str
    target: str


class OnMove(Protocol):
    """Called before each move runs: `resumed` for an unfinished move taken up again."""

    def __call__(self, move: ShardMove, resumed: bool) -> object: ...


def plan_rebalance(placement: Placement | None = None) -> list[PlannedMove]:
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
    surplus: list[tuple[int, str]] = []
    for worker in placement.workers:
        keep = quota.get(worker, 0)
        surplus += [(shard, worker) for shard in held[worker][keep:]]
    return _assign(surplus, {w: len(held[w]) for w in active}, quota)


def plan_drain(node: str, placement: Placement | None = None) -> list[PlannedMove]:
    """Moves of every shard off `node`, each to the active worker that holds the fewest at that point."""
    placement = placement or current_placement()
    active = [w for w in placement.workers if w != node and placement.node_info[w].state == Node.ACTIVE]
    if not active:
        raise MoveError(f"no other active worker to take the shards of {node}: add one first")
    counts = {w: len(placement.shards_of_node(w)) for w in active}
    return _assign([(shard, node) for shard in placement.shards_of_node(node)], counts, None)


def _assign(surplus: list[tuple[int, str]], counts: dict[str, int], quota: dict[str, int] | None) -> list[PlannedMove]:
    plan = []
    for shard, source in surplus:
        open_targets = [w for w in counts if quota is None or counts[w] < quota[w]]
        target = min(open_targets, key=lambda w: (counts[w], node_sort_key(w)))
        counts[target] += 1
        plan.append(PlannedMove(shard, source, target))
    return plan


def unfinished_moves() -> list[ShardMove]:
    return list(ShardMove.objects.using(COORDINATOR_ALIAS).exclude(state__in=ShardMove.FINISHED).order_by("id"))


def run_plan(
    plan: Iterable[PlannedMove], *, progress: ProgressCallback | None = None, on_move: OnMove | None = None
) -> None:
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


def mark_draining(node: str) -> None:
    with transaction.atomic(using=COORDINATOR_ALIAS):
        Node.objects.using(COORDINATOR_ALIAS).filter(name=node).update(state=Node.DRAINING)
        bump_placement_version()
    invalidate_placement()
