"""Moving one logical shard to another worker online, the way Citus moves a shard.

The journal (`sharding_shard_move` on the coordinator) records each state
before its steps are taken, and every step checks what already exists, so a
mover that dies anywhere is resumed (`resume_move`) or undone (`abort_move`):

  pending      1. The move is announced: a journal row and a new placement
                  version. Every process now leaves the target's copy of the
                  shard out of what it reads there (ShardedQuerySet). Wait
                  PLACEMENT_TTL, so that every process has seen it.
  copying      2. A publication on the source: every sharded table, the rows
                  WHERE logical_shard = S (their replica identity, the
                  primary key (id, logical_shard), contains the column).
               3. A subscription on the target, over a direct connection,
                  with its own slot: PostgreSQL copies the rows, then
                  streams every later change of the shard.
  catching_up  4. Every table synchronised; a marker token written on the
                  source comes back from the target quickly.
  fencing      5. The fence: a source transaction takes the shard's fence
                  lock exclusively (in-flight writers finish, new ones wait),
                  removes the shard from the source's owned shards and is
                  PREPAREd, so it keeps both even if the mover dies.
               6. A new marker token committed on the source reaches the
                  target: every change of the shard is there.
               7. The target's id sequence moves past the source's, so its
                  ids for the shard never repeat the source's.
               8. The target owns the shard.
  switched     9. THE SWITCH, one coordinator transaction: the placement
                  names the target, the version goes up, the journal says
                  switched. From here the move can only be finished.
              10. COMMIT PREPARED on the source: the held writers go on, find
                  the shard gone (SQLSTATE SH001) and retry on the target.
  cleaning    11. The subscription, its slot and the publication are
                  dropped; the source's rows of the shard are deleted.
  done        12. A new version: nobody needs to leave a copy out any more.

Aborting (only before the switch) rolls a prepared fence back, takes the
shard from the target's owned shards, drops the subscription, slot and
publication, deletes the target's copy, and ends in `aborted`.

A mover holds a session advisory lock on its move on the coordinator. A fence
that a dead mover left prepared would hold writers back, so recovery settles
it (`settle_abandoned_fences`): committed if the journal says switched,
rolled back otherwise. In-doubt two-phase transactions that wrote the shard
hold its fence lock too: the fence waits for them and runs recovery between
attempts.
"""
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import failpoints
from .catalogue import bump_placement_version
from .config import COORDINATOR_ALIAS
from .engine import is_citus
from .errors import ShardingError
from .fencing import FENCE_LOCK_CLASS, sharded_tables
from .ids import LAG_TICKS
from .models import Node, ShardMove, ShardPlacement
from .placement import (
    coordinator_node_name,
    current_placement,
    direct_connection_params,
    invalidate_placement,
    logical_shard_count,
)

logger = logging.getLogger("sharding.moves")

MOVE_LOCK_CLASS = 0x534D  # session advisory lock (class, move id) held by the process running a move
FENCE_LOCK_TIMEOUT = "1s"  # a fence attempt gives up rather than hold writers back behind a long transaction
FENCE_ATTEMPTS = 10
MARKER_TIMEOUT = 10.0  # seconds for a marker to reach the target
CAUGHT_UP_SECONDS = 0.25  # a marker that comes back this fast means the target is close enough to fence
PROGRESS_SECONDS = 2.0  # how often a copy counts the rows that have arrived
ABANDONED_FENCE_SECONDS = 5.0

STEPS = failpoints.MOVE_STEPS  # where a test can make the mover die


class MoveError(ShardingError):
    """A move that cannot be started, resumed or aborted; the message says why and what to do."""


@dataclass
class MoveProgress:
    move: ShardMove
    phase: str
    rows_copied: int = 0
    rows_total: int = 0
    lag_bytes: int | None = None


# Told of each phase of a move (and of rows copied and lag while it copies).
ProgressCallback = Callable[[MoveProgress], object]
# The parameters of a psycopg2 query: a sequence for %s, a mapping for %(name)s.
QueryParams = Sequence[Any] | Mapping[str, Any] | None


def object_name(move: ShardMove) -> str:
    """The publication, subscription and slot of a move share one name."""
    return f"shard_move_{move.id}"


