"""The database limit: pgbench running the SQL of a purchase and of a search, straight at PostgreSQL.

Used by benchmarks.run_bench (not a command of its own). Every script is written from
the statements the app sends (captured with Django's cursor on a real purchase and a
real search_listings call), with literals replaced by pgbench variables:

- purchase, local: the whole purchase in one transaction on one worker (idempotency key
  claim, listing locked FOR UPDATE, both wallets created-if-missing and locked in user
  order, listing sold, outbox event, the buyer's new item, purchase, sale, two wallet
  updates and two ledger entries, the stored response). On a cluster of N workers one
  pgbench per worker runs at once, each buying listings of its own worker;
  purchases/s is their sum.
- purchase, 2PC: pgbench talks to one server per process, so a cross-worker purchase is
  cut into its per-node halves, as the app runs them: on the seller's worker (listing,
  seller wallet, sale, ledger) and on the buyer's (key, buyer wallet, new item, purchase,
  ledger), each ending in PREPARE TRANSACTION and COMMIT PREPARED, plus the decision
  record on the coordinator (rate-limited to the purchase rate of the warm-up). One
  pgbench per worker runs both halves (half of its transactions each) at the same time
  as the others; purchases/s = the halves per second of both workers / 2. The halves
  are not coordinated (no waiting for the other node's PREPARE), so this is an upper
  bound, and latencies are those of one half, not of a whole purchase.
- search: the per-worker query of app.catalog.search for the benchmark's 50 search texts
  (one pgbench script per text, as the app's SQL has the text as a literal), inside the
  same `BEGIN; SET LOCAL statement_timeout` / `SET LOCAL pg_trgm.word_similarity_threshold
  / COMMIT round trips, with a random caller id. On 2 workers one pgbench per worker runs at once;
  searches/s is the lower of the two (a search needs both) and each percentile the
  higher.

- transfers on Citus: the raw comparison with benchmarks.twopc_transfers (`make
  bench-2pc`): one account debited and another credited, the same two UPDATEs in one
  transaction, sent to the Citus coordinator by pgbench. The accounts' table is
  distributed by logical_shard, colocated with the marketplace's tables, and each client
  moves money between its own two accounts, whose logical shards are on one Citus worker
  (same worker: a transaction on one node) or on two (cross-worker: Citus's two-phase
  commit), by the groups load_prep records (Citus's placement).

What the scripts add: each purchase transaction first reads its listing from a pick
table (`SELECT ... FROM bench_pgbench_pick WHERE n = nextval`, one extra round trip)
because pgbench cannot keep a list of ids; each listing is sold once, as in the app
(a unique constraint on sales backs that). What they leave out: the token check and the
placement lookup on the coordinator, HTTP, Python and Django. Simple query protocol, as
psycopg2 uses.
"""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import psycopg2

PGBENCH = os.environ.get("PGBENCH", "/usr/bin/pgbench")
WARMUP_RATE_GUESS = 2000  # purchases/s per worker that no 2-core machine reaches: pools hold the warm-up
REQUEST_HASH = "0" * 56 + "70676265"  # any 64 hex characters: the key is new every time

ITEM_COLUMNS = ", ".join(f'"catalog_item"."{c}"' for c in (
    "id", "user_id", "logical_shard", "owner_username", "title", "description", "category", "price", "status",
    "source_item_id", "created_at", "updated_at", "sold_at", "search_vector"))
KEY_COLUMNS = ", ".join(f'"core_idempotencykey"."{c}"' for c in (
    "id", "user_id", "logical_shard", "key", "request_hash", "status_code", "response", "created_at"))
WALLET_COLUMNS = ", ".join(
    f'"wallet_wallet"."{c}"' for c in ("id", "user_id", "logical_shard", "balance", "updated_at")
)


