from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from sharding.catalogue import bootstrap_catalogue


class Command(BaseCommand):
    help = "Migrate the coordinator and every worker, then make sure every logical shard is placed."

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        for alias in settings.DATABASES:
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
