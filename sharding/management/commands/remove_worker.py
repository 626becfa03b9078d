from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sharding import citus_admin
from sharding.engine import is_citus
from sharding.errors import ShardingError
from sharding.nodes import remove_worker


class Command(BaseCommand):
    help = "Forget a worker that holds no shard, no row, no prepared transaction and no unsent outbox event."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("node", help="the worker (on Citus: host:port)")

    def handle(self, *args: Any, node: str, **options: Any) -> None:
        try:
            if is_citus():
                citus_admin.remove_citus_worker(address=node)
            else:
                remove_worker(node)
        except ShardingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"worker {node} removed from the catalogue"))
