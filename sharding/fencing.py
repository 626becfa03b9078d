"""Fencing: a worker refuses writes to logical shards it does not own, inside the writing transaction.

Each worker lists the shards it owns in `sharding_owned_shard`. A row trigger
on every sharded table checks, for each written row, that its logical shard
is owned here, under a shared advisory lock on that shard. A shard move fences
a shard by taking the same lock exclusively: writers wait (they are not
refused) until the switch is over, then find the shard gone and fail with
SQLSTATE SH001, which `sharding.transactions` turns into ShardMovedError; the
caller reloads the placement and retries on the new worker.

The apply worker of logical replication fires no ordinary trigger, so a
target receives a shard's rows before it owns the shard. Maintenance that
must write rows of a shard a node does not own (deleting the copy left by a
move) sets `sharding.fence_bypass` for its own transaction only.

The replica identity of a sharded table must contain `logical_shard`, since
a move's publication filters on it: the primary key is (id, logical_shard).
Ids carry their shard, so this key is exactly as unique as `id` alone.
"""
from collections.abc import Iterable

from django.apps import apps
from django.db import connections

from .db_router import is_sharded

MOVED_SQLSTATE = "SH001"
# Two-key advisory locks: (FENCE_LOCK_CLASS, shard). Recovery's lock uses another class.
FENCE_LOCK_CLASS = 0x5349

WORKER_SQL = f"""
CREATE TABLE IF NOT EXISTS sharding_owned_shard (shard integer PRIMARY KEY CHECK (shard >= 0));
-- A move writes a new token here for its shard on the source; seeing it on the target proves that every
-- change of the shard committed before it has been applied there.
CREATE TABLE IF NOT EXISTS sharding_move_marker (
  move_id bigint NOT NULL, logical_shard integer NOT NULL, token bigint NOT NULL,
  PRIMARY KEY (move_id, logical_shard)
);
CREATE OR REPLACE FUNCTION sharding_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s integer := CASE WHEN TG_OP = 'DELETE' THEN OLD.logical_shard ELSE NEW.logical_shard END;
BEGIN
  IF current_setting('sharding.fence_bypass', true) = 'on' THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;
  PERFORM pg_advisory_xact_lock_shared({FENCE_LOCK_CLASS}, s);
  IF NOT EXISTS (SELECT 1 FROM sharding_owned_shard WHERE shard = s) THEN
    RAISE EXCEPTION 'logical shard % is not held by this node', s
      USING ERRCODE = '{MOVED_SQLSTATE}', HINT = 'reload the placement and retry on the node that holds it';
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
"""
DROP_WORKER_SQL = """
DROP FUNCTION IF EXISTS sharding_fence() CASCADE;
DROP TABLE IF EXISTS sharding_move_marker;
DROP TABLE IF EXISTS sharding_owned_shard;
"""


def sharded_tables() -> list[str]:
    """The tables of every installed sharded model, sorted (their rows move with their shard)."""
    return sorted({model._meta.db_table for model in apps.get_models() if is_sharded(model) and model._meta.managed})


def install_fences(alias: str) -> None:
    """Give every sharded table on a worker its fence trigger and an (id, logical_shard) primary key. Idempotent."""
    with connections[alias].cursor() as cursor:
        for table in sharded_tables():
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f'"{table}"'])
            if not cursor.fetchone()[0]:
                continue  # not migrated on this node (yet)
            cursor.execute(
                "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = %s::regclass AND i.indisprimary",
                [f'"{table}"'],
            )
            if cursor.fetchone()[0] != ["id", "logical_shard"]:
                cursor.execute(
                    f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{table}_pkey", '
                    f'ADD CONSTRAINT "{table}_pkey" PRIMARY KEY (id, logical_shard)'
                )
            cursor.execute(
                "SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
                [f'"{table}"', f"{table}_fence"],
            )
            if cursor.fetchone() is None:
                cursor.execute(
                    f'CREATE TRIGGER "{table}_fence" BEFORE INSERT OR UPDATE OR DELETE ON "{table}" '
                    "FOR EACH ROW EXECUTE FUNCTION sharding_fence()"
                )


def owned_shards(alias: str) -> list[int]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT shard FROM sharding_owned_shard ORDER BY shard")
        return [row[0] for row in cursor.fetchall()]


def set_owned_shards(alias: str, shards: Iterable[int]) -> None:
    """Make the worker own exactly `shards` (bootstrap and repair; moves change one shard at a time)."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "DELETE FROM sharding_owned_shard WHERE NOT (shard = ANY(%s)); "
            "INSERT INTO sharding_owned_shard (shard) SELECT unnest(%s::int[]) ON CONFLICT DO NOTHING",
            [list(shards), list(shards)],
        )


def is_moved_error(exc: BaseException | None) -> bool:
    """Whether a database error is a fenced write (its shard is not held by the node it reached)."""
    while exc is not None:
        if getattr(exc, "pgcode", None) == MOVED_SQLSTATE:
            return True
        exc = exc.__cause__
    return False