def fence_gid(move: ShardMove) -> str:
    return f"shard_move_{move.id}_fence"


def _step(name: str) -> None:
    failpoints.failpoint(f"move_{name}")


# --- starting, resuming, aborting --------------------------------------------------------------------------------

def start_move(*, shard: int, target: str) -> ShardMove:
    """Validate and journal a new move of `shard` to `target`; returns the ShardMove (not yet run)."""
    placement = current_placement()
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < logical_shard_count():
        raise MoveError(f"there is no logical shard {shard!r}: shards are 0 to {logical_shard_count() - 1}")
    info = placement.node_info.get(target)
    if info is None or info.role != Node.WORKER:
        workers = ", ".join(placement.workers)
        raise MoveError(f"{target!r} is not a worker of this cluster: move to one of {workers}")
    if info.state != Node.ACTIVE:
        raise MoveError(f"{target} is being drained: it takes no shards")
    source = placement.node_of_shard(shard)
    if source == target:
        raise MoveError(f"shard {shard} is on {target} already")
    unfinished = ShardMove.objects.using(COORDINATOR_ALIAS).exclude(state__in=ShardMove.FINISHED).filter(shard=shard)
    if unfinished.exists():
        raise MoveError(_already_moving(unfinished.first()))
    for node in (source, target):
        _check_replication_ready(node)
    try:
        with transaction.atomic(using=COORDINATOR_ALIAS):
            move = ShardMove.objects.using(COORDINATOR_ALIAS).create(shard=shard, source=source, target=target)
            bump_placement_version()
    except IntegrityError:
        raise MoveError(_already_moving(unfinished.first())) from None
    invalidate_placement()
    logger.info("move %s: shard %s from %s to %s announced", move.id, shard, source, target)
    return move


def _already_moving(move: ShardMove | None) -> str:
    if move is None:
        return "that shard is being moved already"
    return (f"shard {move.shard} is being moved already (move {move.id}, {move.source} -> {move.target}, "
            f"{move.state}): finish it with `manage.py move_shard {move.shard} --resume` or undo it with --abort")


def unfinished_move(shard: int) -> ShardMove:
    move = ShardMove.objects.using(COORDINATOR_ALIAS).exclude(state__in=ShardMove.FINISHED).filter(shard=shard).first()
    if move is None:
        raise MoveError(f"shard {shard} has no unfinished move to resume or abort")
    return move


def run_move(move: ShardMove, *, progress: ProgressCallback | None = None) -> ShardMove:
    """Take the move from its recorded state to done; returns it."""
    with _MoveSession(move) as session:
        session.run(progress or (lambda update: None))
    return move


def abort_move(move: ShardMove, *, progress: ProgressCallback | None = None) -> ShardMove:
    """Undo a move that has not switched; returns it."""
    if move.state in ShardMove.PAST_SWITCH:
        raise MoveError(f"move {move.id} of shard {move.shard} has switched to {move.target} already: "
                        f"it can only be finished (`manage.py move_shard {move.shard} --resume`)")
    if move.state == ShardMove.ABORTED:
        return move
    with _MoveSession(move) as session:
        session.abort(progress or (lambda update: None))
    return move


# --- the mover --------------------------------------------------------------------------------------------------