def _pick(table, seq, side):
    return f"""SELECT item_id, seller_id, seller_shard, buyer_id, buyer_shard, price, buyer_first::int AS buyer_first,
  quote_literal(seller_username) AS q_seller, quote_literal(buyer_username) AS q_buyer, quote_literal(title) AS q_title,
  quote_literal(description) AS q_description, quote_literal(category) AS q_category, quote_literal(payload) AS \
q_payload,
  quote_literal('pgb_' || n || '_{side}') AS q_gid
  FROM {table} WHERE n = (SELECT nextval('{seq}')) \\gset
"""


# In the statements below, a backslash at the end of a line continues it: each statement stays on one line,
# as the app sends it.
def _wallet(who, prefix):
    uid, shard = f":{who}_id", f":{who}_shard"
    return f"""INSERT INTO "wallet_wallet" ("id", "user_id", "logical_shard", "balance", "updated_at") \
VALUES (NULL, {uid}, {shard}, 0, now()) ON CONFLICT DO NOTHING;
SELECT {WALLET_COLUMNS} FROM "wallet_wallet" WHERE "wallet_wallet"."user_id" = {uid} LIMIT 21 FOR UPDATE \\gset {prefix}
"""


CLAIM_KEY = f"""INSERT INTO "core_idempotencykey" ("id", "user_id", "logical_shard", "key", "request_hash", \
"status_code", "response", "created_at") VALUES (NULL, :buyer_id, :buyer_shard, 'pgb-' || :item_id, '{REQUEST_HASH}', \
NULL, NULL, now()) ON CONFLICT DO NOTHING;
SELECT {KEY_COLUMNS} FROM "core_idempotencykey" WHERE ("core_idempotencykey"."key" = 'pgb-' || :item_id AND \
"core_idempotencykey"."user_id" = :buyer_id) LIMIT 21;
"""
LOCK_LISTING = f"""SELECT {ITEM_COLUMNS} FROM "catalog_item" WHERE "catalog_item"."id" = :item_id \
ORDER BY "catalog_item"."id" ASC LIMIT 1 FOR UPDATE;
"""
SELL_LISTING = """UPDATE "catalog_item" SET "status" = 'sold', "updated_at" = now(), "sold_at" = now() \
WHERE "catalog_item"."id" = :item_id;
INSERT INTO "catalog_listingevent" ("id", "user_id", "logical_shard", "event_type", "item_id", "payload", \
"created_at", "dispatched_at") VALUES (NULL, :seller_id, :seller_shard, 'listing.sold', :item_id, :q_payload::jsonb, \
now(), NULL) RETURNING "catalog_listingevent"."id";
"""
BUYER_ROWS = """INSERT INTO "catalog_item" ("id", "user_id", "logical_shard", "owner_username", "title", \
"description", "category", "price", "status", "source_item_id", "created_at", "updated_at", "sold_at") \
VALUES (NULL, :buyer_id, :buyer_shard, :q_buyer, :q_title, :q_description, :q_category, :price, 'unlisted', :item_id, \
now(), now(), NULL) RETURNING "catalog_item"."id" AS new_item, "catalog_item"."search_vector" AS new_vector \\gset
INSERT INTO "orders_purchase" ("id", "user_id", "logical_shard", "title", "category", "price", "created_at", \
"item_id", "source_item_id", "seller_id", "seller_username") \
VALUES (NULL, :buyer_id, :buyer_shard, :q_title, :q_category, :price, now(), :new_item, :item_id, :seller_id, \
:q_seller) RETURNING "orders_purchase"."id" AS purchase_id \\gset
"""
SALE_ROW = """INSERT INTO "orders_sale" ("id", "user_id", "logical_shard", "title", "category", "price", "created_at", \
"item_id", "purchase_id", "buyer_id", "buyer_username") VALUES (NULL, :seller_id, :seller_shard, :q_title, \
:q_category, :price, now(), :item_id, :purchase_id, :buyer_id, :q_buyer) RETURNING "orders_sale"."id" AS sale_id \\gset
"""
BUYER_PAYS = """UPDATE "wallet_wallet" SET "balance" = :b_balance - :price, "updated_at" = now() \
WHERE "wallet_wallet"."id" = :b_id;
INSERT INTO "wallet_ledgerentry" ("id", "user_id", "logical_shard", "kind", "amount", "balance_after", "reference_id", \
"created_at") VALUES (NULL, :buyer_id, :buyer_shard, 'purchase', 0 - :price, :b_balance - :price, :purchase_id, now()) \
RETURNING "wallet_ledgerentry"."id";
"""
SELLER_PAID = """UPDATE "wallet_wallet" SET "balance" = :s_balance + :price, "updated_at" = now() \
WHERE "wallet_wallet"."id" = :s_id;
INSERT INTO "wallet_ledgerentry" ("id", "user_id", "logical_shard", "kind", "amount", "balance_after", "reference_id", \
"created_at") VALUES (NULL, :seller_id, :seller_shard, 'sale', :price, :s_balance + :price, :sale_id, now()) \
RETURNING "wallet_ledgerentry"."id";
"""
STORE_RESPONSE = """UPDATE "core_idempotencykey" SET "status_code" = 201, "response" = jsonb_build_object('id', \
:purchase_id::text, 'item_id', :new_item::text, 'source_item_id', :item_id::text, 'price', :price, 'seller', \
jsonb_build_object('id', :seller_id::text, 'username', :q_seller), 'balance', :b_balance - :price) \
WHERE ("core_idempotencykey"."key" = 'pgb-' || :item_id AND "core_idempotencykey"."user_id" = :buyer_id);
"""
BEGIN = "BEGIN;\nSET LOCAL lock_timeout = '2000ms';\n"
PREPARE = """SELECT pg_current_xact_id_if_assigned() IS NOT NULL;
PREPARE TRANSACTION :q_gid;
COMMIT PREPARED :q_gid;
"""


