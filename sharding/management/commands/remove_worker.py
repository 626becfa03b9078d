from django.core.management.base import BaseCommand, CommandError

from sharding.errors import ShardingError
from sharding.nodes import remove_worker


class Command(BaseCommand):
    help = "Forget a worker that holds no shard, no row, no prepared transaction and no unsent outbox event."

    def add_arguments(self, parser):
        parser.add_argument("node")

    def handle(self, *args, node, **options):
        try:
            remove_worker(node)
        except ShardingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"worker {node} removed from the catalogue"))
