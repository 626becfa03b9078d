"""Atomic work on one or several workers.

    with atomic_on_nodes([node_for_user(buyer), node_for_user(seller)]) as tx:
        Wallet.objects.using(tx.nodes[0])...

One node: a plain local transaction. Several nodes: presumed-abort two-phase
commit, as Citus does it:
  1. participants are opened in ascending node order, each with lock_timeout
     (there is no distributed deadlock detector);
  2. the caller does its work;
  3. every participant that wrote is PREPAREd with a self-describing gid
     (prefix, transaction id, node); read-only participants just commit;
  4. the commit point: a decision record naming the transaction is committed
     on the coordinator;
  5. COMMIT PREPARED everywhere. A failure here is left to recovery and the
     caller is told the transaction committed.
The coordinator transaction that writes the decision holds an advisory lock
on the transaction id from before the first PREPARE until the commit point,
so recovery can tell "still running" from "gone without a decision".
"""
import logging
import random
import secrets
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import OperationalError, connections, transaction
from django.db.transaction import TransactionManagementError

from . import failpoints
from .config import COORDINATOR_ALIAS
from .errors import ShardingError
from .routing import all_workers, check_node

logger = logging.getLogger("sharding.transactions")

LOCK_NOT_AVAILABLE = "55P03"
UNDEFINED_OBJECT = "42704"


class LockTimeoutError(ShardingError):
    """A row lock was not granted within lock_timeout; nothing was committed. Retrying may succeed."""


class TransactionOutcomeUnknownError(ShardingError):
    """The coordinator could not be asked whether the decision committed; recovery will settle it."""


@dataclass
class DistributedTransaction:
    nodes: list  # participant aliases, ascending node order
    txid: int = field(default_factory=lambda: secrets.randbits(62) + 1)

    def gid(self, alias):
        return make_gid(self.txid, alias)


def gid_prefix():
    return settings.SHARDING["GID_PREFIX"]


def make_gid(txid, alias):
    return f"{gid_prefix()}_{txid}_{alias}"


def parse_gid(gid):
    """(txid, node) of one of our gids, or None for anyone else's prepared transaction."""
    prefix, _, rest = gid.partition("_")
    txid, _, node = rest.partition("_")
    if prefix != gid_prefix() or not txid.isdigit() or not node:
        return None
    return int(txid), node


def node_order(alias):
    workers = all_workers()
    return workers.index(alias) if alias in workers else -1


def _set_lock_timeout(alias):
    # Jitter, so that two transactions waiting on each other across nodes do not
    # both time out together: the first to give up lets the other through.
    base = settings.SHARDING["LOCK_TIMEOUT_MS"]
    with connections[alias].cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = %s", [f"{random.randint(base, base * 3 // 2)}ms"])


def _wrote(alias):
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
        return cursor.fetchone()[0]


def _ensure_outside_transactions(aliases):
    busy = [alias for alias in (*aliases, COORDINATOR_ALIAS) if connections[alias].in_atomic_block]
    if busy:
        raise TransactionManagementError(
            f"atomic_on_nodes() must not run inside another transaction on {', '.join(busy)}"
        )


@contextmanager
def atomic_on_nodes(aliases):
    """A transaction over the given nodes, atomic whether they are one worker or several."""
    nodes = sorted({check_node(alias) for alias in aliases}, key=node_order)
    if not nodes:
        raise ValueError("atomic_on_nodes() needs at least one node")
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


def _two_phase_commit(tx):
    decision = _Decision(tx)
    prepared = []
    try:
        with ExitStack() as participants:
            for alias in tx.nodes:
                participants.enter_context(transaction.atomic(using=alias))
                _set_lock_timeout(alias)
            yield tx
            writers = [alias for alias in tx.nodes if _wrote(alias)]
            if len(writers) > 1:
                decision.begin()
                for alias in writers:
                    with connections[alias].cursor() as cursor:
                        cursor.execute("PREPARE TRANSACTION %s", [tx.gid(alias)])
                    prepared.append(alias)
                    if len(prepared) == 1:
                        failpoints.failpoint(failpoints.AFTER_FIRST_PREPARE)
        # Leaving the block committed the read-only participants (or the only
        # writer, in one phase); Django's COMMIT is a no-op for prepared ones.
        if not prepared:
            return
        failpoints.failpoint(failpoints.BEFORE_DECISION)
        decision.commit(prepared)
    except failpoints.FailpointError:
        decision.abort()  # a simulated crash: the prepared transactions stay, as after a real one
        raise
    except BaseException:
        decision.abort()
        if decision.committed_after_error():
            logger.warning("transaction %s committed despite an error at its commit point", tx.txid, exc_info=True)
        else:
            _rollback_prepared(tx, prepared)
            raise
    _commit_prepared(tx, prepared)


class _Decision:
    """The coordinator transaction whose commit is the commit point.

    From before the first PREPARE until it ends it holds an advisory lock on
    the transaction id: while the lock is held, recovery leaves the prepared
    transactions alone; once it is free and no record exists, none ever will.
    """

    def __init__(self, tx):
        self.tx = tx
        self.atomic = None
        self.recorded = False

    def begin(self):
        self.atomic = transaction.atomic(using=COORDINATOR_ALIAS)
        self.atomic.__enter__()
        with connections[COORDINATOR_ALIAS].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [self.tx.txid])

    def commit(self, participants):
        with connections[COORDINATOR_ALIAS].cursor() as cursor:
            cursor.execute(
                "INSERT INTO sharding_transaction_decision (txid, participants, created_at) VALUES (%s, %s, now())",
                [self.tx.txid, participants],
            )
        self.recorded = True
        atomic, self.atomic = self.atomic, None
        atomic.__exit__(None, None, None)
        logger.debug("transaction %s committed (participants %s)", self.tx.txid, ", ".join(participants))

    def abort(self):
        atomic, self.atomic = self.atomic, None
        if atomic is not None:
            try:
                atomic.__exit__(TransactionManagementError, TransactionManagementError("aborted"), None)
            except Exception:  # noqa: BLE001 - a lost coordinator connection aborts the transaction anyway
                connections[COORDINATOR_ALIAS].close()

    def committed_after_error(self):
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


def _rollback_prepared(tx, prepared):
    for alias in prepared:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("ROLLBACK PREPARED %s", [tx.gid(alias)])
        except Exception:  # noqa: BLE001 - recovery rolls back whatever is left
            logger.warning("could not roll back %s; recovery will", tx.gid(alias), exc_info=True)
            connections[alias].close()


def _commit_prepared(tx, prepared):
    """Phase 5. The transaction is committed already: a failure only delays it until recovery."""
    for position, alias in enumerate(prepared):
        failpoints.failpoint(failpoints.AFTER_DECISION if position == 0 else failpoints.BETWEEN_COMMITS)
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("COMMIT PREPARED %s", [tx.gid(alias)])
        except Exception as exc:  # noqa: BLE001 - recovery commits it
            if getattr(exc.__cause__, "pgcode", None) == UNDEFINED_OBJECT:
                logger.debug("%s was committed by recovery first", tx.gid(alias))
                continue
            logger.warning("COMMIT PREPARED %s failed; recovery will commit it", tx.gid(alias), exc_info=True)
            connections[alias].close()
