"""Cross-worker (2PC) transfers per second against same-worker transfers, in one run.

    CLUSTER_NAME=bench .venv/bin/python -m benchmarks.twopc_transfers [--threads 4] [--seconds 10] [--json out.json]

(or `make bench-2pc`). Each transfer debits one account and credits another
through sharding.transactions.atomic_on_nodes: a local transaction when both
accounts are on one worker, two-phase commit when they are on two. The table
is the benchmark's own (created on every worker and dropped afterwards).
Threads use disjoint accounts, so the figure measures commit cost, not lock
contention. benchmarks.run_bench runs it too (--json: the transfers and transfers per
second of each mode), beside the same transfers on Citus (benchmarks.pgbench_baselines).
"""
import argparse
import json
import os
import threading
import time


def _setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    os.environ.setdefault("CLUSTER_NAME", "bench")
    import django

    django.setup()


TABLE = "bench_transfer_account"


def _create_accounts(workers, accounts_per_worker):
    from django.db import connections

    for alias in workers:
        with connections[alias].cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
            cursor.execute(
                f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))"
            )
            cursor.execute(
                f"INSERT INTO {TABLE} SELECT g, 1000000000 FROM generate_series(1, %s) g", [accounts_per_worker]
            )


def _drop_accounts(workers):
    from django.db import connections

    for alias in workers:
        with connections[alias].cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


def _transfer(source, target):
    """source/target: (alias, account id)."""
    from django.db import connections

    from sharding.transactions import atomic_on_nodes

    with atomic_on_nodes([source[0], target[0]]):
        with connections[source[0]].cursor() as cursor:
            cursor.execute(f"UPDATE {TABLE} SET balance = balance - 1 WHERE id = %s AND balance >= 1", [source[1]])
        with connections[target[0]].cursor() as cursor:
            cursor.execute(f"UPDATE {TABLE} SET balance = balance + 1 WHERE id = %s", [target[1]])


def _run(mode, workers, threads, seconds):
    """(transfers, seconds taken) with `threads` threads for about `seconds` seconds."""
    from django.db import connections

    counts = [0] * threads
    deadline = time.monotonic() + seconds

    def loop(index):
        if mode == "same-worker":
            source, target = (workers[0], 2 * index + 1), (workers[0], 2 * index + 2)
        else:
            source, target = (workers[0], 2 * index + 1), (workers[1], 2 * index + 1)
        try:
            while time.monotonic() < deadline:
                _transfer(source, target)
                source, target = target, source
                counts[index] += 1
        finally:
            for connection in connections.all(initialized_only=True):
                connection.close()

    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts), time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--json", help="also write {mode: {per_second, transfers}} to this file")
    args = parser.parse_args()
    _setup_django()
    from sharding.placement import all_workers

    workers = all_workers()
    if len(workers) < 2:
        raise SystemExit("needs a cluster with at least two workers")
    _create_accounts(workers[:2], 2 * args.threads + 2)
    try:
        results, transfers = {}, {}
        for mode in ("same-worker", "cross-worker"):
            _run(mode, workers, args.threads, args.warmup)
            transfers[mode], took = _run(mode, workers, args.threads, args.seconds)
            results[mode] = transfers[mode] / took
            print(f"{mode:<13} {results[mode]:8.1f} transfers/s  ({args.threads} threads, {args.seconds:g}s)")
    finally:
        _drop_accounts(workers[:2])
    ratio = results["cross-worker"] / results["same-worker"]
    print(f"cross-worker / same-worker = {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({mode: {"per_second": results[mode], "transfers": transfers[mode]} for mode in results}, f)


if __name__ == "__main__":
    main()
