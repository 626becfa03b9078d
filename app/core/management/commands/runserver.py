"""runserver that refuses to start, with one clear line, when the cluster is not usable."""
from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesRunserver
from django.core.management.base import CommandError

from sharding.errors import ShardingError
from sharding.health import assert_cluster_reachable


class Command(StaticfilesRunserver):
    def inner_run(self, *args, **options):
        # Runs once in the serving process (also under the autoreloader).
        try:
            assert_cluster_reachable()
        except ShardingError as exc:
            raise CommandError(str(exc)) from None
        super().inner_run(*args, **options)
