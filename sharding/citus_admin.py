"""The DBA's operations on a Citus cluster: what `add_worker`, `rebalance`, `move_shard`, `drain_node` and
`remove_worker` do when SHARDING engine is citus (sharding.engine), and what health and the cluster page show.

Citus knows its workers by host and port (pg_dist_node), so a node is named `host:port` here. Its shards are
hash ranges of `logical_shard` (sharding.citus), colocated: the shard group holding a logical shard holds it in
every sharded table, and Citus moves the group as one. Everything below runs on the coordinator, in autocommit,
since Citus's shard moves cannot run inside a transaction block.

- add a worker: `citus_add_node` (the node needs the citus extension and the cluster's password in
  pg_dist_authinfo, as `python -m cluster add-node --engine citus` sets up); it gets no shard until a rebalance;
- rebalance: `get_rebalance_table_shards_plan()` is the plan; `citus_rebalance_start()` runs it as a background
  job of the coordinator, which survives the command (a rerun of the command follows the running job instead of
  starting another one); `citus_rebalance_status()` and `get_rebalance_progress()` are the progress;
- move one logical shard: `citus_move_shard_placement` of the shard group that holds it;
- drain a node: `shouldhaveshards` off, then a rebalance that only drains (`citus_rebalance_start(drain_only)`),
  the background form of `citus_drain_node`;
- remove a worker: `citus_remove_node`, which Citus refuses while the node holds a shard.
"""
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections, transaction

from .config import COORDINATOR_ALIAS
from .errors import ShardingError
from .fencing import sharded_tables

# Progress lines every POLL_SECONDS while a background job runs.
POLL_SECONDS = 1.0
# Shorter than Citus's 30 s default: a worker that does not answer is reported as down, not waited for.
NODE_TIMEOUT_MS = 2000


class CitusAdminError(ShardingError):
    """A Citus operation that was refused or failed; the message says why and, where it can, what to do."""


@dataclass(frozen=True)
class CitusNode:
    address: str  # host:port, as Citus names it
    node_id: int
    active: bool
    should_have_shards: bool
    shards: int  # shard placements on it, over every distributed table


@dataclass(frozen=True)
class CitusShardMove:
    table: str
    shard_id: int
    size: int
    source: str
    target: str


@dataclass(frozen=True)
class RebalanceStatus:
    job_id: int
    state: str  # scheduled, running, finished, cancelled, failed, failing, ...
    tasks: dict[str, int]  # task state -> count
    done: bool


def _query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    try:
        with connections[COORDINATOR_ALIAS].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    except DatabaseError as exc:
        raise CitusAdminError(str(exc).strip().splitlines()[0]) from None


def _anchor_table() -> str:
    """A distributed table to ask about shard groups (they are colocated: any one answers for all)."""
    return sharded_tables()[0]


def citus_nodes() -> list[CitusNode]:
    """Every worker Citus knows, with its number of shard placements, in node id order."""
    # Metadata only (pg_dist_placement): citus_shards would ask every worker for its shards' sizes, and this
    # runs on every /health/ request.
    rows = _query(
        """
        SELECT n.nodename, n.nodeport, n.nodeid, n.isactive, n.shouldhaveshards, count(p.shardid)
        FROM pg_dist_node n
        LEFT JOIN pg_dist_placement p ON p.groupid = n.groupid
        WHERE n.groupid <> 0 AND n.noderole = 'primary'
        GROUP BY n.nodename, n.nodeport, n.nodeid, n.isactive, n.shouldhaveshards
        ORDER BY n.nodeid
        """
    )
    return [CitusNode(f"{host}:{port}", node_id, active, should, int(shards))
            for host, port, node_id, active, should, shards in rows]


def active_worker_addresses() -> list[str]:
    """citus_get_active_worker_nodes(), in node id order (as citus_nodes())."""
    active = {f"{host}:{port}" for host, port in _query("SELECT * FROM citus_get_active_worker_nodes()")}
    return [node.address for node in citus_nodes() if node.address in active]


def ping_workers() -> dict[str, str | None]:
    """address -> None when the worker answered the coordinator, else why not (run_command_on_workers)."""
    try:
        with transaction.atomic(using=COORDINATOR_ALIAS), connections[COORDINATOR_ALIAS].cursor() as cursor:
            cursor.execute(f"SET LOCAL citus.node_connection_timeout = {NODE_TIMEOUT_MS}")
            cursor.execute("SELECT nodename, nodeport, success, result FROM run_command_on_workers('SELECT 1')")
            rows = cursor.fetchall()
    except DatabaseError as exc:
        raise CitusAdminError(str(exc).strip().splitlines()[0]) from None
    return {f"{host}:{port}": None if ok else (result or "no answer") for host, port, ok, result in rows}


