"""Settling in-doubt two-phase transactions (presumed abort).

For each prepared transaction of ours older than the grace period:
  a decision record exists                       -> COMMIT PREPARED
  no record, and its coordinator transaction has
  ended (its advisory lock on the txid is free)  -> ROLLBACK PREPARED
  no record, coordinator transaction still open  -> leave it (still running)
Decision records whose participants are all settled are then forgotten.
A run holds a cluster-wide advisory lock, so concurrent runs never overlap,
and every step is idempotent.
"""
import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections, transaction
from django.db.backends.utils import CursorWrapper

from .config import COORDINATOR_ALIAS
from .placement import all_workers
from .transactions import parse_gid

logger = logging.getLogger("sharding.recovery")

# Two-key advisory locks live in a key space apart from the one-key txid locks.
RECOVERY_LOCK = (0x5348, 0x2BC)
# Someone else settled it ("does not exist") or is settling it right now ("is busy").
SETTLED_ELSEWHERE = {"42704", "55006"}


@dataclass
class InDoubt:
    node: str
    gid: str
    txid: int
    age_seconds: float


@dataclass
class RecoveryReport:
    committed: list[str] = field(default_factory=list)  # gids
    rolled_back: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # nodes
    forgotten: int = 0
    skipped: bool = False  # another recovery run held the lock

    def summary(self) -> str:
        if self.skipped:
            return "another recovery run is in progress; nothing done"
        text = (
            f"committed {len(self.committed)}, rolled back {len(self.rolled_back)}, "
            f"still running {len(self.in_progress)}, decision records forgotten {self.forgotten}"
        )
        return text + (f"; unreachable: {', '.join(self.unreachable)}" if self.unreachable else "")


def _prepared_on(alias: str, min_age_seconds: float = 0.0) -> list[InDoubt]:
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT gid, extract(epoch FROM now() - prepared) FROM pg_prepared_xacts "
            "WHERE database = current_database() AND gid LIKE %s AND prepared <= now() - make_interval(secs => %s) "
            "ORDER BY prepared",
            [settings.SHARDING["GID_PREFIX"] + "\\_%", min_age_seconds],
        )
        rows = cursor.fetchall()
    found: list[InDoubt] = []
    for gid, age in rows:
        parsed = parse_gid(gid)
        if parsed is not None:
            found.append(InDoubt(alias, gid, parsed[0], float(age)))
    return found


def in_doubt_transactions(min_age_seconds: float = 0.0) -> dict[str, list[InDoubt] | None]:
    """Every prepared transaction of ours on every reachable worker, oldest first per node: {node: [InDoubt]}."""
    report: dict[str, list[InDoubt] | None] = {}
    for alias in all_workers():
        try:
            report[alias] = _prepared_on(alias, min_age_seconds)
        except Exception:  # noqa: BLE001 - an unreachable node is reported, not fatal
            connections[alias].close()
            report[alias] = None
    return report


def _decided(cursor: CursorWrapper, txids: Collection[int]) -> set[int]:
    if not txids:
        return set()
    cursor.execute("SELECT txid FROM sharding_transaction_decision WHERE txid = ANY(%s)", [list(txids)])
    return {row[0] for row in cursor.fetchall()}


def _finish(alias: str, gid: str, verb: str) -> bool:
    """COMMIT or ROLLBACK PREPARED; False if someone else settled it or is settling it."""
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(f"{verb} PREPARED %s", [gid])
        return True
    except Exception as exc:
        if getattr(exc.__cause__, "pgcode", None) in SETTLED_ELSEWHERE:
            return False
        raise


def recover_in_doubt_transactions(grace_seconds: float | None = None) -> RecoveryReport:
    grace = settings.SHARDING["RECOVERY_GRACE_SECONDS"] if grace_seconds is None else grace_seconds
    report = RecoveryReport()
    with transaction.atomic(using=COORDINATOR_ALIAS):
        coordinator = connections[COORDINATOR_ALIAS].cursor()
        coordinator.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", RECOVERY_LOCK)
        if not coordinator.fetchone()[0]:
            report.skipped = True
            return report

        all_prepared = in_doubt_transactions()
        report.unreachable = [alias for alias, found in all_prepared.items() if found is None]
        candidates = [
            entry for found in all_prepared.values() if found for entry in found if entry.age_seconds >= grace
        ]
        decided = _decided(coordinator, {entry.txid for entry in candidates})
        settled: set[str] = set()
        for entry in candidates:
            if entry.txid not in decided:
                coordinator.execute("SELECT pg_try_advisory_xact_lock(%s)", [entry.txid])
                if not coordinator.fetchone()[0]:
                    report.in_progress.append(entry.gid)
                    continue
                # The coordinator transaction has ended; a decision it committed is visible now.
                decided |= _decided(coordinator, {entry.txid})
            verb = "COMMIT" if entry.txid in decided else "ROLLBACK"
            try:
                done = _finish(entry.node, entry.gid, verb)
            except Exception:  # noqa: BLE001 - the node went away mid-run; the next run retries
                logger.warning("could not %s PREPARED %s on %s", verb, entry.gid, entry.node, exc_info=True)
                connections[entry.node].close()
                continue
            settled.add(entry.gid)
            if done:
                (report.committed if verb == "COMMIT" else report.rolled_back).append(entry.gid)
                logger.info("%s PREPARED %s on %s (in doubt for %.1fs)", verb, entry.gid, entry.node, entry.age_seconds)

        still_prepared = {
            entry.txid for found in all_prepared.values() if found for entry in found if entry.gid not in settled
        }
        coordinator.execute(
            "DELETE FROM sharding_transaction_decision WHERE created_at < now() - make_interval(secs => %s) "
            "AND NOT (txid = ANY(%s)) AND NOT (participants && %s::varchar[])",
            [grace, list(still_prepared), report.unreachable],
        )
        report.forgotten = coordinator.rowcount
        coordinator.close()
    return report
