from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sharding.errors import ShardingError
from sharding.rebalance import plan_rebalance

from ._plan import confirm_and_run


class Command(BaseCommand):
    help = "Even out the logical shards over the active workers (and empty draining ones), one online move at a time."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="print the plan and move nothing")
        parser.add_argument("--yes", action="store_true", help="run the plan without asking")

    def handle(self, *args: Any, dry_run: bool, yes: bool, verbosity: int, **options: Any) -> None:
        try:
            plan = plan_rebalance()
        except ShardingError as exc:
            raise CommandError(str(exc)) from None
        confirm_and_run(self, plan, what="shards are balanced", dry_run=dry_run, yes=yes, verbosity=verbosity)
