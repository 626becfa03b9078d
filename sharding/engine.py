"""Which sharding engine runs: our own routing layer, or Citus.

`settings.SHARDING["ENGINE"]` is `own` or `citus` ($SHARDING_ENGINE, else the cluster config; see
sharding.config.app_view). The marketplace apps never ask: everything that differs is decided here and in the
modules of `sharding` that call `is_citus()`.

With Citus:
- every logical shard is placed on one worker alias, `citus`, which is the Citus coordinator itself, so
  every unit of work names one node: `atomic_on_nodes` is one local transaction (Citus makes it a two-phase
  commit when it spans Citus workers, and recovers it itself), and a fan-out is one query that Citus spreads
  over its shards;
- migrations run once, on the coordinator, and create every table there; then the sharded tables become
  colocated distributed tables (sharding.citus), the rest stay local tables of the coordinator;
- our fencing, our two-phase commit, its recovery loop and our shard moves are off: Citus moves shards.
"""
from django.conf import settings

OWN = "own"
CITUS = "citus"


def engine() -> str:
    return str(settings.SHARDING.get("ENGINE", OWN))


def is_citus() -> bool:
    return engine() == CITUS
