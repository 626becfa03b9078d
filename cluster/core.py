"""Cluster lifecycle: up, down, status, destroy, and per-node controls for crash tests."""
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2

from . import bouncer, citus, postgres, system
from .config import (
    ENGINES,
    MAX_SHARDS,
    ClusterError,
    Log,
    add_worker_node,
    add_workers,
    cli,
    cluster_dir,
    cluster_name,
    config_path,
    engine_of,
    find_node,
    load_config,
    new_config,
    save_config,
)

DEFAULT_WORKERS = 2
DEFAULT_SHARDS = 64


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """Serialize commands on one cluster (e.g. parallel test processes all running `up`).

    The lock is a flock on the cluster directory itself, so no lock file is left behind.
    """
    directory = cluster_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def up(name: str | None = None, workers: int | None = None, shards: int | None = None, log: Log = print,
       engine: str | None = None) -> dict:
    """Create (first time) and start every node and pgbouncer; returns the config.

    workers/shards/engine default to the existing config, or 2 workers, 64 shards and our own engine for a
    new cluster. With the citus engine every node runs the citus extension and the workers are joined to the
    coordinator (cluster.citus).
    """
    name = cluster_name(name)
    if engine is not None and engine not in ENGINES:
        raise ClusterError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if workers is not None and workers < 1:
        raise ClusterError(f"--workers must be at least 1, got {workers}")
    if shards is not None and not 1 <= shards <= MAX_SHARDS:
        raise ClusterError(f"--shards must be between 1 and {MAX_SHARDS}, got {shards}")
    bindir, exe = system.pg_bindir(), system.pgbouncer_exe()
    wanted = engine or (engine_of(load_config(name)) if config_path(name).exists() else "own")
    if wanted == "citus":
        citus.require_extension(bindir)  # before anything is created
    with _locked(name):
        cfg = _load_or_create(name, workers, shards, engine)
        # the cluster dir stays ours (it holds cluster.json); the server user only passes through it
        system.make_traversable(cluster_dir(name), log)
        for node in cfg["nodes"]:
            _up_node(cfg, node, bindir, exe, log)
        if engine_of(cfg) == "citus":
            for node in cfg["nodes"]:
                citus.prepare_node(cfg, node)
            citus.join_workers(cfg, log)
    return cfg


def _load_or_create(name: str, workers: int | None, shards: int | None, engine: str | None = None) -> dict:
    if not config_path(name).exists():
        cfg = new_config(name, DEFAULT_WORKERS if workers is None else workers,
                         DEFAULT_SHARDS if shards is None else shards, engine or "own")
        save_config(cfg)
        return cfg
    cfg = load_config(name)
    if engine is not None and engine != engine_of(cfg):
        raise ClusterError(f"cluster {name!r} was made for the {engine_of(cfg)} engine: run {cli(name, 'destroy')} "
                           f"and `up --engine {engine}` to change it")
    if shards is not None and shards != cfg["logical_shards"]:
        raise ClusterError(f"cluster {name!r} has {cfg['logical_shards']} logical shards, fixed at creation: "
                           f"run {cli(name, 'destroy')} and `up --shards {shards}` to change it")
    have = sum(1 for n in cfg["nodes"] if n["role"] == "worker")
    # --workers only ever adds: a cluster keeps every worker it has (remove-node takes one away)
    if workers is not None and workers > have:
        add_workers(cfg, workers)
        save_config(cfg)
    return cfg


def _up_node(cfg: dict, node: dict, bindir: Path, exe: str, log: Log) -> None:
    if postgres.create(cfg, node, bindir):
        log(f"{node['name']}: created")
    started = postgres.start(cfg, node, bindir)
    postgres.ensure_database(cfg, node)
    started = bouncer.start(cfg, node, exe) or started
    bouncer.wait_ready(cfg, node)
    if started:
        log(f"{node['name']}: started on {node['host']}:{node['port']} (pgbouncer {node['bouncer_port']})")
    else:
        log(f"{node['name']}: already running")


MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"