class _MoveSession:
    """Direct sessions to the coordinator, source and target for one move, and the move's lock."""

    # Open between __enter__ and __exit__ (None before, and in __exit__ after an __enter__ that failed).
    source: psycopg2.extensions.connection
    target: psycopg2.extensions.connection

    def __init__(self, move: ShardMove) -> None:
        self.move = move
        self.lock: psycopg2.extensions.connection | None = None
        self.source = self.target = None  # type: ignore[assignment]  # see the class attributes

    def __enter__(self) -> "_MoveSession":
        self.lock = _connect(coordinator_node_name())
        with self.lock.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [MOVE_LOCK_CLASS, self.move.id])
            row = cursor.fetchone()
            assert row is not None  # pg_try_advisory_lock() always gives one row
            if not row[0]:
                self.lock.close()
                raise MoveError(f"move {self.move.id} of shard {self.move.shard} is being run by another process")
        self.move.refresh_from_db(using=COORDINATOR_ALIAS)
        self.source = _connect(self.move.source)
        self.target = _connect(self.move.target)
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in (self.source, self.target, self.lock):
            if conn is not None:
                conn.close()

    # journal

    def record(self, state: str | None = None, **fields: Any) -> None:
        if state is not None:
            fields["state"] = state
        fields["updated_at"] = timezone.now()
        ShardMove.objects.using(COORDINATOR_ALIAS).filter(id=self.move.id).update(**fields)
        for name, value in fields.items():
            setattr(self.move, name, value)

    # forward

    def run(self, progress: ProgressCallback) -> None:
        move = self.move
        while not move.finished:
            if move.state == ShardMove.ABORTING:
                raise MoveError(f"move {move.id} is being aborted: finish that with `move_shard {move.shard} --abort`")
            getattr(self, f"_{move.state}")(progress)
        progress(MoveProgress(move, move.state, move.rows_copied, move.rows_total, move.lag_bytes))

    def _pending(self, progress: ProgressCallback) -> None:
        _step("announced")
        progress(MoveProgress(self.move, "announced"))
        waited = (timezone.now() - self.move.created_at).total_seconds()
        time.sleep(max(0.0, settings.SHARDING["PLACEMENT_TTL"] + 0.2 - waited))
        self.record(ShardMove.COPYING, copy_started_at=timezone.now())

    def _copying(self, progress: ProgressCallback) -> None:
        name, shard = object_name(self.move), self.move.shard
        if not _exists(self.source, "SELECT 1 FROM pg_publication WHERE pubname = %s", [name]):
            tables = ", ".join(f'"{table}" WHERE (logical_shard = {shard})'
                               for table in [*sharded_tables(), "sharding_move_marker"])
            _execute(self.source,
                     f"CREATE PUBLICATION {name} FOR TABLE {tables} WITH (publish = 'insert, update, delete')")
        _step("published")
        if not _exists(self.target, "SELECT 1 FROM pg_subscription WHERE subname = %s", [name]):
            # A slot without its subscription is left from a mover that died while subscribing.
            _drop_slot(self.source, name)
            _delete_shard_rows(self.target, shard)  # a target never holds rows of a shard it does not own
            self.record(rows_total=_count_shard_rows(self.source, shard))
            _execute(self.target, f"CREATE SUBSCRIPTION {name} CONNECTION %s PUBLICATION {name} "
                                  f"WITH (copy_data = true, create_slot = true, slot_name = '{name}')",
                     [_conninfo(self.move.source)])
        _step("subscribed")
        expected = len(sharded_tables()) + 1
        last_report = 0.0
        while True:
            ready, total = _fetch(self.target, "SELECT count(*) FILTER (WHERE r.srsubstate = 'r'), count(*) "
                                               "FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid "
                                               "WHERE s.subname = %s", [name])
            if total == expected and ready == total:
                break
            if time.monotonic() - last_report > PROGRESS_SECONDS:  # counting rows scans the target's tables
                last_report = time.monotonic()
                self._report_copy(progress, "copying")
            time.sleep(0.05)
        self._report_copy(progress, "copying")
        _step("copied")
        self.record(ShardMove.CATCHING_UP)

    def _report_copy(self, progress: ProgressCallback, phase: str) -> None:
        copied, lag = _count_shard_rows(self.target, self.move.shard), self._lag()
        self.record(rows_copied=copied, lag_bytes=lag)
        progress(MoveProgress(self.move, phase, copied, self.move.rows_total, lag))

    def _lag(self) -> int | None:
        row = _fetch(self.source, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                                  "FROM pg_replication_slots WHERE slot_name = %s", [object_name(self.move)])
        return None if row is None else row[0]

    def _catching_up(self, progress: ProgressCallback) -> None:
        for _ in range(200):
            started = time.monotonic()
            self._marker_reaches_target()
            lag = self._lag()
            self.record(lag_bytes=lag)
            progress(MoveProgress(self.move, "catching up", self.move.rows_copied, self.move.rows_total, lag))
            if time.monotonic() - started < CAUGHT_UP_SECONDS:
                break
        self.record(ShardMove.FENCING)

    def _marker_reaches_target(self, timeout: float = MARKER_TIMEOUT) -> bool:
        token = time.time_ns()
        _execute(self.source, "INSERT INTO sharding_move_marker (move_id, logical_shard, token) VALUES (%s, %s, %s) "
                              "ON CONFLICT (move_id, logical_shard) DO UPDATE SET token = EXCLUDED.token",
                 [self.move.id, self.move.shard, token])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = _fetch(self.target,
                         "SELECT token FROM sharding_move_marker WHERE move_id = %s AND logical_shard = %s",
                         [self.move.id, self.move.shard])
            if row is not None and row[0] >= token:
                return True
            time.sleep(0.002)
        return False

    def _fencing(self, progress: ProgressCallback) -> None:
        move = self.move
        self._release_fence(commit=False)  # a fence a dead mover left, before its switch
        _execute(self.target, "DELETE FROM sharding_owned_shard WHERE shard = %s", [move.shard])
        progress(MoveProgress(move, "fencing", move.rows_copied, move.rows_total, move.lag_bytes))
        for attempt in range(FENCE_ATTEMPTS):
            fenced_at = self._fence()
            if fenced_at is None:
                self._settle_in_doubt(attempt)
                continue
            _step("fenced")
            if not self._marker_reaches_target():
                logger.warning("move %s: the target did not catch up within %ss; fencing again", move.id,
                               MARKER_TIMEOUT)
                self._release_fence(commit=False)
                continue
            _step("marked")
            self._advance_target_sequence()
            _execute(self.target, "INSERT INTO sharding_owned_shard (shard) VALUES (%s) ON CONFLICT DO NOTHING",
                     [move.shard])
            _step("owned")
            self._switch()
            _step("switched")
            self._release_fence(commit=True)
            pause_ms = (time.monotonic() - fenced_at) * 1000
            self.record(write_pause_ms=round(pause_ms, 2))
            logger.info("move %s: shard %s switched to %s (writes paused %.1f ms)", move.id, move.shard, move.target,
                        pause_ms)
            _step("released")
            return
        raise MoveError(f"move {move.id}: could not fence shard {move.shard} in {FENCE_ATTEMPTS} attempts "
                        f"(long transactions or in-doubt ones on {move.source}); `move_shard {move.shard} --resume` "
                        "tries again")

    def _fence(self) -> float | None:
        """Prepare the fence on the source; the monotonic time it took hold, or None if the lock timed out."""
        conn = _connect(self.move.source, autocommit=False)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = %s", [FENCE_LOCK_TIMEOUT])
                try:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [FENCE_LOCK_CLASS, self.move.shard])
                except psycopg2.errors.LockNotAvailable:
                    conn.rollback()
                    return None
                fenced_at = time.monotonic()
                cursor.execute("DELETE FROM sharding_owned_shard WHERE shard = %s", [self.move.shard])
                cursor.execute(f"PREPARE TRANSACTION '{fence_gid(self.move)}'")
            return fenced_at
        finally:
            conn.close()

    def _settle_in_doubt(self, attempt: int) -> None:
        from .recovery import recover_in_doubt_transactions

        logger.info("move %s: shard %s is busy (attempt %s); settling in-doubt transactions", self.move.id,
                    self.move.shard, attempt + 1)
        recover_in_doubt_transactions()
        time.sleep(0.1 * (attempt + 1))

    def _release_fence(self, *, commit: bool) -> None:
        _release_fence(self.source, self.move, commit=commit)

    def _advance_target_sequence(self) -> None:
        (source_value,) = _fetch(self.source, "SELECT last_value FROM sharding_id_seq")
        conn = _connect(self.move.target, autocommit=False)
        try:
            with conn.cursor() as cursor:
                # The lock shard_next_id() takes to move the sequence, so the two never race.
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('sharding_id_seq'))")
                cursor.execute(
                    "SELECT setval('sharding_id_seq', %(v)s + %(lag)s * 2) FROM sharding_id_seq "
                    "WHERE last_value < %(v)s + %(lag)s", {"v": source_value, "lag": LAG_TICKS},
                )
            conn.commit()
        finally:
            conn.close()

    def _switch(self) -> None:
        move = self.move
        with transaction.atomic(using=COORDINATOR_ALIAS):
            ShardPlacement.objects.using(COORDINATOR_ALIAS).filter(shard=move.shard).update(node_id=move.target)
            bump_placement_version()
            self.record(ShardMove.SWITCHED, switched_at=timezone.now())
        invalidate_placement()

    def _switched(self, progress: ProgressCallback) -> None:
        self._release_fence(commit=True)
        self.record(ShardMove.CLEANING)

    def _cleaning(self, progress: ProgressCallback) -> None:
        progress(MoveProgress(self.move, "cleaning up", self.move.rows_copied, self.move.rows_total))
        self._drop_replication()
        _step("unsubscribed")
        _delete_shard_rows(self.source, self.move.shard)
        with transaction.atomic(using=COORDINATOR_ALIAS):
            bump_placement_version()
            self.record(ShardMove.DONE, finished_at=timezone.now(), lag_bytes=0)
        invalidate_placement()

    def _drop_replication(self) -> None:
        name = object_name(self.move)
        if _exists(self.target, "SELECT 1 FROM pg_subscription WHERE subname = %s", [name]):
            _execute(self.target, f"ALTER SUBSCRIPTION {name} DISABLE")
            _execute(self.target, f"ALTER SUBSCRIPTION {name} SET (slot_name = NONE)")
            _execute(self.target, f"DROP SUBSCRIPTION {name}")
        _drop_slot(self.source, name)
        _execute(self.source, f"DROP PUBLICATION IF EXISTS {name}")
        for conn in (self.source, self.target):
            _execute(conn, "DELETE FROM sharding_move_marker WHERE move_id = %s", [self.move.id])

    # backward

    def abort(self, progress: ProgressCallback) -> None:
        move = self.move
        if move.state in ShardMove.PAST_SWITCH:
            raise MoveError(f"move {move.id} has switched already: it can only be finished")
        self.record(ShardMove.ABORTING)
        progress(MoveProgress(move, "aborting"))
        self._release_fence(commit=False)
        _execute(self.target, "DELETE FROM sharding_owned_shard WHERE shard = %s", [move.shard])
        self._drop_replication()
        _delete_shard_rows(self.target, move.shard)
        with transaction.atomic(using=COORDINATOR_ALIAS):
            bump_placement_version()
            self.record(ShardMove.ABORTED, finished_at=timezone.now())
        invalidate_placement()
        progress(MoveProgress(move, "aborted"))


