"""64-bit ids that carry their logical shard.

Layout (most significant first): 41 bits milliseconds since ID_EPOCH |
13 bits logical shard | 10 bits sequence. The time and sequence parts come
from one PostgreSQL sequence per worker that doubles as a clock (see the
`shard_next_id` SQL function created by this app's migrations), so ids made by
any number of processes are distinct, and any id routes to its shard without a
lookup.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.db import connections

ID_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
ID_EPOCH_MS = int(ID_EPOCH.timestamp() * 1000)
TIME_BITS = 41
SHARD_BITS = 13
SEQUENCE_BITS = 10
MAX_LOGICAL_SHARDS = 1 << SHARD_BITS
# PostgreSQL's BIGINT is signed: the time part stays below 2**40 ms, i.e. until 2060.
MAX_ID = (1 << 63) - 1

# The SQL side of the id scheme, installed on every worker by a migration.
# The sequence counts in "ticks" (ms << 10 | counter). When it lags the wall
# clock by more than LAG_TICKS (an idle node) it is moved forward under a short
# lock, so two movers never race; the margin keeps concurrent nextval() calls
# from overtaking the new value. Faster than 1,024 ids per ms, it runs ahead of
# the clock instead of repeating a value.
LAG_TICKS = 1 << 16
ID_FUNCTION_SQL = f"""
CREATE SEQUENCE IF NOT EXISTS sharding_id_seq MINVALUE 0 START 0;
CREATE OR REPLACE FUNCTION shard_next_id(shard integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  now_ticks bigint := (floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - {ID_EPOCH_MS}) << {SEQUENCE_BITS};
  v bigint;
BEGIN
  IF shard IS NULL OR shard < 0 OR shard >= {MAX_LOGICAL_SHARDS} THEN
    RAISE EXCEPTION 'logical shard % is out of range 0..{MAX_LOGICAL_SHARDS - 1}', shard;
  END IF;
  v := nextval('sharding_id_seq');
  IF v < now_ticks - {LAG_TICKS} THEN
    PERFORM pg_advisory_lock(hashtext('sharding_id_seq'));
    BEGIN
      IF (SELECT last_value FROM sharding_id_seq) < now_ticks - {LAG_TICKS} THEN
        PERFORM setval('sharding_id_seq', now_ticks);
      END IF;
    EXCEPTION WHEN OTHERS THEN
      PERFORM pg_advisory_unlock(hashtext('sharding_id_seq'));
      RAISE;
    END;
    PERFORM pg_advisory_unlock(hashtext('sharding_id_seq'));
    v := nextval('sharding_id_seq');
  END IF;
  RETURN ((v >> {SEQUENCE_BITS}) << {SHARD_BITS + SEQUENCE_BITS})
         | (shard::bigint << {SEQUENCE_BITS})
         | (v & {(1 << SEQUENCE_BITS) - 1});
END $$;

CREATE OR REPLACE FUNCTION sharding_assign_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id IS NULL THEN
    NEW.id := shard_next_id(NEW.logical_shard);
  END IF;
  RETURN NEW;
END $$;
"""
DROP_ID_FUNCTION_SQL = """
DROP FUNCTION IF EXISTS sharding_assign_id();
DROP FUNCTION IF EXISTS shard_next_id(integer);
DROP SEQUENCE IF EXISTS sharding_id_seq;
"""


@dataclass(frozen=True)
class DecodedId:
    created_at: datetime
    logical_shard: int
    sequence: int


def parse_id(value: object) -> int:
    """An id from user input (int or decimal string) as an int; InvalidIdError otherwise."""
    from .errors import InvalidIdError

    if isinstance(value, bool):
        raise InvalidIdError(f"{value!r} is not an id")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 19:
            raise InvalidIdError(f"{value!r} is not an id")
        value = int(value)
    if not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise InvalidIdError(f"{value!r} is not an id")
    return value


def shard_of_id(value: object) -> int:
    return (parse_id(value) >> SEQUENCE_BITS) & (MAX_LOGICAL_SHARDS - 1)


def decode_id(value: object) -> DecodedId:
    value = parse_id(value)
    millis = value >> (SHARD_BITS + SEQUENCE_BITS)
    return DecodedId(
        created_at=ID_EPOCH + timedelta(milliseconds=millis),
        logical_shard=(value >> SEQUENCE_BITS) & (MAX_LOGICAL_SHARDS - 1),
        sequence=value & ((1 << SEQUENCE_BITS) - 1),
    )


def new_ids(alias: str, logical_shard: int, count: int = 1) -> list[int]:
    """`count` new ids for `logical_shard`, made on the worker `alias` (which holds that shard)."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT shard_next_id(%s) FROM generate_series(1, %s)", [logical_shard, count])
        return [row[0] for row in cursor.fetchall()]


def sharded_id_trigger_sql(table: str) -> tuple[str, str]:
    """SQL that makes inserts into `table` without an id get one from its logical shard."""
    trigger = f"{table}_assign_id"
    return (
        f'CREATE TRIGGER "{trigger}" BEFORE INSERT ON "{table}" '
        f"FOR EACH ROW WHEN (NEW.id IS NULL) EXECUTE FUNCTION sharding_assign_id()",
        f'DROP TRIGGER IF EXISTS "{trigger}" ON "{table}"',
    )
