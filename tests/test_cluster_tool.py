"""The local cluster tool against real PostgreSQL + pgbouncer servers (cluster 'toolcheck', 1 worker)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import cluster

# The tool on a cluster of its own engine (cluster `toolcheck`), whatever engine the suite runs on.
pytestmark = pytest.mark.own_engine
NAME = "toolcheck"
REPO = Path(__file__).resolve().parent.parent


def quiet(_line: str) -> None:
    """A `log` callback that keeps progress lines out of the test output."""


def run_cli(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cluster", *args], cwd=REPO, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, timeout=180, **kwargs)


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cluster: error: ")
    assert expected in lines[0]


def query(node: str, sql: str, *, bouncer: bool = False):
    cfg = cluster.load_config(NAME)
    conn = cluster.connect(cfg, cluster.find_node(cfg, node), bouncer=bouncer)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def status_by_node() -> tuple[dict, int]:
    """`status --json` rows keyed by node name, and the exit code."""
    result = run_cli("status", "--json", "--name", NAME)
    return {row["name"]: row for row in json.loads(result.stdout)}, result.returncode


@pytest.fixture(scope="module", autouse=True)
def toolcheck_cluster():
    cluster.destroy(NAME, log=quiet)
    cfg = cluster.up(NAME, workers=1, log=quiet)
    yield cfg
    cluster.destroy(NAME, log=quiet)


def test_config_shape(toolcheck_cluster):
    path = cluster.config_path(NAME)
    assert path.stat().st_mode & 0o777 == 0o600
    cfg = json.loads(path.read_text())
    assert cfg == toolcheck_cluster
    assert set(cfg) == {"name", "engine", "logical_shards", "database", "user", "password", "nodes"}
    assert (cfg["name"], cfg["engine"], cfg["logical_shards"], cfg["database"], cfg["user"]) == (
        NAME, "own", 64, "marketplace", "marketplace"
    )
    assert len(cfg["password"]) >= 24
    assert [(n["name"], n["role"]) for n in cfg["nodes"]] == [("coordinator", "coordinator"), ("worker1", "worker")]
    ports = [p for n in cfg["nodes"] for p in (n["port"], n["bouncer_port"])]
    assert len(set(ports)) == 4
    for node in cfg["nodes"]:
        assert set(node) == {"name", "role", "host", "port", "bouncer_port", "dir"}
        assert Path(node["dir"]) == cluster.cluster_dir(NAME) / node["name"]
        assert (Path(node["dir"]) / "data" / "PG_VERSION").read_text().strip() == "15"


def test_up_twice_is_a_quick_noop():
    result = run_cli("up", "--name", NAME)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["coordinator: already running", "worker1: already running"]
    assert query("worker1", "SELECT 1", bouncer=True) == [(1,)]


def test_status_lists_every_node_up():
    rows, code = status_by_node()
    assert code == 0
    assert list(rows) == ["coordinator", "worker1"]
    for row in rows.values():
        assert (row["postgres"], row["bouncer"], row["prepared_xacts"]) == ("up", "up", 0)
        assert row["shards"] is None  # no sharding_shard_placement table in this cluster


def test_server_settings():
    assert query("worker1", "SELECT current_setting('max_prepared_transactions')::int >= "
                            "current_setting('max_connections')::int, current_setting('TimeZone')") == [(True, "UTC")]


def test_pgbouncer_pools_transactions():
    cfg = cluster.load_config(NAME)
    admin = cluster.connect(cfg, cluster.find_node(cfg, "worker1"), bouncer=True, dbname="pgbouncer")
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SHOW CONFIG")
            config = {row[0]: row[1] for row in cur.fetchall()}
    finally:
        admin.close()
    assert (config["pool_mode"], config["max_db_connections"]) == ("transaction", "60")


def test_prepared_transaction_is_reported_by_status():
    cfg = cluster.load_config(NAME)
    conn = cluster.connect(cfg, cluster.find_node(cfg, "worker1"))
    try:
        conn.tpc_begin(conn.xid(1, "toolcheck-gtrid", "b"))
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE prepared_probe (x int)")
        conn.tpc_prepare()
        rows, _ = status_by_node()
        assert rows["worker1"]["prepared_xacts"] == 1
        assert rows["worker1"]["oldest_prepared_age_s"] >= 0
        assert rows["coordinator"]["prepared_xacts"] == 0
        conn.tpc_commit()
    finally:
        conn.close()
    rows, _ = status_by_node()
    assert rows["worker1"]["prepared_xacts"] == 0


def test_shard_placements_are_summarised():
    query("coordinator", "CREATE TABLE sharding_shard_placement (shard integer, node text);"
                         "INSERT INTO sharding_shard_placement SELECT s, 'worker1' FROM generate_series(0, 31) s;"
                         "INSERT INTO sharding_shard_placement VALUES (40, 'worker1'), (41, 'worker1');")
    try:
        rows = {r["name"]: r for r in cluster.status(NAME)}
        assert (rows["worker1"]["shards"], rows["worker1"]["shard_ranges"]) == (34, "0-31,40-41")
        assert (rows["coordinator"]["shards"], rows["coordinator"]["shard_ranges"]) == (0, "")
    finally:
        query("coordinator", "DROP TABLE sharding_shard_placement")


def test_down_then_up_keeps_data():
    query("worker1", "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    cluster.down(NAME, log=quiet)
    rows, code = status_by_node()
    assert code == 1
    assert all((r["postgres"], r["bouncer"]) == ("down", "down") for r in rows.values())
    cluster.up(NAME, log=quiet)
    assert query("worker1", "SELECT x FROM kept") == [(42,)]
    assert query("worker1", "SELECT x FROM kept", bouncer=True) == [(42,)]


def test_killed_postmaster_comes_back_with_data():
    query("worker1", "CREATE TABLE survives (x int); INSERT INTO survives VALUES (7)")
    pid = cluster.kill_postmaster(NAME, "worker1")
    assert cluster.wait_for_exit(pid)
    rows, code = status_by_node()
    assert (code, rows["worker1"]["postgres"], rows["coordinator"]["postgres"]) == (1, "down", "up")
    result = run_cli("up", "--name", NAME)
    assert result.returncode == 0, result.stderr
    assert "worker1: started on" in result.stdout
    assert query("worker1", "SELECT x FROM survives") == [(7,)]
    assert query("worker1", "SELECT x FROM survives", bouncer=True) == [(7,)]


def test_psql_passes_arguments_through():
    direct = run_cli("psql", "worker1", "--name", NAME, "--", "-tAc", "SELECT inet_server_port()")
    assert direct.returncode == 0, direct.stderr
    node = cluster.find_node(cluster.load_config(NAME), "worker1")
    assert direct.stdout.strip() == str(node["port"])
    via_bouncer = run_cli("psql", "worker1", "--bouncer", "--name", NAME, "--", "-tAc", "SELECT 1")
    assert (via_bouncer.returncode, via_bouncer.stdout.strip()) == (0, "1")


def test_psql_unknown_node_is_one_line_error():
    assert_one_line_error(run_cli("psql", "worker9", "--name", NAME), "use one of coordinator, worker1")


def test_port_taken_is_one_line_error():
    node = cluster.find_node(cluster.load_config(NAME), "worker1")
    cluster.stop_node(NAME, "worker1", log=quiet)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT
        squatter.bind(("127.0.0.1", node["port"]))
        squatter.listen()
        result = run_cli("up", "--name", NAME)
    assert_one_line_error(result, f"port {node['port']} for worker1 is taken by another process")
    cluster.up(NAME, log=quiet)
    assert query("worker1", "SELECT 1") == [(1,)]


def test_data_dir_not_a_cluster_is_one_line_error():
    name = "toolcheck-notpg"
    cluster.destroy(name, log=quiet)
    junk = cluster.cluster_dir(name) / "coordinator" / "data"
    junk.mkdir(parents=True)
    (junk / "notes.txt").write_text("not postgres")
    try:
        result = run_cli("up", "--name", name, "--workers", "1")
        assert_one_line_error(result, f"{junk} is not a PostgreSQL data directory")
    finally:
        cluster.destroy(name, log=quiet)
    assert not cluster.cluster_dir(name).exists()


def test_missing_binaries_is_one_line_error():
    result = run_cli("up", "--name", NAME, env={"PG_BINDIR": "/nonexistent/bin"})
    assert_one_line_error(result, "PostgreSQL 15 server binaries not found (looked in /nonexistent/bin)")
    assert "set PG_BINDIR" in result.stderr


def test_destroy_without_tty_needs_yes():
    assert_one_line_error(run_cli("destroy", "--name", NAME), "pass --yes")
    assert cluster.config_path(NAME).exists()


def test_status_of_missing_cluster_is_one_line_error():
    assert_one_line_error(run_cli("status", "--name", "toolcheck-missing"), "does not exist")


def test_more_workers_are_appended_and_fewer_keep_them_all(toolcheck_cluster):
    result = run_cli("up", "--name", NAME, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "worker2: created" in result.stdout
    cfg = cluster.load_config(NAME)
    assert cfg["nodes"][:2] == toolcheck_cluster["nodes"]  # existing nodes and ports kept
    assert [n["name"] for n in cfg["nodes"]] == ["coordinator", "worker1", "worker2"]
    assert cfg["password"] == toolcheck_cluster["password"]
    assert query("worker2", "SELECT 1", bouncer=True) == [(1,)]
    result = run_cli("up", "--name", NAME, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert [n["name"] for n in cluster.load_config(NAME)["nodes"]] == ["coordinator", "worker1", "worker2"]