def _node(address: str) -> CitusNode:
    known = citus_nodes()
    for node in known:
        if node.address == address:
            return node
    names = ", ".join(n.address for n in known) or "none"
    raise CitusAdminError(f"{address!r} is not a Citus worker of this cluster (host:port): workers are {names}")


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise CitusAdminError(f"{address!r} is not host:port")
    return host, int(port)


def add_citus_worker(*, host: str, port: int) -> bool:
    """citus_add_node; False when Citus knew the node already (nothing changed)."""
    address = f"{host}:{port}"
    if any(node.address == address for node in citus_nodes()):
        return False
    _query("SELECT citus_add_node(%s, %s)", (host, port))
    return True


def remove_citus_worker(*, address: str) -> None:
    node = _node(address)
    if node.shards:
        raise CitusAdminError(f"{address} still holds {node.shards} shard placements: run `drain_node {address}` "
                              "first")
    _query("SELECT citus_remove_node(%s, %s)", _host_port(address))


def rebalance_plan(*, drain: str | None = None) -> list[CitusShardMove]:
    """The moves a rebalance would make, one per shard group (the anchor table's), without moving anything.

    With `drain`, the shard groups on that node, which a drain moves wherever Citus's strategy puts them.
    """
    if drain is not None:
        _node(drain)
        return _drain_plan(drain)
    rows = _query(
        "SELECT table_name::text, shardid, shard_size, sourcename, sourceport, targetname, targetport "
        "FROM get_rebalance_table_shards_plan(%s)",
        (_anchor_table(),),
    )
    return [CitusShardMove(table, shard, int(size or 0), f"{sh}:{sp}", f"{th}:{tp}")
            for table, shard, size, sh, sp, th, tp in rows]


def _drain_plan(address: str) -> list[CitusShardMove]:
    table = _anchor_table()
    rows = _query(
        "SELECT shardid, shard_size FROM citus_shards WHERE table_name = %s::regclass AND nodename = %s "
        "AND nodeport = %s ORDER BY shardid",
        (f'"{table}"', *_host_port(address)),
    )
    return [CitusShardMove(table, shard, int(size or 0), address, "(chosen by Citus)") for shard, size in rows]


def running_rebalance() -> RebalanceStatus | None:
    """The rebalance job still running or scheduled, if any."""
    statuses = [s for s in _rebalance_statuses() if not s.done]
    return statuses[0] if statuses else None


def _rebalance_statuses() -> list[RebalanceStatus]:
    # details::text: Django has psycopg2 hand jsonb over as text anyway (its JSONField decodes it).
    rows = _query("SELECT job_id, state::text, details::text FROM citus_rebalance_status() ORDER BY job_id DESC")
    return [RebalanceStatus(job_id, state, dict(json.loads(details or "{}").get("task_state_counts") or {}),
                            state in ("finished", "cancelled", "failed"))
            for job_id, state, details in rows]


def start_rebalance(*, drain: str | None = None) -> int:
    """Start the background rebalance (or follow the one running); returns its job id."""
    running = running_rebalance()
    if running is not None:
        return running.job_id
    if drain is not None:
        _query("SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', false)", _host_port(drain))
    rows = _query("SELECT citus_rebalance_start(drain_only => %s)", (drain is not None,))
    job_id = rows[0][0] if rows else None
    if job_id is None:  # Citus found nothing to move
        return 0
    return int(job_id)


def wait_for_rebalance(job_id: int, *, progress: Callable[[RebalanceStatus, list[str]], object]) -> RebalanceStatus:
    """Follow a background rebalance to its end, calling `progress` every POLL_SECONDS; fails if the job did."""
    while True:
        status = next((s for s in _rebalance_statuses() if s.job_id == job_id), None)
        if status is None:
            raise CitusAdminError(f"rebalance job {job_id} is gone from citus_rebalance_status()")
        progress(status, _moves_in_flight())
        if status.done:
            if status.state != "finished":
                raise CitusAdminError(f"rebalance job {job_id} {status.state}: see citus_rebalance_status() and "
                                      "pg_dist_background_task for the error; run the command again to retry")
            return status
        time.sleep(POLL_SECONDS)


