from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sharding import failpoints
from sharding.errors import ShardingError
from sharding.management.progress import MovePrinter
from sharding.moves import abort_move, run_move, start_move, unfinished_move


class Command(BaseCommand):
    help = (
        "Move one logical shard to another worker online (logical replication, a brief write fence at the switch). "
        "--resume finishes an interrupted move; --abort undoes one that has not switched yet."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("shard", type=int, help="the logical shard")
        parser.add_argument("--to", dest="target", help="the worker that gets the shard")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--resume", action="store_true", help="finish the shard's unfinished move")
        mode.add_argument("--abort", action="store_true", help="undo the shard's unfinished move (before its switch)")

    def handle(
        self, *args: Any, shard: int, target: str | None, resume: bool, abort: bool, verbosity: int, **options: Any
    ) -> None:
        failpoints.arm_from_environment()  # crash tests only: failpoints are off outside the test settings
        if not (resume or abort) and not target:
            raise CommandError("say where the shard goes: --to NODE (or --resume / --abort for an unfinished move)")
        printer = MovePrinter(self.stdout, quiet=verbosity < 1)
        try:
            if resume or abort:
                move = unfinished_move(shard)
                if target and target != move.target:
                    raise CommandError(f"shard {shard}'s unfinished move goes to {move.target}, not {target}")
                (abort_move if abort else run_move)(move, progress=printer)
            else:
                assert target is not None  # refused above
                move = start_move(shard=shard, target=target)
                run_move(move, progress=printer)
        except ShardingError as exc:
            raise CommandError(str(exc)) from None
        finally:
            printer.finish()
        if move.state == "aborted":
            self.stdout.write(self.style.SUCCESS(f"move {move.id} aborted: shard {shard} stays on {move.source}"))
        else:
            self.stdout.write(self.style.SUCCESS(
                f"shard {shard} moved from {move.source} to {move.target}: {move.rows_copied} rows, "
                f"writes paused {move.write_pause_ms or 0:.1f} ms"
            ))