def local_purchase_script():
    return (
        "-- a whole purchase on one worker (see benchmarks/pgbench_baselines.py)\n"
        + _pick("bench_pgbench_pick", "bench_pgbench_pick_seq", "local")
        + BEGIN + CLAIM_KEY + "SAVEPOINT s1;\n" + LOCK_LISTING
        + "\\if :buyer_first\n" + _wallet("buyer", "b_") + _wallet("seller", "s_")
        + "\\else\n" + _wallet("seller", "s_") + _wallet("buyer", "b_") + "\\endif\n"
        + SELL_LISTING + BUYER_ROWS + SALE_ROW + BUYER_PAYS + SELLER_PAID
        + "RELEASE SAVEPOINT s1;\n" + STORE_RESPONSE + "COMMIT;\n"
    )


def seller_half_script():
    return (
        "-- the seller's worker's half of a cross-worker purchase\n"
        + _pick("bench_pgbench_sell", "bench_pgbench_sell_seq", "sell")
        + BEGIN + "SAVEPOINT s1;\n" + LOCK_LISTING + _wallet("seller", "s_") + SELL_LISTING
        # the purchase's id comes from the buyer's worker; any id will do here
        + SALE_ROW.replace(":purchase_id", ":item_id") + SELLER_PAID + "RELEASE SAVEPOINT s1;\n" + PREPARE
    )


def buyer_half_script():
    return (
        "-- the buyer's worker's half of a cross-worker purchase\n"
        + _pick("bench_pgbench_buy", "bench_pgbench_buy_seq", "buy")
        + BEGIN + CLAIM_KEY + "SAVEPOINT s1;\n" + _wallet("buyer", "b_") + BUYER_ROWS + BUYER_PAYS
        + "RELEASE SAVEPOINT s1;\n" + STORE_RESPONSE + PREPARE
    )


DECISION_SCRIPT = """-- the commit point of a cross-worker purchase, on the coordinator (negative ids: removed \
afterwards)
\\set k random(-9000000000000000000, -1)
BEGIN;
SELECT pg_advisory_xact_lock(:k);
INSERT INTO sharding_transaction_decision (txid, participants, created_at) \
VALUES (:k, ARRAY['worker1','worker2'], now());
COMMIT;
"""


