"""Adding workers to the catalogue and taking them away: the checks a DBA needs, then the change."""
import re
from collections.abc import Callable

import psycopg2
from django.core.management import call_command
from django.db import connections, transaction

from .catalogue import bump_placement_version, record_node
from .config import COORDINATOR_ALIAS
from .errors import ShardingError
from .fencing import set_owned_shards, sharded_tables
from .models import Node, ShardMove
from .placement import NodeInfo, current_placement, invalidate_placement, register_node

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MIN_SERVER_VERSION = 150000


class NodeError(ShardingError):
    """A node that cannot be added or removed; the message says what to change."""


def _server_problems(conn: psycopg2.extensions.connection) -> list[str]:
    """What keeps a PostgreSQL server from being a worker, each with the setting to change."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('server_version_num')::int, current_setting('max_prepared_transactions')::int, "
            "current_setting('max_connections')::int, current_setting('wal_level'), "
            "current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int, "
            "current_setting('max_logical_replication_workers')::int"
        )
        row = cursor.fetchone()
        assert row is not None  # current_setting() always gives one row
        version, prepared, max_connections, wal_level, slots, senders, apply_workers = row
    problems = []
    if version < MIN_SERVER_VERSION:
        problems.append(f"it runs PostgreSQL {version // 10000}; workers need 15 or newer")
    if prepared < max_connections:
        problems.append(f"max_prepared_transactions is {prepared}: set it to at least max_connections "
                        f"({max_connections}) and restart (two-phase commit)")
    if wal_level != "logical":
        problems.append(f"wal_level is {wal_level}: set wal_level = logical and restart (shard moves)")
    if slots < 4:
        problems.append(f"max_replication_slots is {slots}: set it to at least 4 and restart (shard moves)")
    if senders < 4:
        problems.append(f"max_wal_senders is {senders}: set it to at least 4 and restart (shard moves)")
    if apply_workers < 4:
        problems.append(f"max_logical_replication_workers is {apply_workers}: set it to at least 4 and restart")
    return problems


def add_worker(
    *, name: str, host: str, port: int, bouncer_port: int | None = None, log: Callable[[str], object] = print
) -> bool:
    """Check an existing PostgreSQL server, migrate it and register it as a worker holding no shard.

    Returns False when the same node was registered already (nothing changed but the migration).
    """
    if not NAME_PATTERN.match(name) or name == "default":
        raise NodeError(f"{name!r} is not a valid node name: lower-case letters, digits and _ (up to 63)")
    existing = Node.objects.using(COORDINATOR_ALIAS).filter(name=name).first()
    if existing and (existing.host, existing.port) != (host, port):
        raise NodeError(
            f"a node {name!r} is registered already at {existing.host}:{existing.port}: choose another name"
        )
    conf = connections.settings[COORDINATOR_ALIAS]
    try:
        conn = psycopg2.connect(host=host, port=port, dbname=conf["NAME"], user=conf["USER"],
                                password=conf["PASSWORD"], connect_timeout=5)
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NodeError(f"cannot connect to {host}:{port} as {conf['USER']} to database {conf['NAME']} ({first}): "
                        "create the role and database there, and allow this host in pg_hba.conf") from None
    try:
        problems = _server_problems(conn)
    finally:
        conn.close()
    if problems:
        raise NodeError(f"{host}:{port} cannot be a worker yet: " + "; ".join(problems))
    node = NodeInfo(name, Node.WORKER, host, port, bouncer_port)
    register_node(node, before_catalogue=True)
    if bouncer_port:
        _check_bouncer(name)
    log(f"migrating {name} ...")
    call_command("migrate", database=name, interactive=False, verbosity=0)
    with transaction.atomic(using=name):
        set_owned_shards(name, [])
    with transaction.atomic(using=COORDINATOR_ALIAS):
        record_node(name=name, role=Node.WORKER, host=host, port=port, bouncer_port=bouncer_port)
        bump_placement_version()
    invalidate_placement()
    return existing is None


def _check_bouncer(alias: str) -> None:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure: the port given does not lead to the server
        raise NodeError(
            f"cannot reach {alias} through the pgbouncer port given ({exc}); check --bouncer-port"
        ) from None
    finally:
        connections[alias].close()


def removal_problems(name: str) -> list[str]:
    """Why a worker cannot be forgotten yet (an empty list: it can)."""
    placement = current_placement()
    info = placement.node_info.get(name)
    if info is None or info.role != Node.WORKER:
        return [f"{name!r} is not a worker of this cluster"]
    problems: list[str] = []
    held = placement.shards_of_node(name)
    if held:
        problems.append(f"it holds {len(held)} shard(s): move them off first with `manage.py drain_node {name}`")
    moving = ShardMove.objects.using(COORDINATOR_ALIAS).exclude(state__in=ShardMove.FINISHED)
    involved = [m for m in moving if name in (m.source, m.target)]
    if involved:
        problems.append(f"move(s) {', '.join(str(m.id) for m in involved)} involve it: finish or abort them")
    try:
        with connections[name].cursor() as cursor:
            rows: dict[str, int] = {}
            for table in sharded_tables():
                cursor.execute(f'SELECT count(*) FROM "{table}"')
                rows[table] = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()")
            prepared = cursor.fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - an unreachable node cannot be proven empty
        connections[name].close()
        return [*problems, f"it does not answer ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc}), "
                           "so it cannot be shown to be empty"]
    nonempty = {table: count for table, count in rows.items() if count}
    if nonempty:
        outbox = " (unsent outbox events among them)" if any("event" in t or "delivery" in t for t in nonempty) else ""
        problems.append("it still has rows: " + ", ".join(f"{t} {c}" for t, c in sorted(nonempty.items())) + outbox)
    if prepared:
        problems.append(f"it has {prepared} prepared transaction(s): run `manage.py recover_transactions`")
    return problems


def remove_worker(name: str) -> None:
    """Forget an empty worker: it leaves the catalogue, and every process stops using it."""
    problems = removal_problems(name)
    if problems:
        raise NodeError(f"cannot remove {name}: " + "; ".join(problems))
    with transaction.atomic(using=COORDINATOR_ALIAS):
        Node.objects.using(COORDINATOR_ALIAS).filter(name=name).delete()
        bump_placement_version()
    invalidate_placement()
    connections[name].close()