# --- recovery of fences left by dead movers ---------------------------------------------------------------------

def settle_abandoned_fences(min_age_seconds: float = ABANDONED_FENCE_SECONDS) -> list[ShardMove]:
    """Commit or roll back the prepared fence of a move whose mover is gone; returns the moves settled.

    Committed when the journal says the move switched (the target holds the
    shard), rolled back otherwise (the source keeps it); either way writers
    held by the fence go on. The move itself stays where it is, to be
    resumed or aborted.
    """
    settled: list[ShardMove] = []
    moves = ShardMove.objects.using(COORDINATOR_ALIAS).filter(state__in=[ShardMove.FENCING, ShardMove.SWITCHED])
    for move in moves:
        try:
            source = _connect(move.source)
        except psycopg2.Error:
            continue
        try:
            row = _fetch(source, "SELECT extract(epoch FROM now() - prepared) FROM pg_prepared_xacts WHERE gid = %s",
                         [fence_gid(move)])
            if row is None or row[0] < min_age_seconds:
                continue
            lock = _connect(coordinator_node_name())
            try:
                if not _fetch(lock, "SELECT pg_try_advisory_lock(%s, %s)", [MOVE_LOCK_CLASS, move.id])[0]:
                    continue  # its mover is alive
                move.refresh_from_db(using=COORDINATOR_ALIAS)
                switched = move.state in ShardMove.PAST_SWITCH
                _release_fence(source, move, commit=switched)
                if not switched:
                    _disown(move.target, move.shard)
                logger.warning("move %s: %s the fence its dead mover left on %s", move.id,
                               "committed" if switched else "rolled back", move.source)
                settled.append(move)
            finally:
                lock.close()
        finally:
            source.close()
    return settled