def search_script(sql):
    # BEGIN and the statement_timeout in one round trip, as sharding.fanout sends them.
    return ("\\set uid random(1, :nusers)\nBEGIN \\; SET LOCAL statement_timeout = 5000;\n"
            "SET LOCAL pg_trgm.word_similarity_threshold = 0.5;\n" + sql + ";\nCOMMIT;\n")


# Running ---------------------------------------------------------------------


def _connect(config, node):
    from sharding.config import direct_dsn

    connection = psycopg2.connect(**direct_dsn(config, node))
    connection.autocommit = True
    return connection


def _node(config, name):
    return next(node for node in config["nodes"] if node["name"] == name)


def _percentile(values, fraction):
    from benchmarks.search_latency import percentile

    return percentile(values, fraction)


class PgbenchRun:
    """One pgbench process against one node."""

    def __init__(self, config, node, scripts, clients, workdir, label, *, seconds=None, transactions=None,
                 rate=None, defines=()):
        self.label = label
        node_conf = _node(config, node)
        self.log_prefix = str(Path(workdir) / f"pgbench-{label}")
        for old in Path(workdir).glob(f"pgbench-{label}.*"):
            old.unlink()
        command = [PGBENCH, "-n", "-M", "simple", "-c", str(clients), "-j", "1", "-h", node_conf["host"],
                   "-p", str(node_conf["port"]), "-U", config["user"], "-l", "--log-prefix", self.log_prefix]
        command += ["-T", str(int(seconds))] if transactions is None else ["-t", str(int(transactions))]
        if rate:
            command += ["-R", str(rate)]
        for define in defines:
            command += ["-D", define]
        for path, weight in scripts:
            command += ["-f", f"{path}@{weight}"]
        command.append(config["database"])
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, env={**os.environ, "PGPASSWORD": config["password"]},
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait(self):
        output, _ = self.process.communicate()
        wall = time.monotonic() - self.started
        found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
        failed = re.search(r"number of failed transactions: (\d+)", output)
        done = re.search(r"number of transactions actually processed: (\d+)", output)
        aborted = "Run was aborted" in output or self.process.returncode not in (0,)
        latencies = []
        for path in Path(self.log_prefix).parent.glob(Path(self.log_prefix).name + ".*"):
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 6 and parts[2].isdigit():  # "skipped"/"failed" lines have no latency
                    latencies.append(int(parts[2]) / 1000.0)
        latencies.sort()
        return {
            "label": self.label, "tps": float(found.group(1)) if found else 0.0, "wall": wall,
            "transactions": int(done.group(1)) if done else len(latencies),
            "failed": int(failed.group(1)) if failed else 0, "aborted": aborted,
            "p50": _percentile(latencies, 0.50), "p95": _percentile(latencies, 0.95),
            "p99": _percentile(latencies, 0.99),
            "output": output,
        }


def _write(workdir, name, text):
    path = Path(workdir) / name
    path.write_text(text)
    return str(path)


def _listings(connection, exclude_users, limit):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, user_id, logical_shard, owner_username, title, description, category, price FROM catalog_item "
            "WHERE status = 'listed' AND NOT (user_id = ANY(%s)) ORDER BY random() LIMIT %s",
            [list(exclude_users), limit])
        return cursor.fetchall()


