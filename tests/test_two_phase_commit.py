"""Distributed transactions: all-or-nothing across workers, even when processes or nodes crash."""
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connections

import cluster
from cluster import bouncer
from sharding import failpoints
from sharding.models import TransactionDecision
from sharding.placement import all_workers, node_for_user
from sharding.recovery import in_doubt_transactions, recover_in_doubt_transactions
from sharding.transactions import LockTimeoutError, atomic_on_nodes
from tests.bank import InsufficientFunds, balances, open_account, transfer
from tests.conftest import coordinator_name
from tests.shardtest.models import Account

REPO = Path(__file__).resolve().parent.parent

# Our own two-phase commit and its recovery (with Citus, Citus does both).
pytestmark = pytest.mark.own_engine


@pytest.fixture
def bank(clean_shardtest):
    TransactionDecision.objects.all().delete()
    yield
    failpoints.disarm_all()
    TransactionDecision.objects.all().delete()


def users_on(alias, count, start=1000):
    found, uid = [], start
    while len(found) < count:
        if node_for_user(uid) == alias:
            found.append(uid)
        uid += 1
    return found


def prepared_everywhere():
    return [entry.gid for found in in_doubt_transactions().values() for entry in (found or [])]


def close_connections():
    for connection in connections.all(initialized_only=True):
        connection.close()


def recover_until_settled(grace=0.0, attempts=20):
    """Recovery after a node restart: the first rounds may meet connections that died with the node."""
    for _ in range(attempts):
        close_connections()
        try:
            recover_in_doubt_transactions(grace_seconds=grace)
            if not prepared_everywhere():
                return
        except Exception:  # noqa: BLE001 - the restarted node may still be coming up
            pass
        time.sleep(0.5)
    raise AssertionError(f"still prepared after recovery: {prepared_everywhere()}")


def two_accounts(balance=1000):
    worker1, worker2 = all_workers()[:2]
    return open_account(users_on(worker1, 1)[0], balance), open_account(users_on(worker2, 1)[0], balance)


# Whether the decision record is committed when the coordinating code stops at each failpoint.
DECIDED_WHEN_PROCESS_DIES = {
    failpoints.AFTER_FIRST_PREPARE: False,
    failpoints.BEFORE_DECISION: False,
    failpoints.AFTER_DECISION: True,
    failpoints.BETWEEN_COMMITS: True,
}
# When a worker dies instead, the process carries on: past the first PREPARE, the
# second fails and everything rolls back; later, the decision still commits.
DECIDED_WHEN_WORKER_DIES = {**DECIDED_WHEN_PROCESS_DIES, failpoints.BEFORE_DECISION: True}


@pytest.mark.slow
@pytest.mark.parametrize("crash", ["process", "worker"])
@pytest.mark.parametrize("point", failpoints.NAMES)
def test_crash_at_every_failpoint_leaves_all_or_nothing(bank, point, crash):
    source, target = two_accounts()
    result = subprocess.run(
        [sys.executable, "-m", "tests.twopc_transfer", str(source.id), str(target.id), "100", point, crash],
        cwd=REPO, env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True, text=True, timeout=120,
    )
    if crash == "process":
        assert result.returncode == failpoints.EXIT_CODE, result.stderr
    else:
        cluster.up(os.environ["CLUSTER_NAME"], log=lambda *_: None)  # restart the killed worker
    close_connections()
    decided = TransactionDecision.objects.exists()
    expected = DECIDED_WHEN_PROCESS_DIES if crash == "process" else DECIDED_WHEN_WORKER_DIES
    assert decided == expected[point]
    if crash == "worker":
        # Past the commit point the caller is told the transfer committed; before it, it gets the error.
        assert ("transfer returned" in result.stdout) == decided, result.stderr

    recover_until_settled()

    assert prepared_everywhere() == []
    moved = {source.id: 900, target.id: 1100}
    unmoved = {source.id: 1000, target.id: 1000}
    assert balances([source, target]) == (moved if decided else unmoved)