# --- helpers ----------------------------------------------------------------------------------------------------

def _connect(node: str, *, autocommit: bool = True) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(**direct_connection_params(node), application_name="shard mover")
    conn.autocommit = autocommit
    return conn


def _conninfo(node: str) -> str:
    params = direct_connection_params(node)
    params["application_name"] = "shard move subscription"
    return " ".join(f"{key}='{str(value).replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"
                    for key, value in params.items())


def _execute(conn: psycopg2.extensions.connection, sql: str, params: QueryParams = None) -> None:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)


def _fetch(conn: psycopg2.extensions.connection, sql: str, params: QueryParams = None) -> Any:
    """The first row (a tuple), or None; Any, since each caller knows whether its query always returns one."""
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _exists(conn: psycopg2.extensions.connection, sql: str, params: QueryParams) -> bool:
    return _fetch(conn, sql, params) is not None


def _release_fence(conn: psycopg2.extensions.connection, move: ShardMove, *, commit: bool) -> None:
    if _exists(conn, "SELECT 1 FROM pg_prepared_xacts WHERE gid = %s", [fence_gid(move)]):
        _execute(conn, f"{'COMMIT' if commit else 'ROLLBACK'} PREPARED '{fence_gid(move)}'")


def _drop_slot(conn: psycopg2.extensions.connection, name: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        row = _fetch(conn, "SELECT active FROM pg_replication_slots WHERE slot_name = %s", [name])
        if row is None:
            return
        if not row[0]:
            _execute(conn, "SELECT pg_drop_replication_slot(%s)", [name])
            return
        if time.monotonic() > deadline:
            raise MoveError(f"replication slot {name} stays in use; stop its subscriber and retry")
        time.sleep(0.1)


def _count_shard_rows(conn: psycopg2.extensions.connection, shard: int) -> int:
    return sum(_fetch(conn, f'SELECT count(*) FROM "{table}" WHERE logical_shard = %s', [shard])[0]
               for table in sharded_tables())


def _delete_shard_rows(conn: psycopg2.extensions.connection, shard: int) -> None:
    """Delete every row of a shard this node does not hold (a move's copy), past the fence."""
    autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET LOCAL sharding.fence_bypass = 'on'")
            for table in sharded_tables():
                cursor.execute(f'DELETE FROM "{table}" WHERE logical_shard = %s', [shard])
        conn.commit()
    finally:
        conn.autocommit = autocommit


def _check_replication_ready(node: str) -> None:
    conn = _connect(node)
    try:
        (wal_level,) = _fetch(conn, "SHOW wal_level")
    finally:
        conn.close()
    if wal_level != "logical":
        raise MoveError(f"{node} has wal_level = {wal_level}: set wal_level = logical and restart it "
                        "(`python -m cluster up` does both for a local cluster)")


def shard_row_counts(node: str, shard: int) -> dict[str, int]:
    """{table: rows of the shard} on a node, for checks and reports."""
    conn = _connect(node)
    try:
        return {table: _fetch(conn, f'SELECT count(*) FROM "{table}" WHERE logical_shard = %s', [shard])[0]
                for table in sharded_tables()}
    finally:
        conn.close()


def _disown(node: str, shard: int) -> None:
    conn = _connect(node)
    try:
        _execute(conn, "DELETE FROM sharding_owned_shard WHERE shard = %s", [shard])
    finally:
        conn.close()


# --- what DBAs and monitoring see -------------------------------------------------------------------------------

def move_summary(move: ShardMove) -> dict[str, Any]:
    return {
        "id": move.id, "shard": move.shard, "source": move.source, "target": move.target, "state": move.state,
        "rows_copied": move.rows_copied, "rows_total": move.rows_total, "lag_bytes": move.lag_bytes,
        "write_pause_ms": move.write_pause_ms, "duration_s": None if move.duration_seconds is None
        else round(move.duration_seconds, 1), "started_at": move.created_at.isoformat(),
    }


def moves_overview(recent: int = 5) -> dict[str, list[dict[str, Any]]]:
    """Moves under way (phase, rows, lag) and the latest finished ones, newest first."""
    if is_citus():
        from .citus_admin import moves_overview as citus_moves

        return citus_moves()
    journal = ShardMove.objects.using(COORDINATOR_ALIAS)
    return {
        "in_progress": [move_summary(m) for m in journal.exclude(state__in=ShardMove.FINISHED).order_by("-id")],
        "recent": [move_summary(m) for m in journal.filter(state__in=ShardMove.FINISHED).order_by("-id")[:recent]],
    }
