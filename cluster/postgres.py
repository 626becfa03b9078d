"""One PostgreSQL server per node: initdb, settings, start/stop and crash leftovers."""
import os
import signal
import time
from pathlib import Path
from typing import Any

import psycopg2

from . import system
from .config import ClusterError, cli

SETTINGS_FILE = "marketplace.conf"


def data_dir(node: dict) -> Path:
    return Path(node["dir"]) / "data"


def log_path(node: dict) -> Path:
    return Path(node["dir"]) / "postgres.log"


def connect(
    cfg: dict, node: dict, *, bouncer: bool = False, dbname: str | None = None, timeout: int = 5
) -> psycopg2.extensions.connection:
    """A psycopg2 connection to a node, directly or through its pgbouncer."""
    return psycopg2.connect(
        host=node["host"], port=node["bouncer_port"] if bouncer else node["port"],
        dbname=dbname or cfg["database"], user=cfg["user"], password=cfg["password"],
        connect_timeout=timeout)


def fetch_one(cur: psycopg2.extensions.cursor) -> tuple[Any, ...]:
    """The row of a query that always returns exactly one (an aggregate, or a SELECT without FROM)."""
    row = cur.fetchone()
    assert row is not None, "the query returned no row"
    return row


def postmaster_pid(node: dict) -> int | None:
    """The live postmaster of this data dir, or None (postmaster.pid may be stale after a crash)."""
    data = data_dir(node)
    pid = system.read_pid(data / "postmaster.pid")
    if pid and system.proc_cwd(pid) == str(data.resolve()):
        return pid
    return None


def create(cfg: dict, node: dict, bindir: Path) -> bool:
    """initdb the node unless its data dir already holds a cluster; True if it was created."""
    node_dir, data = Path(node["dir"]), data_dir(node)
    node_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    system.give_to_server_user(node_dir)
    if data.exists():
        if not (data / "PG_VERSION").exists():
            raise ClusterError(f"{data} is not a PostgreSQL data directory: "
                               f"move it away or run {cli(cfg['name'], 'destroy')}")
        return False
    pwfile = node_dir / "initdb.pw"
    system.write_private(pwfile, cfg["password"] + "\n")
    try:
        out = system.run([bindir / "initdb", "-D", data, "-U", cfg["user"], "--auth=scram-sha-256",
                          f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
                         cwd=node_dir, capture_output=True)
    finally:
        pwfile.unlink()
    if out.returncode != 0:
        raise ClusterError(f"initdb for {node['name']} failed: {last_line(out.stderr)}")
    with open(data / "postgresql.conf", "a") as f:
        f.write(f"\ninclude '{SETTINGS_FILE}'\n")
    return True


def _write_settings(node: dict) -> None:
    """Our settings live in their own file so postgresql.conf stays initdb's."""
    settings = {
        "listen_addresses": node["host"],
        "port": node["port"],
        "unix_socket_directories": "",
        "max_connections": 100,
        # two-phase commit: every connection may hold a prepared transaction
        "max_prepared_transactions": 100,
        "timezone": "UTC",
        "log_timezone": "UTC",
        "shared_buffers": "128MB",
        # a client that vanished in a partition (its FIN lost) must not hold row locks for hours
        "idle_in_transaction_session_timeout": "10s",
        # online shard moves copy rows with logical replication (one slot and one sender per move)
        "wal_level": "logical",
        "max_replication_slots": 16,
        "max_wal_senders": 16,
        "max_logical_replication_workers": 8,
        "max_sync_workers_per_subscription": 4,
        # a new subscription's workers start within a second, not the default 5
        "wal_retrieve_retry_interval": "1s",
        "log_line_prefix": "%m [%p] %q%u@%d ",
    }
    lines = [f"{k} = '{v}'" if isinstance(v, str) else f"{k} = {v}" for k, v in settings.items()]
    system.write_private(data_dir(node) / SETTINGS_FILE, "\n".join(lines) + "\n")


def clear_crash_leftovers(node: dict) -> None:
    """After a killed postmaster: end orphaned backends, then drop the stale postmaster.pid.

    Order matters: postgres uses postmaster.pid to detect orphans still attached to the old
    shared memory, so the file may only go once they are gone.
    """
    data = data_dir(node)
    orphans = system.wait_gone(system.postgres_pids_in(data), system.running, timeout=5)
    system.signal_all(orphans, signal.SIGKILL)
    if system.wait_gone(orphans, system.running, timeout=5):
        raise ClusterError(f"orphaned postgres processes of {data} survive SIGKILL: stop them and retry")
    (data / "postmaster.pid").unlink(missing_ok=True)


def start(cfg: dict, node: dict, bindir: Path) -> bool:
    """Start the node's postgres unless it runs already; True if it was started.

    A running node whose settings file asks for what only a restart applies
    (an older cluster without `wal_level = logical`) is restarted, once.
    """
    if postmaster_pid(node):
        _write_settings(node)
        if not _needs_restart(cfg, node):
            return False
        stop(node, bindir, "fast")
    clear_crash_leftovers(node)
    system.ensure_port_free(node["port"], node["name"], cfg["name"])
    _write_settings(node)
    log = log_path(node)
    out = system.run([bindir / "pg_ctl", "-D", data_dir(node), "-l", log, "-w", "-t", "60", "start"],
                     cwd=Path(node["dir"]), capture_output=True)
    if out.returncode != 0:
        detail = last_line(log.read_text(errors="replace") if log.exists() else "") or last_line(out.stderr)
        raise ClusterError(f"{node['name']} did not start: see {log} ({detail})")
    return True


def _needs_restart(cfg: dict, node: dict) -> bool:
    """Reload the settings file; True when some setting in it waits for a restart."""
    conn = connect(cfg, node, dbname="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
            time.sleep(0.2)  # the postmaster rereads the file asynchronously
            cur.execute("SELECT coalesce(bool_or(pending_restart), false) FROM pg_settings")
            return fetch_one(cur)[0]
    finally:
        conn.close()


def stop(node: dict, bindir: Path, mode: str = "fast") -> bool:
    """Stop the node's postgres (pg_ctl -m mode); True if it was running."""
    if not postmaster_pid(node):
        return False
    out = system.run([bindir / "pg_ctl", "-D", data_dir(node), "-m", mode, "-w", "-t", "60", "stop"],
                     cwd=Path(node["dir"]), capture_output=True)
    if out.returncode != 0:
        raise ClusterError(f"{node['name']} did not stop ({last_line(out.stderr)}): see {log_path(node)}")
    return True


def kill(cfg: dict, node: dict, sig: int) -> int:
    """Signal only the postmaster (crash tests); returns its pid."""
    pid = postmaster_pid(node)
    if not pid:
        raise ClusterError(f"{node['name']} is not running: start it with {cli(cfg['name'], 'up')}")
    os.kill(pid, sig)
    return pid


def ensure_database(cfg: dict, node: dict) -> None:
    conn = connect(cfg, node, dbname="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (cfg["database"],))
            if not cur.fetchone():
                cur.execute(f'CREATE DATABASE "{cfg["database"]}"')
    finally:
        conn.close()


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
