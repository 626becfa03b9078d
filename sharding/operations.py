"""Migration operations for sharded tables (they run on workers only)."""
from django.db import migrations

from .ids import DROP_ID_FUNCTION_SQL, ID_FUNCTION_SQL, sharded_id_trigger_sql

ON_WORKERS = {"sharded": True}


def InstallShardedIds() -> migrations.RunSQL:
    """The id sequence and the shard_next_id() SQL function (sharding app's own migration)."""
    return migrations.RunSQL(ID_FUNCTION_SQL, DROP_ID_FUNCTION_SQL, hints=ON_WORKERS)


def AssignShardedIds(table: str) -> migrations.RunSQL:
    """Inserts into `table` without an id get a new id from the row's logical shard."""
    create, drop = sharded_id_trigger_sql(table)
    return migrations.RunSQL(create, drop, hints=ON_WORKERS)
