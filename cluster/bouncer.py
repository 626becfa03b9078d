"""One pgbouncer per node, in transaction pooling mode, in front of that node's postgres."""
import functools
import signal
import subprocess
import time
from pathlib import Path

import psycopg2

from . import postgres, system
from .config import ClusterError

READY_TIMEOUT = 30


def _paths(node: dict) -> dict[str, Path]:
    d = Path(node["dir"])
    return {"ini": d / "pgbouncer.ini", "userlist": d / "userlist.txt",
            "pid": d / "pgbouncer.pid", "log": d / "pgbouncer.log"}


def _write_config(cfg: dict, node: dict) -> None:
    p = _paths(node)
    system.write_private(p["userlist"], f'"{cfg["user"]}" "{cfg["password"]}"\n')
    system.write_private(p["ini"], f"""\
[databases]
* = host={node["host"]} port={node["port"]}

[pgbouncer]
listen_addr = {node["host"]}
listen_port = {node["bouncer_port"]}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {p["userlist"]}
admin_users = {cfg["user"]}
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
max_db_connections = 60
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
; retry a restarted postgres after 1s instead of the default 15s
server_login_retry = 1
; a client waiting for a server connection (its node down) gets an error after 3s, not 120s: within the 5s
; that a request may take when a node fails
query_wait_timeout = 3
pidfile = {p["pid"]}
logfile = {p["log"]}
""")


def pid(node: dict) -> int | None:
    """The live pgbouncer of this node (its command line names our ini), or None."""
    found = system.read_pid(_paths(node)["pid"])
    return found if found and _runs_our_ini(node, found) else None


def _runs_our_ini(node: dict, candidate: int) -> bool:
    return str(_paths(node)["ini"]) in system.proc_cmdline(candidate)


def start(cfg: dict, node: dict, exe: str) -> bool:
    """Start the node's pgbouncer unless it runs already; True if it was started."""
    if pid(node):
        return False
    p = _paths(node)
    p["pid"].unlink(missing_ok=True)
    system.ensure_port_free(node["bouncer_port"], f"{node['name']} (pgbouncer)", cfg["name"])
    _write_config(cfg, node)
    # -d daemonizes; the parent only reports config errors, on stderr
    out = system.run([exe, "-d", p["ini"]], cwd=Path(node["dir"]),
                     stdin=subprocess.DEVNULL, capture_output=True)
    if out.returncode != 0:
        raise ClusterError(f"pgbouncer for {node['name']} did not start: see {p['log']} "
                           f"({out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'no output'})")
    return True


def wait_ready(cfg: dict, node: dict) -> None:
    """Wait until a real login through pgbouncer reaches postgres."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            conn = postgres.connect(cfg, node, bouncer=True, timeout=3)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
            finally:
                conn.close()
            return
        except psycopg2.OperationalError as e:
            if time.monotonic() > deadline:
                reason = str(e).strip().splitlines()[0] if str(e).strip() else "no answer"
                raise ClusterError(f"pgbouncer for {node['name']} on port {node['bouncer_port']} does not "
                                   f"accept logins ({reason}): see {_paths(node)['log']}") from None
            time.sleep(0.2)


def is_up(cfg: dict, node: dict) -> bool:
    """A login to pgbouncer's admin console, which works even while postgres is down."""
    try:
        conn = postgres.connect(cfg, node, bouncer=True, dbname="pgbouncer", timeout=3)
    except psycopg2.OperationalError:
        return False
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SHOW VERSION")
        return True
    finally:
        conn.close()


def query_count(cfg: dict, node: dict) -> int:
    """Queries this pgbouncer has passed to the node's database so far: every round trip of every client
    (BEGIN, each statement, PREPARE TRANSACTION, COMMIT PREPARED). SHOW STATS totals are live counters."""
    conn = postgres.connect(cfg, node, bouncer=True, dbname="pgbouncer", timeout=3)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SHOW STATS")
            assert cur.description is not None  # set once a statement returned rows
            columns = [column.name for column in cur.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()
    return sum(row["total_query_count"] for row in rows if row["database"] == cfg["database"])


def query_counts(cfg: dict) -> dict[str, int]:
    """{node name: query_count} over the whole cluster."""
    return {node["name"]: query_count(cfg, node) for node in cfg["nodes"]}


def stop(node: dict) -> bool:
    """SIGTERM (immediate shutdown) and wait; True if it was running."""
    found = pid(node)
    if not found:
        return False
    alive = functools.partial(_runs_our_ini, node)
    system.signal_all([found], signal.SIGTERM)
    survivors = system.wait_gone([found], alive, timeout=10)
    system.signal_all(survivors, signal.SIGKILL)
    if system.wait_gone(survivors, alive, timeout=5):
        raise ClusterError(f"pgbouncer {found} for {node['name']} survives SIGKILL: stop it and retry")
    _paths(node)["pid"].unlink(missing_ok=True)
    return True
