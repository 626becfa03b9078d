"""Shared by rebalance and drain_node: print a plan, ask, run it with progress."""
import sys

from django.core.management.base import BaseCommand, CommandError

from sharding.errors import ShardingError
from sharding.management.progress import MovePrinter
from sharding.models import ShardMove
from sharding.rebalance import PlannedMove, run_plan, unfinished_moves


def confirm_and_run(
    command: BaseCommand, plan: list[PlannedMove], *, what: str, dry_run: bool, yes: bool, verbosity: int
) -> None:
    pending = unfinished_moves()
    for move in pending:
        command.stdout.write(
            f"  resume move {move.id}: shard {move.shard} {move.source} -> {move.target} ({move.state})"
        )
    for planned in plan:
        command.stdout.write(f"  move shard {planned.shard:>4}: {planned.source} -> {planned.target}")
    if not plan and not pending:
        command.stdout.write(command.style.SUCCESS(f"nothing to move: {what} already"))
        return
    command.stdout.write(f"{len(pending)} move(s) to finish, {len(plan)} to make")
    if dry_run:
        command.stdout.write("dry run: nothing moved")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise CommandError("not a terminal: pass --yes to run the plan")
        if input("Run this plan? [y/N] ").strip().lower() not in ("y", "yes"):
            raise CommandError("nothing moved")
    printer = MovePrinter(command.stdout, quiet=verbosity < 1)
    done: list[ShardMove] = []

    def on_move(move: ShardMove, resumed: bool) -> None:
        printer.finish()
        done.append(move)
        command.stdout.write(f"[{len(done)}/{len(pending) + len(plan)}] {'resuming ' if resumed else ''}"
                             f"move {move.id}: shard {move.shard} {move.source} -> {move.target}")

    try:
        run_plan(plan, progress=printer, on_move=on_move)
    except ShardingError as exc:
        raise CommandError(f"{exc} (run the command again to finish what was started)") from None
    finally:
        printer.finish()
    pauses = sorted(m.write_pause_ms for m in done if m.write_pause_ms is not None)
    worst = f", longest write pause {pauses[-1]:.1f} ms" if pauses else ""
    command.stdout.write(command.style.SUCCESS(f"{len(done)} move(s) done{worst}: {what}"))
