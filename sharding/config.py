"""Reading the cluster config that `python -m cluster up` writes (or, in a container, the environment's).

The config needs only the coordinator and the credentials; the local cluster
tool also lists its workers there. Django's DATABASES is built from it: the
coordinator is the alias `default`, each listed worker an alias named after
the node (`worker1` ... `workerN`). Workers the config does not list are
learned from the coordinator's catalogue at run time (sharding.placement).
"""
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import ClusterConfigError

COORDINATOR_ALIAS = "default"
# The engines: our own routing layer over plain PostgreSQL workers, or Citus (see sharding.engine).
ENGINES = ("own", "citus")
# With Citus, the one worker alias of the app: every logical shard is placed on it, and it is the coordinator.
CITUS_ALIAS = "citus"
# The parsed cluster.json: "database", "user", "password", "logical_shards" and "nodes" (a list of dicts).
ClusterConfig = dict[str, Any]


def default_config_path(base_dir: str | os.PathLike[str]) -> Path:
    """Where the config lives: $CLUSTER_CONFIG, else .cluster/$CLUSTER_NAME/cluster.json."""
    explicit = os.environ.get("CLUSTER_CONFIG")
    if explicit:
        return Path(explicit)
    name = os.environ.get("CLUSTER_NAME", "dev")
    return Path(base_dir) / ".cluster" / name / "cluster.json"


def config_from_environment() -> ClusterConfig | None:
    """The cluster from environment variables alone (containers), or None without $CLUSTER_COORDINATOR_URL.

    CLUSTER_COORDINATOR_URL=postgresql://USER:PASSWORD@HOST:PORT/DATABASE is how the app reaches the coordinator
    (through a pgbouncer, or straight to PostgreSQL); CLUSTER_LOGICAL_SHARDS (default 64, as `cluster up`) must
    match the catalogue. Workers are not listed: the app learns them from the coordinator's catalogue, and with
    Citus the coordinator is the only node the app talks to. `migrate_cluster` migrates the listed nodes only, so
    our own engine's workers are migrated with a cluster.json that lists them (CLUSTER_CONFIG).
    """
    url = os.environ.get("CLUSTER_COORDINATOR_URL", "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:  # not a number, or out of range
        port = None
    database = unquote(parts.path.lstrip("/"))
    if parts.scheme not in ("postgres", "postgresql") or not (parts.username and parts.hostname and database and port):
        raise ClusterConfigError(
            "CLUSTER_COORDINATOR_URL must look like postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
            "(user, host and database required; a password's special characters %-encoded)"
        )
    shards = os.environ.get("CLUSTER_LOGICAL_SHARDS", "64").strip()
    if not shards.isdigit() or int(shards) < 1:
        raise ClusterConfigError(f"CLUSTER_LOGICAL_SHARDS must be a whole number of at least 1, not {shards!r}")
    return app_view({
        "database": database,
        "user": unquote(parts.username),
        "password": unquote(parts.password or ""),
        "logical_shards": int(shards),
        "nodes": [{"name": "coordinator", "role": "coordinator", "host": parts.hostname, "port": port}],
    }, "the environment")


def load_cluster_config(path: str | os.PathLike[str]) -> ClusterConfig:
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterConfigError(
            f"cluster config {path} not found: start the cluster with `make run` "
            f"(or `python -m cluster up`), or point CLUSTER_CONFIG at an existing config"
        ) from None
    except (OSError, ValueError) as exc:
        raise ClusterConfigError(
            f"cluster config {path} is unreadable ({exc}): recreate it with `python -m cluster up`"
        ) from None
    _validate(config, path)
    return app_view(config, path)


def sharding_engine(config: ClusterConfig, path: str | os.PathLike[str] = "the cluster config") -> str:
    """$SHARDING_ENGINE, else the engine the cluster config records, else our own."""
    engine = (os.environ.get("SHARDING_ENGINE") or str(config.get("engine") or "own")).strip().lower()
    if engine not in ENGINES:
        raise ClusterConfigError(
            f"unknown sharding engine {engine!r} (SHARDING_ENGINE or `engine` in {path}): use own or citus"
        )
    return engine


def app_view(config: ClusterConfig, path: str | os.PathLike[str] = "the cluster config") -> ClusterConfig:
    """The config as the app sees it, with its engine resolved into `engine`.

    Our own engine: the config as it is. Citus: the coordinator and one worker alias, CITUS_ALIAS, at the
    coordinator's own address (so every Django alias of a worker is the Citus coordinator, and the
    placement map puts every logical shard there); the Citus workers themselves are Citus's business, which
    health and the cluster page ask the coordinator about (sharding.citus_admin).
    """
    engine = sharding_engine(config, path)
    view = {**config, "engine": engine}
    if engine == "own":
        return view
    coordinator = next(node for node in config["nodes"] if node.get("role") == "coordinator")
    view["nodes"] = [coordinator, {**coordinator, "name": CITUS_ALIAS, "role": "worker"}]
    return view


def _validate(config: ClusterConfig, path: Path) -> None:
    required = ("database", "user", "password", "logical_shards", "nodes")
    missing = [key for key in required if key not in config]
    if missing:
        raise ClusterConfigError(
            f"cluster config {path} lacks {', '.join(missing)}: recreate it with `python -m cluster up`"
        )
    roles = [node.get("role") for node in config["nodes"]]
    if roles.count("coordinator") != 1:
        raise ClusterConfigError(f"cluster config {path} must name exactly one coordinator")


# A node that stops answering costs seconds, not minutes: libpq gives up connecting after
# connect_timeout, TCP keepalives notice a silent peer within about 3 s (idle 1 s, then 2 probes
# 1 s apart), and tcp_user_timeout drops a connection whose sent data stays unacknowledged for
# 2.5 s. None of them limits a slow query on a live node (its kernel answers the keepalives).
BOUNDED_WAITS = {
    "connect_timeout": 2,
    "keepalives": 1,
    "keepalives_idle": 1,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 2500,
}


def node_alias(node: dict[str, Any]) -> str:
    return COORDINATOR_ALIAS if node["role"] == "coordinator" else node["name"]


def database_settings(
    config: ClusterConfig, *, direct: bool = False, conn_max_age: int | None = 60
) -> dict[str, dict[str, Any]]:
    """DATABASES for Django: through each node's pgbouncer unless `direct`."""
    databases = {}
    for node in config["nodes"]:
        port = node["port"] if direct or not node.get("bouncer_port") else node["bouncer_port"]
        databases[node_alias(node)] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": config["database"],
            "USER": config["user"],
            "PASSWORD": config["password"],
            "HOST": node["host"],
            "PORT": str(port),
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": True,
            # pgbouncer in transaction mode cannot keep a server-side cursor open.
            "DISABLE_SERVER_SIDE_CURSORS": True,
            "OPTIONS": {"application_name": "django", **BOUNDED_WAITS},
            "TEST": {"NAME": config["database"]},
        }
    return databases


def direct_dsn(config: ClusterConfig, node_name: str) -> dict[str, Any]:
    """libpq keyword arguments for a session straight to a node's PostgreSQL (no pgbouncer)."""
    for node in config["nodes"]:
        if node["name"] == node_name:
            return dsn_for(config, host=node["host"], port=node["port"])
    raise ClusterConfigError(f"node {node_name!r} is not in the cluster config")


def dsn_for(config: ClusterConfig, *, host: str, port: int) -> dict[str, Any]:
    return {
        "host": host, "port": port, "dbname": config["database"], "user": config["user"],
        "password": config["password"], **BOUNDED_WAITS,
    }
