"""The routing layer: shard map, router, ids, fan-out, and (later) distributed transactions.

It knows nothing about the marketplace. Public entry points:
  sharding.routing  shard_of, node_for_user, node_for_id, all_workers, coordinator
  sharding.ids      shard_of_id, decode_id, new_ids, parse_id
  sharding.fanout   fan_out, fan_out_page, merge_ordered
  sharding.models   ShardedModel (base of every sharded model)
"""
