"""Where data lives: logical shards, their placement on workers, the workers themselves, and node lookup.

Marketplace code asks this module for "the node of user X", "the node of id Y"
or "all workers" and gets a Django database alias back.

The coordinator's catalogue is the source of truth: which workers exist and how
to reach them (`sharding_node`), which worker holds each logical shard
(`sharding_shard_placement`), and the shard moves under way
(`sharding_shard_move`), all read in one snapshot together with the placement
version. A process caches that map and checks the version again after
PLACEMENT_TTL seconds, and at the first lookup of every web request (see
`sharding.middleware`), so a request never routes by a map older than the
requests that came before it. A worker that appears in the catalogue becomes a
database alias of the running process, without a restart.
"""
import copy
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections

from . import breaker
from .config import COORDINATOR_ALIAS
from .engine import is_citus
from .errors import InvalidIdError, PlacementError, UnknownNodeError
from .ids import parse_id, shard_of_id

# Move states in which the shard's rows on a node are a copy that node does not serve:
# the target's while the move copies (or is undone), the source's once it has switched.
_TARGET_HOLDS_COPY = ("pending", "copying", "catching_up", "fencing", "aborting")
_SOURCE_HOLDS_COPY = ("switched", "cleaning")


def logical_shard_count() -> int:
    return settings.SHARDING["LOGICAL_SHARDS"]


def shard_of(user_id: int) -> int:
    """The logical shard of a user: a stable function of the id alone."""
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
        raise ValueError(f"user id must be a positive integer, not {user_id!r}")
    return user_id % logical_shard_count()


def coordinator() -> str:
    return COORDINATOR_ALIAS


def node_sort_key(name: str) -> list[int | str]:
    """worker2 before worker10: every process orders the workers the same way."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class NodeInfo:
    name: str
    role: str
    host: str
    port: int | None
    bouncer_port: int | None
    state: str = "active"


@dataclass(frozen=True)
class MoveInfo:
    shard: int
    source: str
    target: str
    state: str


@dataclass(frozen=True)
class Placement:
    version: int
    nodes: tuple[str, ...]  # nodes[shard] is the alias of the worker holding that shard
    loaded_at: float
    workers: tuple[str, ...] = ()  # every worker in the catalogue, in node order
    node_info: dict[str, NodeInfo] = field(default_factory=dict)  # name -> NodeInfo
    moves: tuple[MoveInfo, ...] = ()  # MoveInfo of every unfinished move

    def node_of_shard(self, shard: int) -> str:
        return self.nodes[shard]

    def shards_of_node(self, alias: str) -> list[int]:
        return [shard for shard, node in enumerate(self.nodes) if node == alias]

    def copied_shards_on(self, alias: str) -> list[int]:
        """Shards whose rows `alias` holds only as a move's copy: reads and scans there must leave them out."""
        return sorted(
            {m.shard for m in self.moves if m.target == alias and m.state in _TARGET_HOLDS_COPY}
            | {m.shard for m in self.moves if m.source == alias and m.state in _SOURCE_HOLDS_COPY}
        )


_placement: Placement | None = None
_placement_lock = threading.Lock()
_request = threading.local()


def check_placement_at_next_lookup() -> None:
    """The next lookup in this thread asks the coordinator for the version, whatever the TTL (start of a request)."""
    _request.check = True


def current_placement() -> Placement:
    """The placement map, cached per process and re-read when its version changes."""
    global _placement
    must_check = getattr(_request, "check", False)
    ttl = settings.SHARDING["PLACEMENT_TTL"]
    cached = _placement
    if cached is not None and not must_check and time.monotonic() - cached.loaded_at < ttl:
        return cached
    _request.check = False
    with _placement_lock:
        cached = _placement
        if cached is not None and not must_check and time.monotonic() - cached.loaded_at < ttl:
            return cached
        version = _read_version()
        if cached is not None and cached.version == version:
            _placement = Placement(
                cached.version, cached.nodes, time.monotonic(), cached.workers, cached.node_info, cached.moves
            )
        else:
            _placement = _read_placement()
        return _placement


def invalidate_placement() -> None:
    """Forget the cached map; the next lookup reads the catalogue again."""
    global _placement
    with _placement_lock:
        _placement = None


def _read_version() -> int:
    with connections[COORDINATOR_ALIAS].cursor() as cursor:
        cursor.execute("SELECT version FROM sharding_placement_version WHERE id = 1")
        row = cursor.fetchone()
    if row is None:
        raise PlacementError("the placement catalogue is empty: run `python manage.py migrate_cluster`")
    return row[0]


# One statement, so the version, the nodes, the placements and the moves come from one snapshot.
CATALOGUE_SQL = """
SELECT v.version, v.logical_shards,
  (SELECT coalesce(json_agg(p.node ORDER BY p.shard), '[]') FROM sharding_shard_placement p),
  (SELECT coalesce(json_agg(json_build_array(n.name, n.role, n.host, n.port, n.bouncer_port, n.state)), '[]')
     FROM sharding_node n),
  (SELECT coalesce(json_agg(json_build_array(m.shard, m.source, m.target, m.state)), '[]')
     FROM sharding_shard_move m WHERE m.state NOT IN ('done', 'aborted'))
FROM sharding_placement_version v WHERE v.id = 1
"""


