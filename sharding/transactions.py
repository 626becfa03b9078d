"""Atomic work on one or several workers.

    with atomic_on_nodes([node_for_user(buyer), node_for_user(seller)]) as tx:
        Wallet.objects.using(tx.nodes[0])...

One node: a plain local transaction. Several nodes: presumed-abort two-phase
commit, as Citus does it:
  1. participants are opened in ascending node order, each with lock_timeout
     (there is no distributed deadlock detector);
  2. the caller does its work;
  3. read-only participants just commit; then, once the coordinator holds
     the advisory lock below, every participant that wrote is PREPAREd with
     a self-describing gid (prefix, transaction id, node), all at once;
  4. the commit point, once every PREPARE has answered: a decision record
     naming the transaction is committed on the coordinator;
  5. COMMIT PREPARED everywhere, all at once. A failure here is left to
     recovery and the caller is told the transaction committed.
"All at once": the calling thread sends one participant's PREPARE (or COMMIT
PREPARED) while threads of a small shared pool send the others' (each
connection used by one thread at a time), so a phase costs the slowest
participant's round trip and fsync, not their sum, as with Citus. With a
single writer there is no second phase and no pool.
Round trips are what a cross-worker transaction costs on top of a local one,
so none is spent that the protocol does not need: a participant is known to
have written from the statements it was sent (the node is asked only when
it saw none), a prepared participant gets no COMMIT from Django, and the
coordinator's statements go two to a round trip.
The coordinator transaction that writes the decision holds an advisory lock
on the transaction id from before the first PREPARE until the commit point,
so recovery can tell "still running" from "gone without a decision". That is
why the PREPAREs wait for the lock rather than go out beside it: a PREPARE
that answered first could be rolled back by a recovery run that found the
lock free.

A write that reaches a worker that no longer holds its shard (it moved) is
refused by that worker's fence (sharding.fencing) and rolls the whole
transaction back; it surfaces as ShardMovedError. `retry_when_moved` runs an
operation again with the placement reloaded, so the user never sees it.
"""
import functools
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import psycopg2.extensions
from django.conf import settings
from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.transaction import TransactionManagementError

from . import failpoints
from .config import CITUS_ALIAS, COORDINATOR_ALIAS
from .deadline import seconds_left
from .engine import is_citus
from .errors import ShardingError
from .fencing import is_moved_error
from .placement import all_workers, check_node, invalidate_placement

logger = logging.getLogger("sharding.transactions")

P = ParamSpec("P")
T = TypeVar("T")

LOCK_NOT_AVAILABLE = "55P03"
UNDEFINED_OBJECT = "42704"

# Sends the PREPAREs and COMMIT PREPAREDs of all participants but one (sharding.transactions docstring). Its threads
# only wait on the network, so it is sized for more transactions at once than a process runs, not for the cores;
# threads start when first needed (none before a fork).
_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="two-phase-commit")


class LockTimeoutError(ShardingError):
    """A row lock was not granted within lock_timeout; nothing was committed. Retrying may succeed."""


class ShardMovedError(ShardingError):
    """A write reached a worker that no longer holds its shard; nothing was committed. Retry with a fresh placement."""


class TransactionOutcomeUnknownError(ShardingError):
    """The coordinator could not be asked whether the decision committed; recovery will settle it."""


@dataclass
class DistributedTransaction:
    nodes: list[str]  # participant aliases, ascending node order
    txid: int = field(default_factory=lambda: secrets.randbits(62) + 1)

    def gid(self, alias: str) -> str:
        return make_gid(self.txid, alias)


def gid_prefix() -> str:
    return settings.SHARDING["GID_PREFIX"]


def make_gid(txid: int, alias: str) -> str:
    return f"{gid_prefix()}_{txid}_{alias}"


def parse_gid(gid: str) -> tuple[int, str] | None:
    """(txid, node) of one of our gids, or None for anyone else's prepared transaction."""
    prefix, _, rest = gid.partition("_")
    txid, _, node = rest.partition("_")
    if prefix != gid_prefix() or not txid.isdigit() or not node:
        return None
    return int(txid), node


