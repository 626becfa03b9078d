from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sharding.engine import is_citus
from sharding.errors import ShardingError
from sharding.rebalance import plan_rebalance

from ._plan import confirm_and_run, run_citus_rebalance


class Command(BaseCommand):
    help = ("Even out the logical shards over the active workers (and empty draining ones), one online move at a time. "
            "On Citus: citus_rebalance_start, followed with its progress.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="print the plan and move nothing")
        parser.add_argument("--yes", action="store_true", help="run the plan without asking")

    def handle(self, *args: Any, dry_run: bool, yes: bool, verbosity: int, **options: Any) -> None:
        if is_citus():
            run_citus_rebalance(self, drain=None, dry_run=dry_run, yes=yes)
            return
        try:
            plan = plan_rebalance()
        except ShardingError as exc:
            raise CommandError(str(exc)) from None
        confirm_and_run(self, plan, what="shards are balanced", dry_run=dry_run, yes=yes, verbosity=verbosity)