def _moves_in_flight() -> list[str]:
    rows = _query(
        "SELECT shardid, sourcename, sourceport, targetname, targetport, source_shard_size, target_shard_size "
        "FROM get_rebalance_progress() WHERE progress = 1 AND table_name = %s::regclass ORDER BY shardid",
        (f'"{_anchor_table()}"',),
    )
    return [f"shard group of {shard}: {sh}:{sp} -> {th}:{tp} "
            f"({int(target or 0) * 100 // max(int(source or 0), 1)}% copied)"
            for shard, sh, sp, th, tp, source, target in rows]


def move_logical_shard(*, shard: int, target: str) -> CitusShardMove:
    """Move the Citus shard group holding logical shard `shard` to `target` (citus_move_shard_placement)."""
    _node(target)
    table = _anchor_table()
    rows = _query(
        "SELECT s.shardid, s.shard_size, s.nodename, s.nodeport FROM citus_shards s "
        "WHERE s.shardid = get_shard_id_for_distribution_column(%s, %s) AND s.table_name = %s::regclass",
        (table, shard, f'"{table}"'),
    )
    if not rows:
        raise CitusAdminError(f"no Citus shard holds logical shard {shard}")
    shard_id, size, host, port = rows[0]
    source = f"{host}:{port}"
    if source == target:
        raise CitusAdminError(f"logical shard {shard} (Citus shard group {shard_id}) is on {target} already")
    _query("SELECT citus_move_shard_placement(%s, %s, %s, %s, %s)", (shard_id, host, port, *_host_port(target)))
    return CitusShardMove(table, shard_id, int(size or 0), source, target)


def logical_shards_of(shard_id: int) -> list[int]:
    """The logical shards whose hash falls in one Citus shard group (what a move of that group carries)."""
    from .placement import current_placement

    rows = _query(
        "SELECT s FROM generate_series(0, %s) s WHERE get_shard_id_for_distribution_column(%s, s) = %s ORDER BY s",
        (len(current_placement().nodes) - 1, _anchor_table(), shard_id),
    )
    return [logical for (logical,) in rows]


def logical_shards_by_node() -> dict[str, list[int]]:
    """host:port -> the logical shards whose Citus shard group is placed there (metadata only)."""
    from .placement import current_placement

    rows = _query(
        "SELECT n.nodename, n.nodeport, array_agg(l ORDER BY l) FROM generate_series(0, %s) l "
        "JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column(%s, l) "
        "JOIN pg_dist_node n ON n.groupid = p.groupid AND n.noderole = 'primary' GROUP BY 1, 2",
        (len(current_placement().nodes) - 1, _anchor_table()),
    )
    return {f"{host}:{port}": list(shards) for host, port, shards in rows}


def row_counts_by_node(tables: list[str]) -> dict[str, list[int]]:
    """host:port -> count(*) of each table over that node's shard placements (run_command_on_placements)."""
    counts: dict[str, list[int]] = {node.address: [0] * len(tables) for node in citus_nodes()}
    for position, table in enumerate(tables):
        rows = _query(
            "SELECT nodename, nodeport, sum(result::bigint) FROM run_command_on_placements(%s, "
            "'SELECT count(*) FROM %%s') WHERE success GROUP BY 1, 2",
            (table,),
        )
        for host, port, total in rows:
            counts.setdefault(f"{host}:{port}", [0] * len(tables))[position] = int(total)
    return counts


def moves_overview() -> dict[str, list[dict[str, Any]]]:
    """Shard group moves under way (get_rebalance_progress), in the shape of sharding.moves.moves_overview.

    Finished moves are Citus's background jobs (citus_rebalance_status()); the journal of our own engine has none.
    """
    rows = _query(
        "SELECT shardid, sourcename, sourceport, targetname, targetport, source_shard_size, target_shard_size, "
        "progress FROM get_rebalance_progress() WHERE table_name = %s::regclass AND progress < 2 ORDER BY shardid",
        (f'"{_anchor_table()}"',),
    )
    return {
        "in_progress": [
            {"id": shard, "shard": f"group {shard}", "source": f"{sh}:{sp}", "target": f"{th}:{tp}",
             "state": "copying" if progress == 1 else "waiting", "rows_copied": None, "rows_total": None,
             "lag_bytes": max(int(source or 0) - int(target or 0), 0), "write_pause_ms": None, "duration_s": None,
             "started_at": None}
            for shard, sh, sp, th, tp, source, target, progress in rows
        ],
        "recent": [],
    }
