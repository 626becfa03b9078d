"""Shared by rebalance and drain_node: print a plan, ask, run it with progress (our engine and Citus)."""
import sys

from django.core.management.base import BaseCommand, CommandError

from sharding import citus_admin
from sharding.errors import ShardingError
from sharding.management.progress import MovePrinter
from sharding.models import ShardMove
from sharding.rebalance import PlannedMove, run_plan, unfinished_moves


def confirm(*, yes: bool) -> None:
    """Ask before moving data, unless --yes; refuse without a terminal to ask on."""
    if not yes:
        if not sys.stdin.isatty():
            raise CommandError("not a terminal: pass --yes to run the plan")
        if input("Run this plan? [y/N] ").strip().lower() not in ("y", "yes"):
            raise CommandError("nothing moved")


def _stops_here(command: BaseCommand, *, nothing_to_do: bool, what: str, summary: str, dry_run: bool) -> bool:
    """After the plan: say there is nothing to do, or its summary; True when nothing is to be moved now."""
    if nothing_to_do:
        command.stdout.write(command.style.SUCCESS(f"nothing to move: {what} already"))
        return True
    command.stdout.write(summary)
    if dry_run:
        command.stdout.write("dry run: nothing moved")
    return dry_run


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
    if _stops_here(command, nothing_to_do=not plan and not pending, what=what, dry_run=dry_run,
                   summary=f"{len(pending)} move(s) to finish, {len(plan)} to make"):
        return
    confirm(yes=yes)
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


def run_citus_rebalance(command: BaseCommand, *, drain: str | None, dry_run: bool, yes: bool) -> None:
    """Citus: print its plan, ask, start its background rebalance (or drain) and follow it to the end."""
    try:
        running = citus_admin.running_rebalance()
        plan = [] if running else citus_admin.rebalance_plan(drain=drain)
    except ShardingError as exc:
        raise CommandError(str(exc)) from None
    if running:
        command.stdout.write(f"  follow rebalance job {running.job_id} ({running.state}), started earlier")
    for move in plan:
        carried = citus_admin.logical_shards_of(move.shard_id)
        command.stdout.write(f"  move shard group {move.shard_id} (logical shards {', '.join(map(str, carried))}): "
                             f"{move.source} -> {move.target}")
    what = f"{drain} holds no shard" if drain else "shards are balanced"
    if _stops_here(command, nothing_to_do=not plan and not running, what=what, dry_run=dry_run,
                   summary="its moves are Citus's to plan and make" if running else
                   f"{len(plan)} shard group(s) to move (Citus moves every colocated table's shard together)"):
        return
    if not running:
        confirm(yes=yes)

    last: list[str] = []

    def on_progress(status: citus_admin.RebalanceStatus, in_flight: list[str]) -> None:
        tasks = ", ".join(f"{count} {state}" for state, count in sorted(status.tasks.items())) or "no task yet"
        lines = [f"job {status.job_id} {status.state}: {tasks}", *(f"  {line}" for line in in_flight)]
        if lines != last:  # a line when something changed, not every poll
            command.stdout.write("\n".join(lines))
            last[:] = lines

    try:
        job_id = running.job_id if running else citus_admin.start_rebalance(drain=drain)
        if job_id:
            citus_admin.wait_for_rebalance(job_id, progress=on_progress)
    except ShardingError as exc:
        raise CommandError(f"{exc} (run the command again to follow or retry)") from None
    command.stdout.write(command.style.SUCCESS(f"rebalance job {job_id} finished: {what}"))

