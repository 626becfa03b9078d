from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sharding import citus_admin
from sharding.engine import is_citus
from sharding.errors import ShardingError
from sharding.nodes import add_worker


class Command(BaseCommand):
    help = ("Register an existing PostgreSQL server as a worker: check its settings, migrate it, add it to the "
            "catalogue (holding no shard: `rebalance` gives it some).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the worker's name, e.g. worker3")
        parser.add_argument("--host", required=True)
        parser.add_argument("--port", type=int, required=True, help="PostgreSQL's port (moves connect here directly)")
        parser.add_argument("--bouncer-port", type=int, help="its pgbouncer's port, which the app then uses")

    def handle(self, *args: Any, name: str, host: str, port: int, bouncer_port: int | None, **options: Any) -> None:
        if is_citus():
            self._add_to_citus(name, host, port)
            return
        try:
            added = add_worker(name=name, host=host, port=port, bouncer_port=bouncer_port, log=self.stdout.write)
        except ShardingError as exc:
            raise CommandError(str(exc)) from None
        verb = "added" if added else "was registered already; migrated"
        self.stdout.write(self.style.SUCCESS(f"worker {name} {verb} ({host}:{port}); it holds no shard yet: "
                                             "run `manage.py rebalance` to give it some"))

    def _add_to_citus(self, name: str, host: str, port: int) -> None:
        try:
            added = citus_admin.add_citus_worker(host=host, port=port)
        except ShardingError as exc:
            raise CommandError(f"{exc} (the node needs the citus extension: CREATE EXTENSION citus)") from None
        verb = "added to Citus (citus_add_node)" if added else "was a Citus worker already"
        self.stdout.write(self.style.SUCCESS(f"worker {name} ({host}:{port}) {verb}; Citus names it {host}:{port}; "
                                             "it holds no shard yet: run `manage.py rebalance` to give it some"))