def test_no_decision_is_rolled_back_once_the_grace_period_has_passed(bank):
    source, target = two_accounts()
    failpoints.arm(failpoints.BEFORE_DECISION, "raise")
    with pytest.raises(failpoints.FailpointError):
        transfer(source.id, target.id, 100)
    failpoints.disarm_all()
    assert len(prepared_everywhere()) == 2

    report = recover_in_doubt_transactions(grace_seconds=2)
    assert report.rolled_back == [] and len(prepared_everywhere()) == 2  # too young yet
    time.sleep(2.1)
    report = recover_in_doubt_transactions(grace_seconds=2)
    assert len(report.rolled_back) == 2
    assert prepared_everywhere() == []
    assert balances([source, target]) == {source.id: 1000, target.id: 1000}


def test_decided_transaction_is_committed_without_its_process(bank):
    source, target = two_accounts()
    failpoints.arm(failpoints.AFTER_DECISION, "raise")
    with pytest.raises(failpoints.FailpointError):
        transfer(source.id, target.id, 250)
    failpoints.disarm_all()
    assert balances([source, target]) == {source.id: 1000, target.id: 1000}  # prepared, not yet visible

    report = recover_in_doubt_transactions(grace_seconds=0)
    assert len(report.committed) == 2
    assert balances([source, target]) == {source.id: 750, target.id: 1250}
    # Settled decisions are forgotten.
    recover_in_doubt_transactions(grace_seconds=0)
    assert not TransactionDecision.objects.exists()


def test_error_before_the_commit_point_rolls_back_and_reaches_the_caller(bank):
    source, target = two_accounts(balance=50)
    with pytest.raises(InsufficientFunds):
        transfer(source.id, target.id, 100)
    with pytest.raises(ZeroDivisionError):
        with atomic_on_nodes(all_workers()):
            Account.objects.using(node_for_user(source.user_id)).filter(id=source.id).update(balance=0)
            raise ZeroDivisionError
    assert balances([source, target]) == {source.id: 50, target.id: 50}
    assert prepared_everywhere() == []


def round_trips(config, work):
    """{node: round trips work() made to it}, as counted by the nodes' pgbouncers."""
    before = bouncer.query_counts(config)
    work()
    return {node: count - before[node] for node, count in bouncer.query_counts(config).items()}


def test_a_cross_worker_transfer_makes_only_the_round_trips_two_phase_commit_needs(bank, cluster_config):
    source, target = two_accounts()
    transfer(source.id, target.id, 1)  # connections opened beforehand
    sent = round_trips(cluster_config, lambda: transfer(source.id, target.id, 10))
    # Each worker: BEGIN, SET LOCAL lock_timeout, UPDATE, PREPARE TRANSACTION, COMMIT PREPARED: no
    # COMMIT after PREPARE, no asking whether it wrote. The coordinator: BEGIN with the advisory
    # lock, then the decision with its COMMIT.
    source_node, target_node = node_for_user(source.user_id), node_for_user(target.user_id)
    assert sent == {coordinator_name(): 2, source_node: 5, target_node: 5}
    assert balances([source, target]) == {source.id: 989, target.id: 1011}


SLOW_PREPARE_SECONDS = 0.6


@pytest.fixture
def slow_prepare_table():
    """A table on every worker whose rows each make PREPARE TRANSACTION take SLOW_PREPARE_SECONDS longer.

    A deferred constraint trigger runs at the end of the transaction, here at its PREPARE.
    """
    workers = all_workers()
    for alias in workers:
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "DROP TABLE IF EXISTS slow_prepare; CREATE TABLE slow_prepare (id int PRIMARY KEY);"
                "CREATE OR REPLACE FUNCTION slow_prepare_sleep() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$BEGIN PERFORM pg_sleep({SLOW_PREPARE_SECONDS}); RETURN NULL; END$$;"
                "CREATE CONSTRAINT TRIGGER slow_prepare_sleep AFTER INSERT ON slow_prepare "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_prepare_sleep()"
            )
    yield workers
    for alias in workers:
        with connections[alias].cursor() as cursor:
            cursor.execute("DROP TABLE slow_prepare; DROP FUNCTION slow_prepare_sleep()")


