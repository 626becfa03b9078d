"""Cluster naming, paths and the cluster.json configuration file."""
import json
import os
import re
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

DEFAULT_NAME = "dev"
DATABASE = "marketplace"
DB_USER = "marketplace"
HOST = "127.0.0.1"
MAX_SHARDS = 8192
# The sharding engine a cluster is made for: our own routing layer over plain PostgreSQL nodes, or Citus
# (the coordinator and workers run the citus extension; the app's sharded tables are Citus distributed tables).
ENGINES = ("own", "citus")
DEFAULT_ENGINE = "own"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_REPO = Path(__file__).resolve().parent.parent
# Where progress lines go (print by default).
Log = Callable[[str], object]


class ClusterError(Exception):
    """A failure the user can fix; the message is one line that names the fix."""


def cluster_name(name: str | None = None) -> str:
    """Resolve the cluster name: explicit, else $CLUSTER_NAME, else 'dev'."""
    name = name or os.environ.get("CLUSTER_NAME") or DEFAULT_NAME
    if not _NAME_RE.match(name):
        raise ClusterError(f"invalid cluster name {name!r}: use letters, digits, '-' and '_' only")
    return name


def clusters_root() -> Path:
    """The `.cluster` directory holding every cluster ($CLUSTER_ROOT overrides its parent)."""
    return Path(os.environ.get("CLUSTER_ROOT") or _REPO).resolve() / ".cluster"


def cluster_dir(name: str | None = None) -> Path:
    return clusters_root() / cluster_name(name)


def config_path(name: str | None = None) -> Path:
    return cluster_dir(name) / "cluster.json"


def cli(name: str, command: str) -> str:
    """The shell command to suggest in messages, with --name when it is not the default."""
    suffix = "" if name == DEFAULT_NAME else f" --name {name}"
    return f"`python -m cluster {command}{suffix}`"


def load_config(name: str | None = None) -> dict:
    name = cluster_name(name)
    path = config_path(name)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterError(f"cluster {name!r} does not exist ({path} missing): run {cli(name, 'up')}") from None


def save_config(cfg: dict) -> None:
    """Write cluster.json atomically with mode 0600 (it holds the password)."""
    path = config_path(cfg["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def find_node(cfg: dict, node_name: str) -> dict:
    for node in cfg["nodes"]:
        if node["name"] == node_name:
            return node
    valid = ", ".join(n["name"] for n in cfg["nodes"])
    raise ClusterError(f"unknown node {node_name!r} in cluster {cfg['name']!r}: use one of {valid}")


def engine_of(cfg: dict) -> str:
    """The engine recorded in a cluster config (configs made before engines existed are our own)."""
    return str(cfg.get("engine", DEFAULT_ENGINE))


def new_config(name: str, workers: int, shards: int, engine: str = DEFAULT_ENGINE) -> dict:
    if engine not in ENGINES:
        raise ClusterError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    cfg = {
        "name": name,
        "engine": engine,
        "logical_shards": shards,
        "database": DATABASE,
        "user": DB_USER,
        "password": secrets.token_urlsafe(24),
        "nodes": [],
    }
    _append_nodes(cfg, ["coordinator"] + [f"worker{i}" for i in range(1, workers + 1)])
    return cfg


def add_workers(cfg: dict, workers: int) -> None:
    """Append workers up to `workers` in total; existing nodes and ports are kept."""
    have = sum(1 for n in cfg["nodes"] if n["role"] == "worker")
    _append_nodes(cfg, new_worker_names(cfg, workers - have))


def new_worker_names(cfg: dict, count: int) -> list[str]:
    """The next `count` unused names worker<N> (a removed worker's name is not given out again)."""
    used = {n["name"] for n in cfg["nodes"]} | set(cfg.get("removed_nodes", []))
    names: list[str] = []
    number = 1
    while len(names) < count:
        if f"worker{number}" not in used:
            names.append(f"worker{number}")
        number += 1
    return names


def add_worker_node(cfg: dict) -> dict:
    """Append one worker with fresh ports; returns its entry (the caller saves the config)."""
    (name,) = new_worker_names(cfg, 1)
    _append_nodes(cfg, [name])
    return cfg["nodes"][-1]


def _append_nodes(cfg: dict, names: list[str]) -> None:
    ports = iter(_free_ports(2 * len(names), avoid=_ports_in_use_by_clusters()))
    for node_name in names:
        cfg["nodes"].append({
            "name": node_name,
            "role": "coordinator" if node_name == "coordinator" else "worker",
            "host": HOST,
            "port": next(ports),
            "bouncer_port": next(ports),
            "dir": str(cluster_dir(cfg["name"]) / node_name),
        })


def _ports_in_use_by_clusters() -> set[int]:
    """Ports persisted by every cluster, so a stopped cluster does not lose its ports to a new one."""
    ports: set[int] = set()
    for path in clusters_root().glob("*/cluster.json"):
        try:
            nodes = json.loads(path.read_text())["nodes"]
        except (OSError, ValueError, KeyError):
            continue
        ports.update(p for n in nodes for p in (n["port"], n["bouncer_port"]))
    return ports


def _free_ports(count: int, avoid: set[int]) -> list[int]:
    """Let the kernel pick distinct free ports; sockets stay open until all are chosen."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket()
            sockets.append(s)
            s.bind((HOST, 0))
            port = s.getsockname()[1]
            if port not in avoid:
                ports.append(port)
    finally:
        for s in sockets:
            s.close()
    return ports