def _copy_listings(connection, exclude_users, count):
    """`count` new listed items, copies of existing items (for a pool that would run dry)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM catalog_item WHERE NOT (user_id = ANY(%s))", [list(exclude_users)])
        templates = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO catalog_item (user_id, logical_shard, owner_username, title, description, category, price, "
            "status, created_at, updated_at) "
            "SELECT user_id, logical_shard, owner_username, title, description, category, price, "
            "'listed', now(), now() FROM catalog_item, generate_series(1, %s) copy "
            "WHERE NOT (user_id = ANY(%s)) LIMIT %s "
            "RETURNING id, user_id, logical_shard, owner_username, title, description, category, price",
            [count // max(1, templates) + 1, list(exclude_users), count])
        return cursor.fetchall()


def _payload(row, site="http://127.0.0.1:8000"):
    item_id, user_id, _, username, title, description, category, price = row
    return json.dumps({"id": str(item_id), "title": title, "description": description,
                       "price": f"{price // 100}.{price % 100:02d}", "currency": "USD", "category": category,
                       "seller": {"id": str(user_id), "username": username}, "status": "sold",
                       "link": f"{site}/items/{item_id}/"})


PICK_COLUMNS = ("n", "item_id", "seller_id", "seller_shard", "seller_username", "buyer_id", "buyer_shard",
                "buyer_username", "title", "description", "category", "price", "payload", "buyer_first")


def _pick_rows(listings, buyers, start):
    rows = []
    for offset, row in enumerate(listings):
        buyer = buyers[(start + offset) % len(buyers)]
        item_id, user_id, shard, username, title, description, category, price = row
        rows.append((start + offset + 1, item_id, user_id, shard, username, buyer["user_id"], buyer["shard"],
                     buyer["username"], title, description, category, price, _payload(row), buyer["user_id"] < user_id))
    return rows


def _create_pick(connection, table):
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}; DROP SEQUENCE IF EXISTS {table}_seq")
        cursor.execute(f"""CREATE TABLE {table} (n bigint PRIMARY KEY, item_id bigint NOT NULL, seller_id bigint,
            seller_shard int, seller_username text, buyer_id bigint, buyer_shard int, buyer_username text, title text,
            description text, category text, price bigint, payload text, buyer_first boolean);
            CREATE SEQUENCE {table}_seq""")


def _fill_pick(connection, table, rows):
    from psycopg2.extras import execute_values

    with connection.cursor() as cursor:
        execute_values(cursor, f"INSERT INTO {table} ({', '.join(PICK_COLUMNS)}) VALUES %s", rows, page_size=1000)
        cursor.execute(f"ANALYZE {table}")


def _drop_pick(connection, table):
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}; DROP SEQUENCE IF EXISTS {table}_seq")


def _used(connection, table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_value, is_called FROM {table}_seq")
        value, called = cursor.fetchone()
        return value if called else 0


def _combine(kind, parts, combine_rate, combine_latency, note):
    return {
        "kind": kind, "rps": combine_rate([p["tps"] for p in parts]),
        "p50": combine_latency([p["p50"] or 0 for p in parts]),
        "p95": combine_latency([p["p95"] or 0 for p in parts]),
        "p99": combine_latency([p["p99"] or 0 for p in parts]),
        "requests": sum(p["transactions"] for p in parts),
        "errors": sum(p["failed"] for p in parts) + sum(1 for p in parts if p["aborted"]),
        "parts": [{k: v for k, v in p.items() if k != "output"} for p in parts],
        "note": note,
    }


def _report_failures(parts, log):
    for part in parts:
        if part["aborted"] or part["failed"]:
            log(f"   pgbench {part['label']}: {part['failed']} failed, aborted={part['aborted']}; output:\n"
                + "\n".join("      " + line for line in part["output"].splitlines()[:6]))


def purchase_local(config, prep, workers, *, clients, warmup, seconds, workdir, log=print):
    """Local purchases on every worker at once; purchases/s summed."""
    script = _write(workdir, "purchase_local.sql", local_purchase_script())
    sessions = {w: _connect(config, w) for w in workers}
    buyers = {w: [s for s in prep["slots"] if s["node"] == w] for w in workers}
    try:
        for w in workers:
            _create_pick(sessions[w], "bench_pgbench_pick")
            listings = _listings(sessions[w], [b["user_id"] for b in buyers[w]], 200_000)
            _fill_pick(sessions[w], "bench_pgbench_pick", _pick_rows(listings, buyers[w], 0))
            missing = WARMUP_RATE_GUESS * warmup - len(listings)
            if missing > 0:  # enough for the warm-up at any rate this machine can reach
                copies = _copy_listings(sessions[w], [b["user_id"] for b in buyers[w]], missing)
                _fill_pick(sessions[w], "bench_pgbench_pick", _pick_rows(copies, buyers[w], len(listings)))
        available = {w: _pick_size(sessions[w], "bench_pgbench_pick") for w in workers}
        runs = [
            PgbenchRun(config, w, [(script, 1)], clients, workdir, f"local-warmup-{w}", seconds=warmup) for w in workers
        ]
        warm = [run.wait() for run in runs]
        _report_failures(warm, log)
        planned = {}
        for w, part in zip(workers, warm, strict=True):
            used = _used(sessions[w], "bench_pgbench_pick")
            rate = max(part["tps"], 1.0)
            want = int(rate * seconds * 1.1) + clients
            per_client = max(1, want // clients)
            missing = used + per_client * clients - available[w]
            if missing > 0:
                log(f"   {w}: {missing} more listings for pgbench's pool (copies of existing ones)")
                copies = _copy_listings(sessions[w], [b["user_id"] for b in buyers[w]], missing + clients)
                _fill_pick(sessions[w], "bench_pgbench_pick", _pick_rows(copies, buyers[w], available[w]))
            planned[w] = per_client
        runs = [
            PgbenchRun(config, w, [(script, 1)], clients, workdir, f"local-{w}", transactions=planned[w])
            for w in workers
        ]
        parts = [run.wait() for run in runs]
        _report_failures(parts, log)
    finally:
        for w in workers:
            _drop_pick(sessions[w], "bench_pgbench_pick")
            sessions[w].close()
    note = (f"{len(workers)} pgbench at once (one per worker, {clients} clients each), whole purchases in one local "
            "transaction; purchases/s = sum")
    return _combine("purchase-local", parts, sum, max, note)


def _pick_size(connection, table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def purchase_2pc(config, prep, workers, *, clients, warmup, seconds, workdir, log=print):
    """Cross-worker purchases cut in per-node halves (see the module's docstring)."""
    a, b = workers[:2]
    sell_script = _write(workdir, "purchase_2pc_seller.sql", seller_half_script())
    buy_script = _write(workdir, "purchase_2pc_buyer.sql", buyer_half_script())
    decision_script = _write(workdir, "purchase_2pc_decision.sql", DECISION_SCRIPT)
    sessions = {w: _connect(config, w) for w in (a, b)}
    coordinator = _connect(config, "coordinator")
    buyers = {w: [s for s in prep["slots"] if s["node"] == w] for w in (a, b)}
    other = {a: b, b: a}
    everyone = [s["user_id"] for s in prep["slots"]]
    try:
        # bench_pgbench_sell on X: listings of X bought by buyers of the other worker;
        # bench_pgbench_buy on X: the other worker's sell rows (X's buyers buy them).
        rows = {}
        for w in (a, b):
            for table in ("bench_pgbench_sell", "bench_pgbench_buy"):
                _create_pick(sessions[w], table)
            # A listing whose buyer half ran in an earlier run (the halves are not coordinated) has
            # its purchase on the other worker already: leave it out.
            with sessions[other[w]].cursor() as cursor:
                cursor.execute("SELECT source_item_id FROM orders_purchase WHERE source_item_id IS NOT NULL")
                bought = {row[0] for row in cursor.fetchall()}
            listings = [row for row in _listings(sessions[w], everyone, 200_000) if row[0] not in bought]
            rows[w] = _pick_rows(listings, buyers[other[w]], 0)
        for w in (a, b):
            missing = WARMUP_RATE_GUESS * warmup - len(rows[w])
            if missing > 0:  # enough for the warm-up at any rate this machine can reach
                rows[w] += _pick_rows(_copy_listings(sessions[w], everyone, missing), buyers[other[w]], len(rows[w]))
        for w in (a, b):
            _fill_pick(sessions[w], "bench_pgbench_sell", rows[w])
            _fill_pick(sessions[other[w]], "bench_pgbench_buy", rows[w])
        size = {w: len(rows[w]) for w in (a, b)}
        scripts = [(sell_script, 1), (buy_script, 1)]
        runs = [PgbenchRun(config, w, scripts, clients, workdir, f"2pc-warmup-{w}", seconds=warmup) for w in (a, b)]
        warm = [run.wait() for run in runs]
        _report_failures(warm, log)
        purchase_rate = sum(p["tps"] for p in warm) / 2
        per_client = {}
        for w, part in zip((a, b), warm, strict=True):
            want = int(max(part["tps"], 1.0) * seconds * 1.1) + clients
            per_client[w] = max(1, want // clients)
        for w in (a, b):
            # Either table may serve every transaction of a worker (a script is drawn at random each time).
            need = max(_used(sessions[w], "bench_pgbench_sell"), _used(sessions[other[w]], "bench_pgbench_buy")) \
                + max(per_client[w], per_client[other[w]]) * clients
            missing = need - size[w]
            if missing > 0:
                log(f"   {w}: {missing} more listings for pgbench's pool (copies of existing ones)")
                copies = _copy_listings(sessions[w], everyone, missing + clients)
                extra = _pick_rows(copies, buyers[other[w]], size[w])
                _fill_pick(sessions[w], "bench_pgbench_sell", extra)
                _fill_pick(sessions[other[w]], "bench_pgbench_buy", extra)
        runs = [
            PgbenchRun(config, w, scripts, clients, workdir, f"2pc-{w}", transactions=per_client[w]) for w in (a, b)
        ]
        runs.append(PgbenchRun(config, "coordinator", [(decision_script, 1)], 1, workdir, "2pc-decision",
                               seconds=seconds, rate=max(1, int(purchase_rate))))
        parts = [run.wait() for run in runs]
        _report_failures(parts, log)
    finally:
        # The halves ran independently: a listing whose buyer half committed but whose seller
        # half did not is still listed, with a purchase on the other worker. Close it, so that
        # later runs on this cluster do not try to sell it again.
        for w in (a, b):
            try:
                with sessions[other[w]].cursor() as cursor:
                    cursor.execute("SELECT item_id FROM bench_pgbench_buy WHERE n <= %s",
                                   [_used(sessions[other[w]], "bench_pgbench_buy")])
                    bought = [row[0] for row in cursor.fetchall()]
                with sessions[w].cursor() as cursor:
                    cursor.execute("UPDATE catalog_item SET status = 'sold', sold_at = now() "
                                   "WHERE id = ANY(%s) AND status = 'listed'", [bought])
            except psycopg2.Error as exc:
                log(f"   {w}: could not close half-sold listings: {exc}")
        for w in (a, b):
            for table in ("bench_pgbench_sell", "bench_pgbench_buy"):
                _drop_pick(sessions[w], table)
            sessions[w].close()
        with coordinator.cursor() as cursor:
            cursor.execute("DELETE FROM sharding_transaction_decision WHERE txid < 0")
        coordinator.close()
    halves, decision = parts[:2], parts[2]
    result = _combine("purchase-2pc", halves, lambda rates: sum(rates) / 2, max,
                      f"one pgbench per worker ({clients} clients each) running seller and buyer halves "
                      f"(PREPARE TRANSACTION + COMMIT PREPARED), plus the decision records on the coordinator "
                      f"at {decision['tps']:.0f}/s; purchases/s = halves/s / 2; latency of one half")
    result["parts"].append({k: v for k, v in decision.items() if k != "output"})
    return result


def search(config, prep, workers, *, clients, warmup, seconds, workdir, users, log=print):
    """The per-worker search SQL on every worker at once; searches/s = the slowest worker's."""
    scripts = []
    for index, (text, sql) in enumerate(sorted(prep["search_sql"].items())):
        scripts.append((_write(workdir, f"search_{index:02d}.sql", f"-- q={text}\n" + search_script(sql)), 1))
    defines = [f"nusers={users}"]
    runs = [PgbenchRun(config, w, scripts, clients, workdir, f"search-warmup-{w}", seconds=warmup, defines=defines)
            for w in workers]
    _report_failures([run.wait() for run in runs], log)
    runs = [PgbenchRun(config, w, scripts, clients, workdir, f"search-{w}", seconds=seconds, defines=defines)
            for w in workers]
    parts = [run.wait() for run in runs]
    _report_failures(parts, log)
    note = (f"{len(workers)} pgbench at once (one per worker, {clients} clients each), "
            f"{len(scripts)} search texts; searches/s = the slowest worker's, percentiles the highest")
    return _combine("search", parts, min, max, note)


TRANSFER_TABLE = "bench_transfer_account"


def _per_client(values):
    """A pgbench expression worth values[:client_id]."""
    return "CASE " + " ".join(f"WHEN :client_id = {i} THEN {v}" for i, v in enumerate(values)) + " ELSE -1 END"


def transfer_script(pairs):
    """Client i debits account 2i+1 (logical shard pairs[i][0]) and credits 2i+2 (pairs[i][1])."""
    return (
        "-- a transfer through the Citus coordinator (see benchmarks/pgbench_baselines.py)\n"
        "\\set src 2 * :client_id + 1\n\\set dst 2 * :client_id + 2\n"
        f"\\set src_shard {_per_client([a for a, _ in pairs])}\n"
        f"\\set dst_shard {_per_client([b for _, b in pairs])}\n"
        f"BEGIN;\nUPDATE {TRANSFER_TABLE} SET balance = balance - 1 "
        "WHERE id = :src AND logical_shard = :src_shard AND balance >= 1;\n"
        f"UPDATE {TRANSFER_TABLE} SET balance = balance + 1 WHERE id = :dst AND logical_shard = :dst_shard;\n"
        "COMMIT;\n"
    )


def transfer_pairs(shard_groups, clients, cross):
    """(source shard, target shard) per client: both in one group (Citus worker), or one in each, both ways."""
    groups = [sorted(int(s) for s, g in shard_groups.items() if g == group) for group in (1, 2)]
    pairs = []
    for i in range(clients):
        here, there = groups[i % 2], groups[1 - i % 2]
        k = i // 2
        pairs.append((here[k % len(here)], there[k % len(there)]) if cross
                     else (here[2 * k % len(here)], here[(2 * k + 1) % len(here)]))
    return pairs


def citus_transfer(config, prep, *, cross, clients, warmup, seconds, workdir, log=print):
    """Transfers per second through the Citus coordinator, between accounts on one Citus worker or on two."""
    pairs = transfer_pairs(prep["shard_groups"], clients, cross)
    kind = "cross" if cross else "same"
    script = _write(workdir, f"transfer_citus_{kind}.sql", transfer_script(pairs))
    coordinator = _connect(config, "coordinator")
    try:
        with coordinator.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TRANSFER_TABLE}")
            # smallint: the type of logical_shard in the tables it is colocated with (Citus requires the same).
            cursor.execute(f"CREATE TABLE {TRANSFER_TABLE} (id bigint, logical_shard smallint, "
                           "balance bigint NOT NULL CHECK (balance >= 0), PRIMARY KEY (id, logical_shard))")
            cursor.execute("SELECT create_distributed_table(%s, 'logical_shard', colocate_with => 'catalog_item')",
                           [TRANSFER_TABLE])
            cursor.execute(f"INSERT INTO {TRANSFER_TABLE} VALUES " + ", ".join(["(%s, %s, 1000000000)"] * 2 * clients),
                           [v for i, (a, b) in enumerate(pairs) for v in (2 * i + 1, a, 2 * i + 2, b)])
        warm = PgbenchRun(config, "coordinator", [(script, 1)], clients, workdir, f"transfer-{kind}-warmup",
                          seconds=warmup).wait()
        part = PgbenchRun(config, "coordinator", [(script, 1)], clients, workdir, f"transfer-{kind}",
                          seconds=seconds).wait()
        _report_failures([warm, part], log)
    finally:
        with coordinator.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TRANSFER_TABLE}")
        coordinator.close()
    where = "two Citus workers (its two-phase commit)" if cross else "one Citus worker (one local transaction there)"
    return _combine(f"transfer-{kind}", [part], sum, max,
                    f"pgbench ({clients} clients) at the Citus coordinator, two UPDATEs in one transaction between "
                    f"accounts on {where}; logical shards {', '.join(f'{a}→{b}' for a, b in pairs)}")
