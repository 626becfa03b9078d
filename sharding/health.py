"""Is every node reachable? Used by /health/, start-up checks and `check_cluster`."""
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connections

from . import breaker
from .config import COORDINATOR_ALIAS
from .engine import is_citus
from .errors import ShardingError
from .fanout import fan_out
from .placement import all_workers


class ClusterUnavailableError(ShardingError):
    pass


@dataclass
class NodeHealth:
    name: str
    role: str
    ok: bool
    latency_ms: float | None
    error: str = ""


def _ping(alias: str) -> float:
    started = time.perf_counter()
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return (time.perf_counter() - started) * 1000


def node_health(timeout: float = 2.0) -> list[NodeHealth]:
    """One NodeHealth per node (coordinator first), probing all nodes in parallel."""
    if is_citus():
        return _citus_node_health()
    aliases = [COORDINATOR_ALIAS, *all_workers()]
    probe = fan_out(_ping, aliases, timeout=timeout, allow_partial=True)
    report: list[NodeHealth] = []
    for alias in aliases:
        role = "coordinator" if alias == COORDINATOR_ALIAS else "worker"
        name = "coordinator" if alias == COORDINATOR_ALIAS else alias
        if alias in probe.results:
            report.append(NodeHealth(name, role, True, round(probe.results[alias], 2)))
        else:
            report.append(NodeHealth(name, role, False, None, "unreachable"))
    return report


def assert_cluster_reachable(timeout: float = 3.0) -> None:
    """Raise one clear error naming every node that does not answer."""
    down: list[str] = []
    for alias in settings.DATABASES:
        try:
            with breaker.not_counting():
                _ping(alias)
        except Exception as exc:  # noqa: BLE001 - any failure means the node is unusable
            db = settings.DATABASES[alias]
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            down.append(f"{alias} ({db['HOST']}:{db['PORT']}: {reason})")
        finally:
            connections[alias].close()
    if down:
        raise ClusterUnavailableError(
            f"cannot reach {'; '.join(down)}: start the cluster with `python -m cluster up` (or `make run`)"
        )


def _citus_node_health() -> list[NodeHealth]:
    """The coordinator, then every Citus worker as the coordinator reaches it (sharding.citus_admin).

    A worker's latency is that of the coordinator's one round of `SELECT 1` on all of them; an inactive worker
    (pg_dist_node) is down.
    """
    from . import citus_admin

    try:
        coordinator_ms = _ping(COORDINATOR_ALIAS)
    except Exception:  # noqa: BLE001 - any failure means the coordinator is unusable, and so is every worker
        return [NodeHealth("coordinator", "coordinator", False, None, "unreachable")]
    report = [NodeHealth("coordinator", "coordinator", True, round(coordinator_ms, 2))]
    started = time.perf_counter()
    answers = citus_admin.ping_workers()
    round_ms = round((time.perf_counter() - started) * 1000, 2)
    for node in citus_admin.citus_nodes():
        problem = answers.get(node.address, "inactive in pg_dist_node" if not node.active else "not asked")
        report.append(NodeHealth(node.address, "worker", problem is None, round_ms if problem is None else None,
                                 problem or ""))
    return report
