import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections
from django.utils.module_loading import import_string

from sharding.engine import is_citus
from sharding.moves import settle_abandoned_fences
from sharding.recovery import recover_in_doubt_transactions

logger = logging.getLogger("sharding.maintenance")
STOP_GRACE_SECONDS = 2


class Command(BaseCommand):
    help = (
        "Run background maintenance: recovery of in-doubt transactions every few seconds in a loop of its own, "
        "and beside it the project's own tasks (settings.MAINTENANCE_TASKS, dotted paths of functions), so a "
        "slow task (a webhook receiver that drips) never delays recovery, whose prepared transactions hold locks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=None, help="seconds between runs")
        parser.add_argument("--once", action="store_true", help="run one round of each loop and exit")

    def handle(self, *args: Any, interval: float | None, once: bool, **options: Any) -> None:
        interval = settings.SHARDING["RECOVERY_INTERVAL_SECONDS"] if interval is None else interval
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"maintenance: every {interval:g}s (Ctrl-C stops)")
        tasks = [import_string(path) for path in getattr(settings, "MAINTENANCE_TASKS", [])]
        loops = [threading.Thread(target=run_loop, args=(tasks, interval, stop, once), name="tasks", daemon=True)]
        # With Citus our two-phase commit never runs, so neither does its recovery: Citus recovers its own.
        if not is_citus():
            loops.insert(0, threading.Thread(target=run_loop, args=([recover], interval, stop, once), name="recovery",
                                             daemon=True))
        for loop in loops:
            loop.start()
        while any(loop.is_alive() for loop in loops) and not stop.is_set():
            stop.wait(0.5)
        # A loop in the middle of a task (a webhook POST) gets a moment to finish it; then the process ends anyway.
        for loop in loops:
            loop.join(STOP_GRACE_SECONDS)
        if any(loop.is_alive() for loop in loops):
            logger.info("maintenance: stopping in the middle of a task; it runs again next time")
            os._exit(0)  # interpreter shutdown would wait for the task's sending threads


def run_loop(tasks: Sequence[Callable[[], object]], interval: float, stop: threading.Event, once: bool) -> None:
    """Run the tasks one after the other every `interval` seconds, in this thread's own connections."""
    try:
        while not stop.is_set():
            for task in tasks:
                run_task(task)
            if once:
                break
            stop.wait(interval)
    finally:
        connections.close_all()


def run_task(task: Callable[[], object]) -> None:
    try:
        task()
    except Exception:  # noqa: BLE001 - a node being down must not end the loop
        logger.exception("maintenance task %s failed; retrying next round", getattr(task, "__name__", task))
        for connection in connections.all(initialized_only=True):
            connection.close()


def recover() -> None:
    report = recover_in_doubt_transactions()
    if report.committed or report.rolled_back or report.unreachable:
        logger.info("recovery: %s", report.summary())
    # A shard move's fence that its dead mover left prepared would hold writers of that shard back.
    settle_abandoned_fences()
