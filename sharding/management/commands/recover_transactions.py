from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from sharding.recovery import recover_in_doubt_transactions


class Command(BaseCommand):
    help = "Commit or roll back in-doubt two-phase transactions (presumed abort), then forget settled decisions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace", type=float, default=None,
            help="only settle transactions prepared at least this many seconds ago "
                 "(default: SHARDING_RECOVERY_GRACE_SECONDS)",
        )

    def handle(self, *args: Any, grace: float | None, **options: Any) -> None:
        report = recover_in_doubt_transactions(grace_seconds=grace)
        self.stdout.write(f"recovery: {report.summary()}")
