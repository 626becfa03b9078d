from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sharding import citus_admin, failpoints
from sharding.engine import is_citus
from sharding.errors import ShardingError
from sharding.management.progress import MovePrinter
from sharding.moves import abort_move, run_move, start_move, unfinished_move


class Command(BaseCommand):
    help = (
        "Move one logical shard to another worker online (logical replication, a brief write fence at the switch). "
        "--resume finishes an interrupted move; --abort undoes one that has not switched yet. On Citus: "
        "citus_move_shard_placement of the shard group holding the logical shard (--to host:port)."
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
        if is_citus():
            self._move_on_citus(shard, target, resume=resume, abort=abort)
            return
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

    def _move_on_citus(self, shard: int, target: str | None, *, resume: bool, abort: bool) -> None:
        if resume or abort:
            raise CommandError("on Citus a shard move is one citus_move_shard_placement call, which finishes or "
                               "rolls back by itself: there is nothing to resume or abort; run the move again")
        assert target is not None  # refused in handle
        self.stdout.write(f"moving the Citus shard group holding logical shard {shard} to {target} "
                          "(citus_move_shard_placement; writes go on during the copy) ...")
        try:
            move = citus_admin.move_logical_shard(shard=shard, target=target)
        except ShardingError as exc:
            raise CommandError(str(exc)) from None
        carried = citus_admin.logical_shards_of(move.shard_id)
        self.stdout.write(self.style.SUCCESS(
            f"shard group {move.shard_id} moved from {move.source} to {move.target} with logical shards "
            f"{', '.join(map(str, carried))}"
        ))
