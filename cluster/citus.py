"""The Citus engine of the local cluster tool: the extension on every node, and the workers joined to the coordinator.

`python -m cluster up --engine citus` makes the same nodes as our own engine (one PostgreSQL server per node,
each behind its own pgbouncer), with `shared_preload_libraries = 'citus'`. Then, on every node,
`CREATE EXTENSION citus` and the password Citus uses between nodes (`pg_dist_authinfo`, since every node
authenticates with scram-sha-256); on the coordinator `citus_set_coordinator_host` and `citus_add_node` for each
worker. Citus is not in the package registries these machines reach; it is built from its public source, never
from this repository.
"""
import glob
import shutil
import subprocess
from pathlib import Path

import psycopg2

from .config import ClusterError, Log

# What a Citus node needs on top of our own settings (cluster.postgres writes both into marketplace.conf).
SERVER_SETTINGS: dict[str, str | int] = {
    "shared_preload_libraries": "citus",
    # Citus's own recovery of its two-phase commits runs on the coordinator (the default, kept explicit).
    "citus.recover_2pc_interval": "10s",
    # SET LOCAL reaches the workers a transaction uses (lock_timeout, statement_timeout, the search's
    # pg_trgm thresholds): the app's bounds on waiting hold where the rows are.
    "citus.propagate_set_commands": "local",
}
HOW_TO_GET_IT = ("the citus extension is not installed for PostgreSQL 15: build a v13 tag of "
                 "https://github.com/citusdata/citus outside this repository (./configure && make && make install; "
                 "see README, Citus) or use the default engine (`up` without --engine citus)")


def extension_dirs(bindir: Path) -> list[Path]:
    """Where PostgreSQL 15 looks for extension control files (pg_config's sharedir, then Debian's)."""
    dirs = []
    pg_config = bindir / "pg_config" if (bindir / "pg_config").exists() else shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            dirs.append(Path(out.stdout.strip()) / "extension")
    dirs.append(Path("/usr/share/postgresql/15/extension"))
    return dirs


def require_extension(bindir: Path) -> None:
    """Stop with one line saying how to get Citus when its extension files are not installed."""
    for directory in extension_dirs(bindir):
        if (directory / "citus.control").exists() and glob.glob(str(directory / "citus--*.sql")):
            return
    raise ClusterError(HOW_TO_GET_IT)


def _run(conn: psycopg2.extensions.connection, sql: str, params: tuple = ()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _connect(cfg: dict, node: dict) -> psycopg2.extensions.connection:
    from . import postgres  # postgres imports this module for SERVER_SETTINGS

    conn = postgres.connect(cfg, node)
    conn.autocommit = True
    return conn


def prepare_node(cfg: dict, node: dict) -> None:
    """The extension and the inter-node password on one node (idempotent)."""
    conn = _connect(cfg, node)
    try:
        _run(conn, "CREATE EXTENSION IF NOT EXISTS citus")
        # nodeid 0: every node; Citus reads this when it connects to another node as this role.
        _run(conn, "DELETE FROM pg_dist_authinfo WHERE nodeid = 0 AND rolename = %s", (cfg["user"],))
        _run(conn, "INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, %s, %s)",
             (cfg["user"], f"password={cfg['password']}"))
    finally:
        conn.close()


def join_workers(cfg: dict, log: Log = print) -> None:
    """Tell the coordinator where it runs and add every worker it does not know yet (citus_add_node)."""
    coordinator = next(n for n in cfg["nodes"] if n["role"] == "coordinator")
    conn = _connect(cfg, coordinator)
    try:
        _run(conn, "SELECT citus_set_coordinator_host(%s, %s)", (coordinator["host"], coordinator["port"]))
        known = {(host, port) for host, port in _run(conn, "SELECT nodename, nodeport FROM pg_dist_node")}
        for node in cfg["nodes"]:
            if node["role"] != "worker" or (node["host"], node["port"]) in known:
                continue
            try:
                _run(conn, "SELECT citus_add_node(%s, %s)", (node["host"], node["port"]))
            except psycopg2.Error as exc:
                raise ClusterError(f"citus_add_node for {node['name']} failed: "
                                   f"{str(exc).strip().splitlines()[0]}") from None
            log(f"{node['name']}: added to the Citus coordinator")
    finally:
        conn.close()


def active_workers(cfg: dict) -> list[tuple[str, int]]:
    """citus_get_active_worker_nodes() on the coordinator."""
    coordinator = next(n for n in cfg["nodes"] if n["role"] == "coordinator")
    conn = _connect(cfg, coordinator)
    try:
        return [(host, port) for host, port in _run(conn, "SELECT * FROM citus_get_active_worker_nodes()")]
    finally:
        conn.close()