def _read_placement() -> Placement:
    expected = logical_shard_count()
    with connections[COORDINATOR_ALIAS].cursor() as cursor:
        cursor.execute(CATALOGUE_SQL)
        row = cursor.fetchone()
    if row is None:
        raise PlacementError("the placement catalogue is empty: run `python manage.py migrate_cluster`")
    version, shards, nodes, node_rows, move_rows = row
    if shards != expected:
        raise PlacementError(
            f"the catalogue has {shards} logical shards but the cluster config says {expected}: "
            "the config belongs to another cluster"
        )
    if len(nodes) != expected:
        raise PlacementError(
            f"{len(nodes)} of {expected} logical shards are placed: run `python manage.py migrate_cluster`"
        )
    info = {
        name: NodeInfo(name, role, host, port, bouncer_port, state)
        for name, role, host, port, bouncer_port, state in node_rows
    }
    workers = tuple(sorted((name for name, node in info.items() if node.role == "worker"), key=node_sort_key))
    for name in workers:
        register_node(info[name])
    for alias in set(connections.settings) - set(workers) - {COORDINATOR_ALIAS} - _being_added:
        del connections.settings[alias]  # a removed worker: this process stops using it
    unknown = set(nodes) - set(workers)
    if unknown:
        raise PlacementError(f"shards are placed on {', '.join(sorted(unknown))}, which the catalogue does not list")
    moves = tuple(MoveInfo(*move) for move in move_rows)
    return Placement(version, tuple(nodes), time.monotonic(), workers, info, moves)


_being_added: set[str] = set()  # aliases registered before the catalogue lists them (a worker being migrated)


def register_node(node: NodeInfo, *, before_catalogue: bool = False) -> None:
    """Make a catalogue node a database alias of this process (connections are opened lazily)."""
    if before_catalogue:
        _being_added.add(node.name)
    if node.name in connections.settings or not node.host:
        return
    direct = settings.SHARDING.get("DIRECT_CONNECTIONS", False)
    conf = copy.deepcopy(connections.settings[COORDINATOR_ALIAS])
    port = node.port if direct or not node.bouncer_port else node.bouncer_port
    conf.update(HOST=node.host, PORT=str(port))
    connections.settings[node.name] = conf


def all_workers() -> list[str]:
    """Every worker alias, in ascending node order."""
    return list(current_placement().workers)


def row_lock_scopes(alias: str) -> list[dict[str, int]]:
    """Filters that split a worker's rows for `SELECT ... FOR UPDATE [SKIP LOCKED]`, one query each.

    Our own engine: one query for the whole worker ([{}]). Citus locks rows only in a query that goes to one of
    its shards, so there it is one logical shard at a time (`logical_shard` names the Citus shard).
    """
    if is_citus():
        return [{"logical_shard": shard} for shard in current_placement().shards_of_node(alias)]
    return [{}]


def node_of_shard(shard: int) -> str:
    """The worker of a shard; NodeUnavailableError at once while that worker's breaker is open."""
    alias = current_placement().node_of_shard(shard)
    breaker.check(alias)
    return alias


def parse_routable_id(value: object) -> int:
    """An id from user input that belongs to one of this cluster's logical shards; InvalidIdError otherwise."""
    parsed = parse_id(value)
    if shard_of_id(parsed) >= logical_shard_count():
        raise InvalidIdError(f"{value!r} is not an id of this cluster")
    return parsed


def node_for_user(user_id: int) -> str:
    """The alias of the worker holding this user's rows."""
    return node_of_shard(shard_of(user_id))


def node_for_id(value: object) -> str:
    """The alias of the worker holding the row with this sharded id (int or decimal string)."""
    return node_of_shard(shard_of_id(parse_routable_id(value)))


def check_node(alias: str) -> str:
    if alias != COORDINATOR_ALIAS and alias not in current_placement().node_info:
        raise UnknownNodeError(f"no node {alias!r}; nodes are {', '.join(connections.settings)}")
    return alias


def direct_connection_params(name: str) -> dict[str, Any]:
    """libpq keyword arguments for a session straight to a node's PostgreSQL, bypassing pgbouncer.

    Logical replication and shard moves need a session of their own, which a
    transaction-pooling pgbouncer cannot give.
    """
    info = current_placement().node_info.get(name)
    if info is None or not info.host or info.port is None:
        raise UnknownNodeError(f"the catalogue has no address for node {name!r}")
    conf = connections.settings[COORDINATOR_ALIAS]
    return {
        "host": info.host, "port": info.port, "dbname": conf["NAME"], "user": conf["USER"],
        "password": conf["PASSWORD"], "connect_timeout": 3,
    }


def coordinator_node_name() -> str:
    return next(
        (name for name, info in current_placement().node_info.items() if info.role == "coordinator"), "coordinator"
    )
