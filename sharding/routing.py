"""Where data lives: logical shards, their placement on workers, and node lookup.

Marketplace code asks this module for "the node of user X", "the node of id Y"
or "all workers" and gets a Django database alias back.
"""
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connections

from .config import COORDINATOR_ALIAS
from .errors import InvalidIdError, PlacementError, UnknownNodeError
from .ids import parse_id, shard_of_id


def logical_shard_count():
    return settings.SHARDING["LOGICAL_SHARDS"]


def shard_of(user_id):
    """The logical shard of a user: a stable function of the id alone."""
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
        raise ValueError(f"user id must be a positive integer, not {user_id!r}")
    return user_id % logical_shard_count()


def coordinator():
    return COORDINATOR_ALIAS


def all_workers():
    """Every worker alias, in ascending node order."""
    return [alias for alias in settings.DATABASES if alias != COORDINATOR_ALIAS]


@dataclass(frozen=True)
class Placement:
    version: int
    nodes: tuple  # nodes[shard] is the alias of the worker holding that shard
    loaded_at: float

    def node_of_shard(self, shard):
        return self.nodes[shard]

    def shards_of_node(self, alias):
        return [shard for shard, node in enumerate(self.nodes) if node == alias]


_placement = None
_placement_lock = threading.Lock()


def current_placement():
    """The placement map, cached per process and re-read when its version changes."""
    global _placement
    ttl = settings.SHARDING["PLACEMENT_TTL"]
    cached = _placement
    if cached is not None and time.monotonic() - cached.loaded_at < ttl:
        return cached
    with _placement_lock:
        cached = _placement
        if cached is not None and time.monotonic() - cached.loaded_at < ttl:
            return cached
        version = _read_version()
        if cached is not None and cached.version == version:
            _placement = Placement(cached.version, cached.nodes, time.monotonic())
        else:
            _placement = _read_placement()
        return _placement


def invalidate_placement():
    """Forget the cached map; the next lookup reads the catalogue again."""
    global _placement
    with _placement_lock:
        _placement = None


def _read_version():
    with connections[COORDINATOR_ALIAS].cursor() as cursor:
        cursor.execute("SELECT version FROM sharding_placement_version WHERE id = 1")
        row = cursor.fetchone()
    if row is None:
        raise PlacementError("the placement catalogue is empty: run `python manage.py migrate_cluster`")
    return row[0]


def _read_placement():
    expected = logical_shard_count()
    with connections[COORDINATOR_ALIAS].cursor() as cursor:
        # One snapshot for the version and the rows it describes.
        cursor.execute(
            "SELECT v.version, v.logical_shards, p.shard, p.node "
            "FROM sharding_placement_version v LEFT JOIN sharding_shard_placement p ON true "
            "WHERE v.id = 1 ORDER BY p.shard"
        )
        rows = cursor.fetchall()
    if not rows:
        raise PlacementError("the placement catalogue is empty: run `python manage.py migrate_cluster`")
    version, shards = rows[0][0], rows[0][1]
    if shards != expected:
        raise PlacementError(
            f"the catalogue has {shards} logical shards but the cluster config says {expected}: "
            "the config belongs to another cluster"
        )
    nodes = [node for _, _, shard, node in rows if shard is not None]
    if len(nodes) != expected:
        raise PlacementError(f"{len(nodes)} of {expected} logical shards are placed: run `python manage.py migrate_cluster`")
    unknown = set(nodes) - set(all_workers())
    if unknown:
        raise PlacementError(f"shards are placed on {', '.join(sorted(unknown))}, which the cluster config does not define")
    return Placement(version, tuple(nodes), time.monotonic())


def node_of_shard(shard):
    return current_placement().node_of_shard(shard)


def parse_routable_id(value):
    """An id from user input that belongs to one of this cluster's logical shards; InvalidIdError otherwise."""
    parsed = parse_id(value)
    if shard_of_id(parsed) >= logical_shard_count():
        raise InvalidIdError(f"{value!r} is not an id of this cluster")
    return parsed


def node_for_user(user_id):
    """The alias of the worker holding this user's rows."""
    return node_of_shard(shard_of(user_id))


def node_for_id(value):
    """The alias of the worker holding the row with this sharded id (int or decimal string)."""
    return node_of_shard(shard_of_id(parse_routable_id(value)))


def check_node(alias):
    if alias not in settings.DATABASES:
        raise UnknownNodeError(f"no node {alias!r}; nodes are {', '.join(settings.DATABASES)}")
    return alias
