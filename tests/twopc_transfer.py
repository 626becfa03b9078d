"""One cross-worker transfer in its own process, crashed at a failpoint (used by the crash tests).

    python -m tests.twopc_transfer FROM_ACCOUNT TO_ACCOUNT AMOUNT FAILPOINT {process,worker}

`process`: the process dies (os._exit) at the failpoint.
`worker`: at the failpoint, the postmaster of the receiving account's worker is
SIGKILLed, its backends are gone, and the process carries on.
"""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    import cluster
    from sharding import failpoints
    from tests.bank import transfer

    source, target, amount, point, crash = sys.argv[1:]
    source, target, amount = int(source), int(target), int(amount)
    if crash == "process":
        failpoints.arm(point, "exit")
    else:
        from sharding.placement import node_for_id

        name = os.environ["CLUSTER_NAME"]
        victim = cluster.find_node(cluster.load_config(name), node_for_id(target))

        def crash_worker():
            cluster.kill_postmaster(name, victim["name"])
            # Its backends notice and exit; wait for them so the crash is complete.
            cluster.postgres.clear_crash_leftovers(victim)

        failpoints.arm(point, crash_worker)
    transfer(source, target, amount)
    print("transfer returned")


if __name__ == "__main__":
    main()
