"""The routing layer: shard map, router, ids, fan-out, distributed transactions and online shard moves.

It knows nothing about the application that uses it. Public entry points:
  sharding.placement     shard_of, node_for_user, node_for_id, all_workers, coordinator, current_placement,
                         row_lock_scopes
                         (the cached placement map, read from the catalogue, and node lookups)
  sharding.catalogue     bootstrap_catalogue, record_node, bump_placement_version (writing the catalogue)
  sharding.db_router     ShardRouter (Django's DATABASE_ROUTERS: sharded models only with .using(node))
  sharding.page_tokens   encode_cursor, decode_cursor (keyset page tokens for URLs)
  sharding.deadline      deadline_after (a request's deadline; sharding.middleware sets it)
  sharding.ids           shard_of_id, decode_id, new_ids, parse_id
  sharding.fanout        fan_out, fan_out_page, merge_ordered
  sharding.models        ShardedModel (base of every sharded model)
  sharding.transactions  atomic_on_nodes, retry_when_moved, LockTimeoutError, ShardMovedError
  sharding.recovery      recover_in_doubt_transactions, in_doubt_transactions
  sharding.moves         start_move, run_move, abort_move (manage.py move_shard), moves_overview
  sharding.rebalance     plan_rebalance, plan_drain, run_plan (manage.py rebalance, drain_node)
  sharding.nodes         add_worker, remove_worker (manage.py add_worker, remove_worker)
  sharding.health        node_health, assert_cluster_reachable
"""
