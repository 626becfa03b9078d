"""Prepare a seeded cluster for the load benchmark: tokens, money, partner keys, search SQL.

    CLUSTER_NAME=bench2w .venv/bin/python -m benchmarks.load_prep --slots 16 --out prep.json [--roles roles.json]

Run by benchmarks.run_bench in its own process, once per cluster (Django reads the
cluster config at start-up). It writes one JSON file with:

- slots: one demo user per concurrent locust user (half of them in each group, see
  below), each with an API token (app.accounts.services.issue_token, a knox token made here) and enough
  money for every purchase the benchmark can make (a deposit through
  app.wallet.services.deposit, so ledgers still match);
- groups: the group of every demo user. On the 2-worker cluster the group is the
  worker that holds the user (1 or 2); the 1-worker cluster reads the same groups from
  --roles (written by the 2-worker run), so a "same-worker" and a "cross-worker"
  purchase are between the same two users on both clusters. On Citus (run without
  --roles) the group is the Citus worker that holds the user's logical shard
  (sharding.citus_admin.logical_shards_by_node: the app's one worker alias there is the
  coordinator), so a "same-worker" purchase is a transaction on one Citus worker and a
  "cross-worker" one Citus's own two-phase commit; shard_groups is that map per logical
  shard (the pgbench transfers of benchmarks.pgbench_baselines pick their pairs by it);
- partner_keys: one API key per slot (`manage.py create_partner`, scope products:read);
- search_sql: for each search text of the benchmark, the exact SQL that
  app.catalog.search.search_listings sends to a worker (captured from a real call), with
  the caller's user id left as the pgbench variable :uid.
"""
import argparse
import io
import json
import os
import time

SENTINEL_USER = 987654321987  # a caller id no demo user has; replaced by :uid in the captured SQL
SLOT_MONEY = 10_000_000_000  # minor units (100,000,000.00) per slot user: far more than any run spends


def _setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    import django

    django.setup()


def search_texts():
    """The benchmark's search texts: the demo vocabulary of benchmarks.search_latency."""
    from benchmarks.search_latency import ONE_WORD, TWO_WORDS, TYPOS

    return [*ONE_WORD, *TWO_WORDS, *TYPOS]


def capture_search_sql(texts):
    """{text: SQL} of the worker query search_listings sends for `q=text`, sort by relevance."""
    from django.db.backends import utils

    from app.catalog.search import ListingQuery, search_listings

    captured = []
    original = utils.CursorWrapper._execute

    def recording(self, sql, params, *ignored):
        result = original(self, sql, params, *ignored)
        captured.append(self.cursor.query.decode())
        return result

    out = {}
    utils.CursorWrapper._execute = recording
    try:
        for text in texts:
            captured.clear()
            search_listings(ListingQuery(q=text, sort="relevance", exclude_user_id=SENTINEL_USER), page_size=20)
            selects = [sql for sql in captured if sql.lstrip().upper().startswith("SELECT") and "catalog_item" in sql]
            sql = selects[0]
            assert str(SENTINEL_USER) in sql, sql
            out[text] = sql.replace(str(SENTINEL_USER), ":uid")
    finally:
        utils.CursorWrapper._execute = original
    return out


def worker_positions():
    """{logical shard: position of the worker that holds it}: our placement, or on Citus Citus's own."""
    from sharding.engine import is_citus

    if is_citus():
        from sharding.citus_admin import citus_nodes, logical_shards_by_node

        order = [node.address for node in citus_nodes()]
        return {shard: order.index(address) for address, shards in logical_shards_by_node().items()
                for shard in shards}
    from sharding.placement import all_workers, logical_shard_count, node_of_shard

    workers = all_workers()
    return {shard: workers.index(node_of_shard(shard)) for shard in range(logical_shard_count())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slots", type=int, required=True, help="concurrent locust users to prepare for")
    parser.add_argument("--out", required=True)
    parser.add_argument("--roles", help="groups of users: read if the file exists, else written from this cluster")
    args = parser.parse_args()
    _setup_django()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from app.accounts.services import issue_token
    from app.wallet.models import Wallet
    from app.wallet.services import deposit
    from sharding.engine import is_citus
    from sharding.placement import all_workers, node_for_user, shard_of
    from sharding.transactions import atomic_on_nodes

    started = time.monotonic()
    User = get_user_model()
    users = list(User.objects.filter(username__regex=r"^demo[0-9]+$").order_by("id").values_list("id", "username"))
    if len(users) < 2 * args.slots:
        raise SystemExit(
            f"load_prep: only {len(users)} demo users, need at least {2 * args.slots}: seed the cluster first"
        )

    shard_groups = {shard: position % 2 + 1 for shard, position in worker_positions().items()}
    if args.roles and os.path.exists(args.roles):
        groups = {int(k): v for k, v in json.load(open(args.roles))["groups"].items()}
        source = f"read from {args.roles}"
    else:
        groups = {uid: shard_groups[shard_of(uid)] for uid, _ in users}
        source = "Citus's placement" if is_citus() else "this cluster's placement"
        if args.roles:
            with open(args.roles, "w") as f:
                json.dump({"groups": groups}, f)
    names = dict(users)
    by_group = {
        1: [uid for uid, _ in users if groups.get(uid) == 1], 2: [uid for uid, _ in users if groups.get(uid) == 2]
    }
    if not by_group[1] or not by_group[2]:
        raise SystemExit("load_prep: every demo user is in one group: a cross-worker purchase needs two")

    # Slots alternate between the groups, so any number of locust users buys on both workers.
    slot_users = [by_group[1 + i % 2][i // 2] for i in range(args.slots)]
    slots = []
    for index, uid in enumerate(slot_users):
        token, _ = issue_token(User.objects.get(id=uid), client="benchmarks.load_prep")
        alias = node_for_user(uid)
        wallet = Wallet.objects.using(alias).filter(user_id=uid).first()
        if wallet is None or wallet.balance < SLOT_MONEY // 2:
            with atomic_on_nodes([alias]):
                deposit(uid, SLOT_MONEY)
        slots.append({"slot": index, "user_id": uid, "username": names[uid], "group": groups[uid],
                      "shard": shard_of(uid), "node": alias, "token": token})

    partner_keys = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for index in range(args.slots):
        out = io.StringIO()
        call_command("create_partner", f"bench {stamp} #{index}", scopes="products:read", stdout=out)
        partner_keys.append(out.getvalue().strip().splitlines()[-1])

    search_sql = capture_search_sql(search_texts())
    from app.core.demo_data import CATEGORY_NAMES

    data = {
        "cluster": os.environ.get("CLUSTER_NAME", ""),
        "workers": all_workers(),
        "groups": {str(uid): g for uid, g in groups.items()},
        "usernames": {str(uid): name for uid, name in users},
        "shards": {str(uid): shard_of(uid) for uid, _ in users},
        "shard_groups": {str(shard): group for shard, group in shard_groups.items()},
        "slots": slots,
        "partner_keys": partner_keys,
        "categories": list(CATEGORY_NAMES),
        "search_sql": search_sql,
    }
    with open(args.out, "w") as f:
        json.dump(data, f)
    print(f"   prepared {len(slots)} slots (tokens, {SLOT_MONEY // 100:,} each), {len(partner_keys)} partner keys, "
          f"{len(search_sql)} search statements; groups from {source} "
          f"({len(by_group[1])} + {len(by_group[2])} users) in {time.monotonic() - started:.1f}s", flush=True)


if __name__ == "__main__":
    main()
