"""The schema on Citus: the sharded tables become colocated distributed tables, distributed by `logical_shard`.

Migrations run once, on the Citus coordinator (sharding.db_router), and create every table there from the same
models. Then, after each `migrate` (a post_migrate handler, sharding.apps), every sharded table not distributed
yet is prepared and distributed:

1. its primary key becomes (id, logical_shard), as on our own workers (sharding.fencing);
2. every other unique constraint or unique index gets `logical_shard` appended, since Citus requires each one
   to contain the distribution column. This does not weaken any of them: each constrains columns that
   already determine the row's logical shard (`user_id`, or an id of the row's own shard), so
   (cols, logical_shard) is unique exactly when (cols) is. See UNIQUE_RATIONALE;
3. the trigger that gives new rows an id is dropped: with Citus a new row's id is an expression,
   shard_next_id(<shard>), that the coordinator evaluates before it routes the INSERT (sharding.models). The
   app's own row triggers stay (see distribute_sharded_tables);
4. `create_distributed_table(table, 'logical_shard', colocate_with => <the first one>)`.

Why `logical_shard` and not `user_id`: ids carry their logical shard, so a query by id alone names its
distribution value (sharding.models adds `logical_shard = <shard of the id>` to it) and goes to one Citus
shard, like a query by user; the primary keys are (id, logical_shard) already (our own moves filter on it); and
every sharded table has it. With `user_id` the primary keys would have to become (id, user_id), and a lookup
by id (an item page, a purchase's listing) would go to every Citus shard. The price: Citus can spread the data
over at most LOGICAL_SHARDS distinct values, which is also our own engine's limit.

Coordinator tables (users, sessions, tokens, the catalogue, partners, the cache) stay local tables of the
coordinator. The sharded tables have no foreign keys to them.
"""
import logging
import re

from django.db import connections, transaction
from django.db.backends.utils import CursorWrapper

from .fencing import sharded_tables

logger = logging.getLogger("sharding.citus")

DISTRIBUTION_COLUMN = "logical_shard"
# Why appending logical_shard to each unique constraint of the marketplace keeps its meaning (checked by a test).
UNIQUE_RATIONALE = {
    "wallet_one_per_user": "user_id determines logical_shard",
    "core_idempotency_key_per_user": "user_id determines logical_shard",
    "sale_one_per_listing": "item_id is the seller's listing, an id of the seller's (the row's) shard",
    "purchase_one_per_listing": "source_item_id is unique per buyer shard, as it is per worker on our own engine; "
                                "sale_one_per_listing on the seller's shard is what sells an item once",
    "webhook_delivery_once": "event_id is an id of the row's own shard",
    "catalog_itemtombstone_item_id_key": "item_id is an id of the row's own shard",
}


def is_distributed(cursor: CursorWrapper, table: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_dist_partition WHERE logicalrelid = %s::regclass", [f'"{table}"'])
    return cursor.fetchone() is not None


def _primary_key_with_shard(cursor: CursorWrapper, table: str) -> None:
    cursor.execute(
        "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary",
        [f'"{table}"'],
    )
    row = cursor.fetchone()
    if row is None or row[0] != ["id", DISTRIBUTION_COLUMN]:
        cursor.execute(
            f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{table}_pkey", '
            f'ADD CONSTRAINT "{table}_pkey" PRIMARY KEY (id, {DISTRIBUTION_COLUMN})'
        )


def _with_column(definition: str) -> str:
    """`UNIQUE (a, b)` / `CREATE UNIQUE INDEX ... (a, b) WHERE ...` with the distribution column appended."""
    head, paren, rest = definition.partition("(")
    depth, end = 1, 0
    while end < len(rest):
        depth += {"(": 1, ")": -1}.get(rest[end], 0)
        if depth == 0:
            break
        end += 1
    return f"{head}{paren}{rest[:end]}, {DISTRIBUTION_COLUMN}{rest[end:]}"


def unique_without_shard(cursor: CursorWrapper, table: str) -> list[tuple[str, str | None, str]]:
    """(index name, constraint name or None, definition) of each unique index lacking the distribution column."""
    cursor.execute(
        """
        SELECT ic.relname, con.conname,
               coalesce(pg_get_constraintdef(con.oid), pg_get_indexdef(i.indexrelid))
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'u'
        WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attname = %s
                          AND a.attnum = ANY(i.indkey))
        ORDER BY ic.relname
        """,
        [f'"{table}"', DISTRIBUTION_COLUMN],
    )
    return [(index, constraint, definition) for index, constraint, definition in cursor.fetchall()]


def _unique_with_shard(cursor: CursorWrapper, table: str) -> None:
    for index, constraint, definition in unique_without_shard(cursor, table):
        if constraint is not None:
            cursor.execute(
                f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}", '
                f'ADD CONSTRAINT "{constraint}" {_with_column(definition)}'
            )
        else:
            cursor.execute(f'DROP INDEX "{index}"')
            cursor.execute(_with_column(definition))
        logger.info("%s: unique %s now includes %s", table, constraint or index, DISTRIBUTION_COLUMN)


def _drop_id_trigger(cursor: CursorWrapper, table: str) -> None:
    cursor.execute(f'DROP TRIGGER IF EXISTS "{table}_assign_id" ON "{table}"')


_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def distribute_sharded_tables(alias: str) -> list[str]:
    """Make every sharded table that exists and is not distributed yet a colocated distributed table.

    Idempotent: a distributed table is left alone (later migrations of it are propagated by Citus itself).
    Returns the tables distributed by this call.
    """
    done: list[str] = []
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
        if cursor.fetchone() is None:
            from .errors import ShardingError

            raise ShardingError(
                "SHARDING_ENGINE is citus but the coordinator has no citus extension: "
                "start the cluster with `python -m cluster up --engine citus`"
            )
        tables = []
        for table in sharded_tables():
            assert _TABLE_NAME.match(table), table
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f'"{table}"'])
            if cursor.fetchone()[0]:
                tables.append(table)
        cursor.execute(
            "SELECT logicalrelid::text FROM pg_dist_partition WHERE logicalrelid::text = ANY(%s) "
            "ORDER BY logicalrelid::text LIMIT 1",
            [tables],
        )
        row = cursor.fetchone()
        colocate_with = row[0].strip('"') if row else None
    for table in tables:
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            if is_distributed(cursor, table):
                continue
            _primary_key_with_shard(cursor, table)
            _unique_with_shard(cursor, table)
            _drop_id_trigger(cursor, table)
            # The app's own row triggers stay (catalog_item's sets NEW.updated_at from the clock and reads no
            # table, so none of the visibility or deadlock hazards Citus warns of): Citus creates them on its
            # shards, with their functions, which it propagates to every node.
            cursor.execute("SET LOCAL citus.enable_unsafe_triggers = on")
            cursor.execute(
                "SELECT create_distributed_table(%s, %s, colocate_with => %s)",
                [table, DISTRIBUTION_COLUMN, colocate_with or "none"],
            )
        colocate_with = colocate_with or table
        done.append(table)
        logger.info("%s: distributed by %s", table, DISTRIBUTION_COLUMN)
    return done