def test_participants_are_prepared_at_once_not_one_after_another(bank, slow_prepare_table):
    workers = slow_prepare_table[:2]
    started = time.monotonic()
    with atomic_on_nodes(workers):
        for alias in workers:
            with connections[alias].cursor() as cursor:
                cursor.execute("INSERT INTO slow_prepare VALUES (1)")
    elapsed = time.monotonic() - started
    # One after another, the PREPAREs alone would take 2 × SLOW_PREPARE_SECONDS.
    assert SLOW_PREPARE_SECONDS <= elapsed < 2 * SLOW_PREPARE_SECONDS, elapsed
    assert prepared_everywhere() == []
    for alias in workers:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM slow_prepare")
            assert cursor.fetchone()[0] == 1


def test_read_only_participant_is_not_prepared(bank, django_assert_max_num_queries):
    source, target = two_accounts()
    source_node = node_for_user(source.user_id)
    target_node = node_for_user(target.user_id)
    with atomic_on_nodes([source_node, target_node]) as tx:
        Account.objects.using(source_node).filter(id=source.id).update(balance=1)
        Account.objects.using(target_node).get(id=target.id)  # a read only
    assert prepared_everywhere() == []
    assert not TransactionDecision.objects.filter(txid=tx.txid).exists()  # one writer: plain commit
    assert balances([source, target]) == {source.id: 1, target.id: 1000}


def _in_doubt(count, point):
    """Leave `count` transfers in doubt, stopped at `point` by a simulated crash."""
    failpoints.arm(point, "raise")
    for _ in range(count):
        source, target = two_accounts()
        with pytest.raises(failpoints.FailpointError):
            transfer(source.id, target.id, 10)
    failpoints.disarm_all()


def test_two_recovery_runs_at_once_never_settle_a_gid_both_ways(bank):
    _in_doubt(3, failpoints.BEFORE_DECISION)
    _in_doubt(3, failpoints.AFTER_DECISION)
    in_doubt = set(prepared_everywhere())
    assert len(in_doubt) == 12

    start = threading.Barrier(2)
    reports = []

    def run():
        start.wait()
        try:
            reports.append(recover_in_doubt_transactions(grace_seconds=0))
        finally:
            close_connections()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    committed = [gid for report in reports for gid in report.committed]
    rolled_back = [gid for report in reports for gid in report.rolled_back]
    assert len(committed) == len(set(committed)) == 6
    assert len(rolled_back) == len(set(rolled_back)) == 6
    assert set(committed) | set(rolled_back) == in_doubt
    assert prepared_everywhere() == []


