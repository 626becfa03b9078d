from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sharding.engine import is_citus
from sharding.errors import ShardingError
from sharding.models import Node
from sharding.placement import current_placement
from sharding.rebalance import mark_draining, plan_drain

from ._plan import confirm_and_run, run_citus_rebalance


class Command(BaseCommand):
    help = ("Move every shard off a worker (online, one at a time); the worker then takes no new shards. "
            "On Citus: shouldhaveshards off and a drain-only background rebalance (citus_drain_node's work).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("node", help="the worker to empty (on Citus: host:port, as `cluster status` lists it)")
        parser.add_argument("--dry-run", action="store_true", help="print the plan and move nothing")
        parser.add_argument("--yes", action="store_true", help="run the plan without asking")

    def handle(self, *args: Any, node: str, dry_run: bool, yes: bool, verbosity: int, **options: Any) -> None:
        if is_citus():
            run_citus_rebalance(self, drain=node, dry_run=dry_run, yes=yes)
            return
        info = current_placement().node_info.get(node)
        if info is None or info.role != Node.WORKER:
            raise CommandError(
                f"{node!r} is not a worker of this cluster: workers are {', '.join(current_placement().workers)}"
            )
        try:
            plan = plan_drain(node)
        except ShardingError as exc:
            raise CommandError(str(exc)) from None
        if not dry_run:
            mark_draining(node)
        confirm_and_run(self, plan, what=f"{node} holds no shard", dry_run=dry_run, yes=yes, verbosity=verbosity)
