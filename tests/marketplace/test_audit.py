"""audit_ledger: exit 0 when every wallet matches its ledger, 1 when one does not."""
import pytest

from sharding.placement import node_for_user

from .conftest import run_manage

pytestmark = pytest.mark.usefixtures("clean_marketplace")


def test_audit_finds_a_corrupted_balance(mk, db_rows, node_connection):
    seller, buyer = mk.register(), mk.register()
    mk.deposit(buyer, "20.00")
    assert mk.buy(buyer, mk.list_item(seller, price="7.25")).status_code == 201

    clean = run_manage("audit_ledger")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.strip()

    node = node_for_user(int(buyer["id"]))
    with node_connection(node).cursor() as cursor:
        cursor.execute("UPDATE wallet_wallet SET balance = balance + 1 WHERE user_id = %s", [int(buyer["id"])])
        assert cursor.rowcount == 1
    broken = run_manage("audit_ledger")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert buyer["id"] in broken.stdout + broken.stderr

    with node_connection(node).cursor() as cursor:
        cursor.execute("UPDATE wallet_wallet SET balance = balance - 1 WHERE user_id = %s", [int(buyer["id"])])
    assert run_manage("audit_ledger").returncode == 0