@pytest.mark.slow
def test_recovery_during_live_traffic_aborts_no_live_transaction(bank):
    # Each thread moves money back and forth inside its own pair of accounts (one
    # per worker), so no transfer can fail for any reason but recovery.
    worker1, worker2 = all_workers()[:2]
    pairs = [
        (open_account(a, 1_000_000), open_account(b, 1_000_000))
        for a, b in zip(users_on(worker1, 4), users_on(worker2, 4), strict=True)
    ]
    expected = {account.id: 1_000_000 for pair in pairs for account in pair}
    errors = []
    stop = threading.Event()

    def traffic(pair, seed):
        rng = random.Random(seed)
        try:
            for _ in range(60):
                source, target = rng.sample(pair, 2)
                amount = rng.randint(1, 100)
                transfer(source.id, target.id, amount)
                expected[source.id] -= amount
                expected[target.id] += amount
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            close_connections()

    def recovery():
        while not stop.is_set():
            recover_in_doubt_transactions(grace_seconds=0)
        close_connections()

    recoverer = threading.Thread(target=recovery)
    recoverer.start()
    threads = [threading.Thread(target=traffic, args=(pair, seed)) for seed, pair in enumerate(pairs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    stop.set()
    recoverer.join(30)

    assert errors == []
    assert balances([account for pair in pairs for account in pair]) == expected
    assert prepared_everywhere() == []


def test_opposite_lock_order_on_two_nodes_never_hangs(bank, settings):
    settings.SHARDING = {**settings.SHARDING, "LOCK_TIMEOUT_MS": 500}
    first, second = two_accounts()
    both_hold_one = threading.Barrier(2)
    outcomes = {}

    def run(name, lock_first, lock_second):
        started = time.monotonic()
        try:
            with atomic_on_nodes(all_workers()):
                for step, account in enumerate((lock_first, lock_second)):
                    node = node_for_user(account.user_id)
                    Account.objects.using(node).select_for_update().get(id=account.id)
                    Account.objects.using(node).filter(id=account.id).update(balance=account.balance + 1)
                    if step == 0:
                        both_hold_one.wait(5)
            outcomes[name] = ("committed", time.monotonic() - started)
        except LockTimeoutError:
            outcomes[name] = ("lock_timeout", time.monotonic() - started)
        finally:
            close_connections()

    threads = [
        threading.Thread(target=run, args=("forward", first, second)),
        threading.Thread(target=run, args=("backward", second, first)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert not any(thread.is_alive() for thread in threads), "a transaction hangs"
    assert {outcome for outcome, _ in outcomes.values()} <= {"committed", "lock_timeout"}
    assert "lock_timeout" in {outcome for outcome, _ in outcomes.values()}
    assert all(elapsed < 3 for _, elapsed in outcomes.values())
    committed = sum(outcome == "committed" for outcome, _ in outcomes.values())
    # Each committed transaction added 1 to both accounts; a timed-out one changed nothing.
    assert balances([first, second]) == {first.id: 1000 + committed, second.id: 1000 + committed}
    assert prepared_everywhere() == []


@pytest.mark.slow
def test_bank_keeps_its_total_through_crashing_concurrent_cross_node_transfers(bank, settings):
    # Crashed transfers hold their row locks until recovery: give up on them quickly.
    settings.SHARDING = {**settings.SHARDING, "LOCK_TIMEOUT_MS": 300}
    worker1, worker2 = all_workers()[:2]
    accounts = [open_account(uid, 10_000) for uid in users_on(worker1, 10) + users_on(worker2, 10)]
    side = {alias: [a for a in accounts if node_for_user(a.user_id) == alias] for alias in (worker1, worker2)}
    total = sum(balances(accounts).values())
    for point in failpoints.NAMES:
        failpoints.arm(point, "raise", probability=0.02)
    outcomes = {"ok": 0, "crashed": 0, "insufficient": 0, "lock_timeout": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def transfers(seed):
        rng = random.Random(seed)
        try:
            for _ in range(250):
                pair = [rng.choice(side[worker1]), rng.choice(side[worker2])]
                rng.shuffle(pair)
                try:
                    transfer(pair[0].id, pair[1].id, rng.randint(1, 3000))
                    outcome = "ok"
                except failpoints.FailpointError:
                    outcome = "crashed"
                except InsufficientFunds:
                    outcome = "insufficient"
                except LockTimeoutError:
                    outcome = "lock_timeout"
                with lock:
                    outcomes[outcome] += 1
        finally:
            close_connections()

    def maintenance():
        while not stop.wait(0.2):
            recover_in_doubt_transactions(grace_seconds=0)
        close_connections()

    recoverer = threading.Thread(target=maintenance)
    recoverer.start()
    threads = [threading.Thread(target=transfers, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    stop.set()
    recoverer.join(30)
    failpoints.disarm_all()
    recover_until_settled()

    assert sum(outcomes.values()) == 2000
    assert outcomes["crashed"] > 0 and outcomes["ok"] > 1000
    final = balances(accounts)
    assert sum(final.values()) == total
    assert min(final.values()) >= 0


def test_failpoints_cannot_be_armed_where_settings_forbid_them(settings):
    settings.SHARDING = {**settings.SHARDING, "FAILPOINTS": False}
    with pytest.raises(RuntimeError, match="disabled"):
        failpoints.arm(failpoints.AFTER_DECISION, "exit")
    assert failpoints._armed == {}