def _manage(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a Django management command against this cluster (the app's catalogue is the source of truth)."""
    env = dict(os.environ, CLUSTER_NAME=name)
    env.pop("CLUSTER_CONFIG", None)
    # A local cluster is for development (app.settings is production unless told); a production site sets its own.
    env.setdefault("MARKETPLACE_ENV", "development")
    return subprocess.run([sys.executable, str(MANAGE_PY), *args], env=env, capture_output=True, text=True)


def add_node(name: str | None = None, log: Log = print) -> dict:
    """Create a new local worker (PostgreSQL and pgbouncer on their own ports), migrate and register it.

    It holds no shard until `manage.py rebalance` gives it some. Returns its config entry.
    """
    name = cluster_name(name)
    bindir, exe = system.pg_bindir(), system.pgbouncer_exe()
    with _locked(name):
        cfg = load_config(name)
        node = add_worker_node(cfg)
        save_config(cfg)
        system.make_traversable(cluster_dir(name), log)
        _up_node(cfg, node, bindir, exe, log)
        if engine_of(cfg) == "citus":
            # Citus places its shards itself: the app's catalogue never lists Citus workers (sharding.config).
            citus.prepare_node(cfg, node)
            citus.join_workers(cfg, log)
    if engine_of(cfg) == "citus":
        log(f"{node['name']}: joined the Citus cluster (no shards yet: `python manage.py rebalance` moves some to it)")
        return node
    out = _manage(name, "add_worker", node["name"], "--host", node["host"], "--port", str(node["port"]),
                  "--bouncer-port", str(node["bouncer_port"]))
    if out.returncode != 0:
        raise ClusterError(f"{node['name']} is running but was not registered "
                           f"({postgres.last_line(out.stderr or out.stdout)}): "
                           f"fix that and run `python manage.py add_worker {node['name']} --host {node['host']} "
                           f"--port {node['port']} --bouncer-port {node['bouncer_port']}`")
    log(f"{node['name']}: migrated and registered (no shards yet: `python manage.py rebalance` moves some to it)")
    return node


def remove_node(name: str | None, node_name: str, log: Log = print) -> None:
    """Forget a local worker in the catalogue (refused while it holds anything), stop it and delete its data."""
    name = cluster_name(name)
    cfg = load_config(name)
    node = find_node(cfg, node_name)
    if node["role"] != "worker":
        raise ClusterError(f"{node_name} is the coordinator: only workers can be removed")
    if _registered(cfg, node_name):
        out = _manage(name, "remove_worker", node_name)
        if out.returncode != 0:
            raise ClusterError(postgres.last_line(out.stderr or out.stdout).removeprefix("CommandError: "))
    bindir = system.pg_bindir()
    with _locked(name):
        cfg = load_config(name)
        _stop_node(node, bindir, "fast", log)
        shutil.rmtree(node["dir"], ignore_errors=True)
        cfg["nodes"] = [n for n in cfg["nodes"] if n["name"] != node_name]
        cfg["removed_nodes"] = sorted({*cfg.get("removed_nodes", []), node_name})
        save_config(cfg)
    log(f"{node_name}: removed (its data deleted)")


def _registered(cfg: dict, node_name: str) -> bool:
    # A coordinator that does not answer raises in remove_worker itself, with its own message.
    return bool(_catalogue_rows(cfg, "sharding_node", "SELECT 1 FROM sharding_node WHERE name = %s", (node_name,)))


def down(name: str | None = None, log: Log = print) -> None:
    """Stop every pgbouncer and postgres; data is kept."""
    name = cluster_name(name)
    cfg = load_config(name)
    bindir = system.pg_bindir()
    with _locked(name):
        for node in cfg["nodes"]:
            _stop_node(node, bindir, "fast", log)


def _stop_node(node: dict, bindir: Path, mode: str, log: Log) -> None:
    stopped = bouncer.stop(node)
    stopped = postgres.stop(node, bindir, mode) or stopped
    log(f"{node['name']}: {'stopped' if stopped else 'already stopped'}")


def start_node(name: str | None, node: str, log: Log = print) -> None:
    """Start one node's postgres and pgbouncer (after stop_node or kill_postmaster)."""
    name = cluster_name(name)
    bindir, exe = system.pg_bindir(), system.pgbouncer_exe()
    cfg = load_config(name)
    with _locked(name):
        _up_node(cfg, find_node(cfg, node), bindir, exe, log)


def stop_node(name: str | None, node: str, mode: str = "fast", log: Log = print) -> None:
    """Stop one node's pgbouncer and postgres; mode is pg_ctl's: smart, fast or immediate."""
    if mode not in ("smart", "fast", "immediate"):
        raise ClusterError(f"unknown stop mode {mode!r}: use smart, fast or immediate")
    name = cluster_name(name)
    bindir = system.pg_bindir()
    cfg = load_config(name)
    with _locked(name):
        _stop_node(find_node(cfg, node), bindir, mode, log)


def kill_postmaster(name: str | None, node: str, sig: int = signal.SIGKILL) -> int:
    """Send `sig` to one node's postmaster only (pgbouncer and backends untouched); returns its pid."""
    cfg = load_config(name)
    return postgres.kill(cfg, find_node(cfg, node), sig)


def destroy(name: str | None = None, log: Log = print) -> None:
    """Stop everything and delete the cluster directory; no prompt here (the CLI asks)."""
    name = cluster_name(name)
    directory = cluster_dir(name)
    if not directory.exists():
        log(f"cluster {name!r} does not exist, nothing to destroy")
        return
    with _locked(name):
        # without a readable config, any node subdirectory may still run servers
        nodes = [{"name": d.name, "dir": str(d)} for d in sorted(directory.iterdir()) if d.is_dir()]
        bindir = system.pg_bindir() if any(postgres.postmaster_pid(n) for n in nodes) else None
        for node in nodes:
            bouncer.stop(node)
            if bindir:
                postgres.stop(node, bindir, "immediate")
            postgres.clear_crash_leftovers(node)
        shutil.rmtree(directory)
    log(f"cluster {name!r} destroyed ({directory} deleted)")


def status(name: str | None = None) -> list[dict]:
    """One dict per node: ports, postgres/pgbouncer up or down, shards held, prepared transactions."""
    cfg = load_config(name)
    placements = _shard_placements(cfg)
    return [_node_status(cfg, node, placements) for node in cfg["nodes"]]


MOVES_SQL = """
SELECT id, shard, source, target, state, rows_copied, rows_total, lag_bytes, write_pause_ms,
       extract(epoch FROM coalesce(finished_at, now()) - created_at)
FROM sharding_shard_move
WHERE state NOT IN ('done', 'aborted') OR id IN (SELECT id FROM sharding_shard_move ORDER BY id DESC LIMIT %s)
ORDER BY id DESC
"""
MOVE_FIELDS = ("id", "shard", "source", "target", "state", "rows_copied", "rows_total", "lag_bytes",
               "write_pause_ms", "duration_s")


def shard_moves(name: str | None = None, recent: int = 5) -> list[dict] | None:
    """Moves in progress and the latest `recent` ones, newest first (None before the app is migrated)."""
    rows = _catalogue_rows(load_config(name), "sharding_shard_move", MOVES_SQL, (recent,))
    return None if rows is None else [dict(zip(MOVE_FIELDS, row, strict=True)) for row in rows]


def _catalogue_rows(cfg: dict, table: str, sql: str, params: tuple = ()) -> list[tuple] | None:
    """Rows of a query on the coordinator's catalogue; None if it is down or `table` does not exist yet."""
    coordinator = next(n for n in cfg["nodes"] if n["role"] == "coordinator")
    try:
        conn = postgres.connect(cfg, coordinator, timeout=3)
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if not postgres.fetch_one(cur)[0]:
                return None
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def _node_status(cfg: dict, node: dict, placements: dict[str, list[int]] | None) -> dict:
    shards = None if placements is None else placements.get(node["name"], [])
    row = {
        "name": node["name"], "role": node["role"], "host": node["host"],
        "port": node["port"], "bouncer_port": node["bouncer_port"],
        "postgres": "down", "bouncer": "up" if bouncer.is_up(cfg, node) else "down",
        "shards": None if shards is None else len(shards),
        "shard_ranges": None if shards is None else compact_ranges(shards),
        "prepared_xacts": None, "oldest_prepared_age_s": None,
    }
    try:
        conn = postgres.connect(cfg, node, timeout=3)
    except psycopg2.OperationalError:
        return row
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), extract(epoch FROM now() - min(prepared)) FROM pg_prepared_xacts")
            count, age = postgres.fetch_one(cur)
    finally:
        conn.close()
    row.update(postgres="up", prepared_xacts=count, oldest_prepared_age_s=None if age is None else round(float(age), 1))
    return row


def _shard_placements(cfg: dict) -> dict[str, list[int]] | None:
    """node -> sorted shards from the coordinator's sharding_shard_placement; None if unknown yet."""
    if cfg.get("engine") == "citus":
        return _citus_shard_placements(cfg)
    rows = _catalogue_rows(cfg, "sharding_shard_placement",
                           "SELECT node, array_agg(shard ORDER BY shard) FROM sharding_shard_placement GROUP BY node")
    return None if rows is None else dict(rows)


# Citus: the logical shards whose Citus shard group each worker holds, read off one distributed table (every
# sharded table's shards are colocated with it).
CITUS_PLACEMENTS_SQL = """
WITH anchor AS (SELECT logicalrelid FROM pg_dist_partition WHERE partmethod = 'h' ORDER BY logicalrelid::text LIMIT 1)
SELECT n.nodename, n.nodeport, array_agg(l ORDER BY l)
FROM anchor CROSS JOIN generate_series(0, %s - 1) l
JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column(anchor.logicalrelid, l)
JOIN pg_dist_node n ON n.groupid = p.groupid AND n.noderole = 'primary'
GROUP BY 1, 2
"""


def _citus_shard_placements(cfg: dict) -> dict[str, list[int]] | None:
    """node -> sorted logical shards as Citus places them; None if the coordinator does not answer."""
    rows = _catalogue_rows(cfg, "pg_dist_partition", CITUS_PLACEMENTS_SQL, (cfg["logical_shards"],))
    if rows is None:
        return None
    names = {(node["host"], node["port"]): node["name"] for node in cfg["nodes"]}
    return {names.get((host, port), f"{host}:{port}"): shards for host, port, shards in rows}


def compact_ranges(shards: list[int], max_runs: int = 6) -> str:
    """[0,1,2,3,7,9,10] -> '0-3,7,9-10'; long lists end with ',...'."""
    runs: list[list[int]] = []
    for shard in shards:
        if runs and shard == runs[-1][1] + 1:
            runs[-1][1] = shard
        else:
            runs.append([shard, shard])
    text = [f"{a}-{b}" if a != b else str(a) for a, b in runs[:max_runs]]
    return ",".join(text) + (",..." if len(runs) > max_runs else "")


def wait_for_exit(pid: int, timeout: float = 10) -> bool:
    """True once `pid` (e.g. from kill_postmaster) is gone or a zombie."""
    return not system.wait_gone([pid], system.running, timeout)
