from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from sharding.models import ShardMove


class Command(BaseCommand):
    help = "List shard moves, newest first: state, rows, duration and write pause."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=50, help="how many (default 50)")

    def handle(self, *args: Any, limit: int, **options: Any) -> None:
        moves = ShardMove.objects.using("default").order_by("-id")[:limit]
        header = (f"{'move':>5} {'shard':>5}  {'from':<10} {'to':<10} {'state':<12} {'rows':>8} {'duration':>9} "
                  f"{'pause':>9}  started")
        self.stdout.write(header)
        for move in moves:
            duration = "" if move.duration_seconds is None else f"{move.duration_seconds:.1f} s"
            pause = "" if move.write_pause_ms is None else f"{move.write_pause_ms:.1f} ms"
            self.stdout.write(
                f"{move.id:>5} {move.shard:>5}  {move.source:<10} {move.target:<10} {move.state:<12} "
                f"{move.rows_copied:>8} {duration:>9} {pause:>9}  {move.created_at:%Y-%m-%d %H:%M:%S}"
            )
        if not moves:
            self.stdout.write("no shard has been moved yet")
