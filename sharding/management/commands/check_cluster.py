from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration

from sharding.errors import ShardingError
from sharding.health import assert_cluster_reachable, node_health
from sharding.placement import current_placement


class Command(BaseCommand):
    help = "Check that every node answers, is fully migrated, and that every logical shard is placed."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            assert_cluster_reachable()
            unmigrated = [alias for alias in connections if self._pending_migrations(alias)]
            if unmigrated:
                raise CommandError(
                    f"{', '.join(unmigrated)} not fully migrated: run `python manage.py migrate_cluster`"
                )
            placement = current_placement()
        except ShardingError as exc:
            raise CommandError(str(exc)) from None
        for node in node_health():
            held = len(placement.shards_of_node(node.name)) if node.role == "worker" else "-"
            self.stdout.write(f"{node.name:<12} {node.role:<12} ok  {node.latency_ms:>7.2f} ms  shards: {held}")
        self.stdout.write(self.style.SUCCESS(f"cluster ready (placement version {placement.version})"))

    @staticmethod
    def _pending_migrations(alias: str) -> list[tuple[Migration, bool]]:
        executor = MigrationExecutor(connections[alias])
        return executor.migration_plan(executor.loader.graph.leaf_nodes())
