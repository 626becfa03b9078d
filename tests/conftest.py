"""Fixtures: the suite runs against the real `test` cluster that `make test` starts.

Tests use the cluster's databases as they are (no per-test database is
created): every test cleans up the tables it uses. Tests that need the API over
HTTP use live_server_url, a dev server started once per session.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest
import requests
from django.conf import settings
from django.db import connections

from sharding.config import direct_dsn

REPO = Path(__file__).resolve().parents[1]
SERVER_LOG = Path(tempfile.gettempdir()) / "marketplace-tests-runserver.log"


@pytest.fixture(scope="session")
def django_db_setup():
    """The cluster is created and migrated by `make test`; nothing to set up here."""


@pytest.fixture(autouse=True)
def _cluster_access(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        yield
    for connection in connections.all(initialized_only=True):
        connection.close()


@pytest.fixture
def cluster_config():
    return settings.CLUSTER_CONFIG


@pytest.fixture
def direct_connect(cluster_config):
    """Open autocommit psycopg2 connections straight to a node, bypassing Django and pgbouncer."""
    opened = []

    def connect(node_name):
        conn = psycopg2.connect(**direct_dsn(cluster_config, node_name))
        conn.autocommit = True
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def worker_names():
    return [node["name"] for node in settings.CLUSTER_CONFIG["nodes"] if node["role"] == "worker"]


def two_workers():
    """Two workers to put a buyer and a seller on: two different ones on our own engine. With Citus every logical
    shard is on the one alias `citus` (the coordinator), so both are that alias; two users there are on two
    logical shards, which Citus places on its workers itself."""
    names = worker_names()
    return (names[0], names[0]) if settings.SHARDING["ENGINE"] == "citus" else (names[0], names[1])


def home_of_user(user_id):
    """The server a user's rows are on: our worker's alias, or with Citus the Citus worker (host:port) that holds
    the user's logical shard. Tests that mean to spread rows over several servers check it with this."""
    from sharding.placement import shard_of

    return home_of_shard(shard_of(user_id))


def home_of_shard(shard):
    """The server a logical shard's rows are on (see home_of_user)."""
    from sharding.placement import node_of_shard

    if settings.SHARDING["ENGINE"] != "citus":
        return node_of_shard(shard)
    from sharding.citus_admin import logical_shards_by_node

    return next(node for node, shards in logical_shards_by_node().items() if shard in shards)


def all_homes():
    """Every server for users' rows (see home_of_user): our workers, or Citus's active workers (host:port)."""
    if settings.SHARDING["ENGINE"] != "citus":
        return worker_names()
    from sharding.citus_admin import active_worker_addresses

    return active_worker_addresses()


def two_homes():
    """Two different servers for users' rows: our two workers, or two Citus workers."""
    if settings.SHARDING["ENGINE"] != "citus":
        return two_workers()
    first, second = all_homes()[:2]
    return first, second


def coordinator_name():
    return next(node["name"] for node in settings.CLUSTER_CONFIG["nodes"] if node["role"] == "coordinator")


MARKETPLACE_WORKER_TABLES = (
    "wallet_wallet", "wallet_ledgerentry", "catalog_item", "orders_purchase", "orders_sale", "core_idempotencykey",
    "catalog_itemtombstone", "catalog_listingevent", "partners_webhookdelivery", "catalog_photo",
)


MARKETPLACE_COORDINATOR_TABLES = ("auth_user", "cache_table", "partners_partner")


def reset_tables(direct_connect, worker_tables, coordinator_tables=()):
    """Empty tables on every worker (and the coordinator), first rolling back leftover prepared transactions,
    which a test that failed midway may leave holding locks."""
    for name in worker_names():
        with direct_connect(name).cursor() as cursor:
            cursor.execute("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()")
            for (gid,) in cursor.fetchall():
                cursor.execute("ROLLBACK PREPARED %s", [gid])
            cursor.execute("SET lock_timeout = '10s'")
            cursor.execute(f"TRUNCATE {', '.join(worker_tables)}")
    if coordinator_tables:
        with direct_connect(coordinator_name()).cursor() as cursor:
            cursor.execute("SET lock_timeout = '10s'")
            cursor.execute(f"TRUNCATE {', '.join(coordinator_tables)} CASCADE")


@pytest.fixture
def clean_shardtest(direct_connect):
    """Empty the routing layer's test tables on every worker, before and after the test."""
    reset_tables(direct_connect, ["shardtest_note", "shardtest_account"])
    yield
    reset_tables(direct_connect, ["shardtest_note", "shardtest_account"])


@pytest.fixture
def clean_marketplace(direct_connect):
    """Empty the marketplace tables on every worker, and users and their tokens on the coordinator."""
    reset_tables(direct_connect, MARKETPLACE_WORKER_TABLES, MARKETPLACE_COORDINATOR_TABLES)
    yield
    reset_tables(direct_connect, MARKETPLACE_WORKER_TABLES, MARKETPLACE_COORDINATOR_TABLES)


# --------------------------------------------------------------------------- live server


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env():
    # The same cluster as this process (tests.settings defaults to `test`).
    cluster = os.environ.get("CLUSTER_NAME") or "test"
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "CLUSTER_NAME": cluster, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def live_server_url():
    port = _free_port()
    log = open(SERVER_LOG, "w")  # noqa: SIM115 - closed at the end of the session
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=server_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"runserver exited with {process.returncode}:\n{SERVER_LOG.read_text()[-3000:]}")
            try:
                requests.get(f"{url}/health/", timeout=2)
                break
            except requests.RequestException as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"runserver did not answer within 30 s:\n{SERVER_LOG.read_text()[-3000:]}"
                    ) from error
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