def node_order(alias: str) -> int:
    workers = all_workers()
    return workers.index(alias) if alias in workers else -1


def _set_lock_timeout(alias: str) -> None:
    # Jitter, so that two transactions waiting on each other across nodes do not
    # both time out together: the first to give up lets the other through.
    # Never past the request's deadline (sharding.deadline).
    base = settings.SHARDING["LOCK_TIMEOUT_MS"]
    timeout_ms = random.randint(base, base * 3 // 2)
    left = seconds_left()
    if left is not None:
        timeout_ms = max(1, min(timeout_ms, int(left * 1000)))
    with connections[alias].cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = %s", [f"{timeout_ms}ms"])


def _wrote(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
        return cursor.fetchone()[0]


def _ensure_outside_transactions(aliases: Iterable[str]) -> None:
    busy = [alias for alias in (*aliases, COORDINATOR_ALIAS) if connections[alias].in_atomic_block]
    if busy:
        raise TransactionManagementError(
            f"atomic_on_nodes() must not run inside another transaction on {', '.join(busy)}"
        )


@contextmanager
def atomic_on_nodes(aliases: Iterable[str]) -> Iterator[DistributedTransaction]:
    """A transaction over the given nodes, atomic whether they are one worker or several."""
    nodes = sorted({check_node(alias) for alias in aliases}, key=node_order)
    if not nodes:
        raise ValueError("atomic_on_nodes() needs at least one node")
    if is_citus():
        # Every worker alias is the Citus coordinator: one local transaction there, which Citus commits with
        # its own two-phase commit when it touched several Citus workers (and recovers itself).
        nodes = [CITUS_ALIAS]
    _ensure_outside_transactions(nodes)
    tx = DistributedTransaction(nodes)
    try:
        if len(nodes) == 1:
            with transaction.atomic(using=nodes[0]):
                _set_lock_timeout(nodes[0])
                yield tx
        else:
            yield from _two_phase_commit(tx)
    except OperationalError as exc:
        if getattr(exc.__cause__, "pgcode", None) == LOCK_NOT_AVAILABLE:
            raise LockTimeoutError(
                "a row lock was not granted within lock_timeout; nothing was changed"
            ) from exc
        raise
    except DatabaseError as exc:
        if is_moved_error(exc):
            raise ShardMovedError(f"a shard moved during the transaction; nothing was changed ({exc})") from exc
        raise


# A move fences its shard for well under a second; a few retries outlast any switch.
MOVED_RETRIES = 8


def retry_when_moved(operation: Callable[P, T]) -> Callable[P, T]:
    """Decorator: run the operation again, with the placement reloaded, when a shard it wrote had moved.

    The operation must look its nodes up itself (node_for_user and friends), so
    that a retry goes to the shard's new worker.
    """

    @functools.wraps(operation)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(MOVED_RETRIES):
            try:
                return operation(*args, **kwargs)
            except (ShardMovedError, DatabaseError) as exc:  # a plain transaction.atomic gives the DatabaseError
                if not is_moved_error(exc) or attempt == MOVED_RETRIES - 1:  # ShardMovedError's cause is SH001
                    raise
                logger.info("%s: a shard moved; retrying with the new placement", operation.__qualname__)
                invalidate_placement()
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("not reached: the last attempt returns or raises")

    return run


def _two_phase_commit(tx: DistributedTransaction) -> Iterator[DistributedTransaction]:
    decision = _Decision(tx)
    branches = [_Branch(alias, tx.gid(alias)) for alias in tx.nodes]
    with ExitStack() as participants:
        for branch in branches:
            participants.enter_context(transaction.atomic(using=branch.alias))
            branch.begin()
            # Unwinding rolls back whatever a failure left open, before Django's atomic block ends.
            participants.callback(branch.abandon)
            participants.enter_context(branch.watch_writes())
            _set_lock_timeout(branch.alias)
        yield tx
        writers = [branch for branch in branches if branch.wrote()]
        # Read-only participants first: if one fails, the writers still roll back.
        for branch in branches:
            if branch not in writers:
                branch.commit_one_phase()
        if len(writers) == 1:
            writers[0].commit_one_phase()
        if len(writers) < 2:
            return
        _prepare_and_decide(tx, decision, writers)
        try:
            failpoints.failpoint(failpoints.AFTER_DECISION)
            outcomes = _on_every_branch(writers, _Branch.commit_prepared, failpoints.BETWEEN_COMMITS)
            for error in outcomes:
                if isinstance(error, failpoints.FailpointError):
                    raise error
        except failpoints.FailpointError:
            _crash(writers)
            raise
        for branch, error in zip(writers, outcomes, strict=True):
            if error is not None:
                branch.commit_failed(error)


def _prepare_and_decide(tx: DistributedTransaction, decision: "_Decision", writers: "list[_Branch]") -> None:
    """Phases 3 and 4; returns once the decision is committed, raises (branches left to unwinding) otherwise."""
    try:
        decision.begin()  # its advisory lock is granted before any PREPARE goes out
        failed = next(filter(None, _on_every_branch(writers, _Branch.prepare, failpoints.AFTER_FIRST_PREPARE)), None)
        if failed is not None:
            raise failed
        failpoints.failpoint(failpoints.BEFORE_DECISION)
        decision.commit([branch.alias for branch in writers])
    except failpoints.FailpointError:
        decision.abort()
        _crash(writers)
        raise
    except BaseException:
        decision.abort()
        if not decision.committed_after_error():
            raise  # unwinding rolls every branch back, prepared or not
        logger.warning("transaction %s committed despite an error at its commit point", tx.txid, exc_info=True)


def _attempt(step: "Callable[[_Branch], None]", branch: "_Branch") -> Exception | None:
    try:
        step(branch)
    except Exception as exc:  # noqa: BLE001 - judged by the caller once every branch has answered
        return exc
    return None


def _on_every_branch(
    branches: "Sequence[_Branch]", step: "Callable[[_Branch], None]", point: str
) -> list[Exception | None]:
    """step() on every branch at once: the first in this thread, the others on the pool, each after failpoint `point`.

    So `point` is the moment the first branch's step is under way or done and the others' not yet sent. Returns each
    branch's error (None if it succeeded) only once all have ended: no connection is in use by a pool thread after.
    """

    def after_failpoint(branch: _Branch) -> None:
        failpoints.failpoint(point)
        step(branch)

    others = [_pool.submit(_attempt, after_failpoint, branch) for branch in branches[1:]]
    try:
        first = _attempt(step, branches[0])
    finally:
        wait(others)
    return [first, *(future.result() for future in others)]


def _crash(branches: "Iterable[_Branch]") -> None:
    """A simulated crash (a failpoint): drop the connections, so what is prepared stays prepared."""
    for branch in branches:
        connections[branch.alias].close()


WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "MERGE")


class _Branch:
    """One participant's part, driven through psycopg2's two-phase API (tpc_*).

    psycopg2 then knows the branch ended at COMMIT PREPARED, and Django's
    atomic block closes without the no-op COMMIT it would otherwise send.
    prepare() and commit_prepared() may run on a pool thread: they touch only
    the psycopg2 connection, never Django's thread-bound wrapper methods (its
    connections[alias] is per thread, so the wrapper is kept from the start).
    """

    def __init__(self, alias: str, gid: str) -> None:
        self.alias, self.gid = alias, gid
        self.connection: BaseDatabaseWrapper = connections[alias]
        self.sent_write = False

    def _tpc(self, method: str, *args: object) -> None:
        with self.connection.wrap_database_errors:
            getattr(self.connection.connection, method)(*args)

    def begin(self) -> None:
        self.connection.ensure_connection()
        self._tpc("tpc_begin", self.gid)

    def watch_writes(self) -> AbstractContextManager[None]:
        def observe(
            execute: Callable[[str, Any, bool, dict[str, Any]], Any], sql: str, params: Any, many: bool,
            context: dict[str, Any],
        ) -> Any:
            if sql.lstrip()[:6].upper().startswith(WRITE_VERBS):
                self.sent_write = True
            return execute(sql, params, many, context)

        return self.connection.execute_wrapper(observe)

    def wrote(self) -> bool:
        # A data-changing statement sent is enough; otherwise ask the node, since a
        # SELECT can still write (row locks, a function that writes).
        return self.sent_write or _wrote(self.alias)

    def commit_one_phase(self) -> None:
        self._tpc("tpc_commit")

    def prepare(self) -> None:
        self._tpc("tpc_prepare")

    def commit_prepared(self) -> None:
        """Phase 5. The transaction is committed already: a failure only delays it until recovery (commit_failed)."""
        self._tpc("tpc_commit")

    def commit_failed(self, exc: Exception) -> None:
        """After a failed COMMIT PREPARED, in the calling thread: recovery commits it."""
        if getattr(exc.__cause__, "pgcode", None) == UNDEFINED_OBJECT:
            logger.debug("%s was committed by recovery first", self.gid)
        else:
            logger.warning("COMMIT PREPARED %s failed; recovery will commit it", self.gid, exc_info=exc)
        self.connection.close()

    def abandon(self) -> None:
        """Roll back whatever is still open: ROLLBACK, or ROLLBACK PREPARED once prepared."""
        connection = self.connection
        if connection.closed_in_transaction or connection.connection is None:
            return
        if connection.connection.status == psycopg2.extensions.STATUS_READY:
            return  # committed
        try:
            self._tpc("tpc_rollback")
        except Exception:  # noqa: BLE001 - recovery rolls back whatever is left
            logger.warning("could not roll back %s; recovery will", self.gid, exc_info=True)
            connection.close()


class _Decision:
    """The coordinator transaction whose commit is the commit point.

    From before the first PREPARE until it ends it holds an advisory lock on
    the transaction id: while the lock is held, recovery leaves the prepared
    transactions alone; once it is free and no record exists, none ever will.
    Its statements go two to a round trip, outside Django's transaction
    management (the coordinator connection is otherwise in autocommit).
    """

    def __init__(self, tx: DistributedTransaction) -> None:
        self.tx = tx
        self.open = False
        self.recorded = False

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with connections[COORDINATOR_ALIAS].cursor() as cursor:
            cursor.execute(sql, params)

    def begin(self) -> None:
        self.open = True
        self._execute("BEGIN; SELECT pg_advisory_xact_lock(%s)", [self.tx.txid])

    def commit(self, participants: list[str]) -> None:
        self.recorded = True
        self._execute(
            "INSERT INTO sharding_transaction_decision (txid, participants, created_at) VALUES (%s, %s, now()); COMMIT",
            [self.tx.txid, participants],
        )
        self.open = False
        logger.debug("transaction %s committed (participants %s)", self.tx.txid, ", ".join(participants))

    def abort(self) -> None:
        if not self.open:
            return
        self.open = False
        try:
            self._execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - a lost coordinator connection aborts the transaction anyway
            connections[COORDINATOR_ALIAS].close()

    def committed_after_error(self) -> bool:
        """Whether the record committed although its COMMIT raised (a connection lost at the commit point)."""
        if not self.recorded:
            return False
        try:
            connections[COORDINATOR_ALIAS].close()
            with connections[COORDINATOR_ALIAS].cursor() as cursor:
                cursor.execute("SELECT 1 FROM sharding_transaction_decision WHERE txid = %s", [self.tx.txid])
                return cursor.fetchone() is not None
        except Exception as exc:
            raise TransactionOutcomeUnknownError(
                f"transaction {self.tx.txid}: the coordinator did not answer whether it committed ({exc}); "
                "recovery will settle it"
            ) from exc
