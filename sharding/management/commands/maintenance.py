import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from django.utils.module_loading import import_string

from sharding.moves import settle_abandoned_fences
from sharding.recovery import recover_in_doubt_transactions

logger = logging.getLogger("sharding.maintenance")


class Command(BaseCommand):
    help = (
        "Run background maintenance in a loop: recovery of in-doubt transactions every few seconds, "
        "then the project's own tasks (settings.MAINTENANCE_TASKS, dotted paths of functions)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=None, help="seconds between runs")
        parser.add_argument("--once", action="store_true", help="run one round and exit")

    def handle(self, *args, interval, once, **options):
        interval = settings.SHARDING["RECOVERY_INTERVAL_SECONDS"] if interval is None else interval
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"maintenance: every {interval:g}s (Ctrl-C stops)")
        while not stop.is_set():
            self.run_round()
            if once:
                break
            stop.wait(interval)

    def run_round(self):
        tasks = [self.recover, *map(import_string, getattr(settings, "MAINTENANCE_TASKS", []))]
        for task in tasks:
            try:
                task()
            except Exception:  # noqa: BLE001 - a node being down must not end the loop
                logger.exception("maintenance task %s failed; retrying next round", getattr(task, "__name__", task))
                for connection in connections.all(initialized_only=True):
                    connection.close()

    @staticmethod
    def recover():
        report = recover_in_doubt_transactions()
        if report.committed or report.rolled_back or report.unreachable:
            logger.info("recovery: %s", report.summary())
        # A shard move's fence that its dead mover left prepared would hold writers of that shard back.
        settle_abandoned_fences()
