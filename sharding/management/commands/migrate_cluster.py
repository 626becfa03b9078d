import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sharding import citus_admin
from sharding.catalogue import bootstrap_catalogue
from sharding.engine import is_citus


class Command(BaseCommand):
    help = "Migrate the coordinator and every worker, then make sure every logical shard is placed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--citus-wait", type=float, default=120.0,
                            help="Citus: seconds to wait for a first active worker (default 120)")

    def _wait_for_citus_workers(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not (active := citus_admin.active_worker_addresses()):
            if time.monotonic() > deadline:
                raise CommandError(f"no active Citus worker after {seconds:.0f} s: add one (citus_add_node, or "
                                   "`manage.py add_worker`), then migrate again")
            self.stdout.write("waiting for a Citus worker to join the coordinator ...")
            time.sleep(2)
        self.stdout.write(f"Citus workers: {', '.join(active)}")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        # With Citus every alias is the coordinator: one database, migrated once (sharding.engine). Its
        # distributed tables need a worker to put their shards on (a compose deployment joins them as they start).
        if is_citus():
            self._wait_for_citus_workers(options["citus_wait"])
        aliases = ["default"] if is_citus() else list(settings.DATABASES)
        for alias in aliases:
            self.stdout.write(f"migrating {alias} ...")
            call_command("migrate", database=alias, interactive=False, verbosity=max(0, verbosity - 1))
        if any(str(cache["BACKEND"]).endswith("DatabaseCache") for cache in settings.CACHES.values()):
            call_command("createcachetable", database="default", verbosity=max(0, verbosity - 1))
        placed = bootstrap_catalogue(settings.CLUSTER_CONFIG)
        total = settings.SHARDING["LOGICAL_SHARDS"]
        if placed:
            self.stdout.write(f"placed {placed} of {total} logical shards round-robin over the workers")
        self.stdout.write(
            self.style.SUCCESS(f"cluster migrated: {len(settings.DATABASES)} nodes, {total} logical shards")
        )
