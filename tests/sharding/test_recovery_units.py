"""The parts of recovery that need no node: which prepared transactions are ours, and its report."""
from sharding.recovery import RecoveryReport
from sharding.transactions import make_gid, parse_gid


def test_our_gids_name_their_transaction_and_node(settings):
    settings.SHARDING = {**settings.SHARDING, "GID_PREFIX": "mkt"}
    assert make_gid(12345, "worker2") == "mkt_12345_worker2"
    assert parse_gid("mkt_12345_worker2") == (12345, "worker2")


def test_anyone_elses_prepared_transactions_are_left_alone(settings):
    settings.SHARDING = {**settings.SHARDING, "GID_PREFIX": "mkt"}
    for gid in ("other_1_worker1", "mkt_abc_worker1", "mkt_12", "mkt__worker1", "citus_1_2_3_4", ""):
        assert parse_gid(gid) is None, gid


def test_the_report_says_what_recovery_did():
    report = RecoveryReport(committed=["a"], rolled_back=["b", "c"], unreachable=["worker2"], forgotten=4)
    assert report.summary() == (
        "committed 1, rolled back 2, still running 0, decision records forgotten 4; unreachable: worker2"
    )
    assert RecoveryReport(skipped=True).summary() == "another recovery run is in progress; nothing done"
