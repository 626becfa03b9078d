"""The load benchmark: the API under Locust on fresh clusters, with its baselines, in one run.

    .venv/bin/python -m benchmarks.run_bench [--duration 30] [--warmup 10] [--users 16]
        [--gunicorn-workers 4] [--gunicorn-threads 2] [--seed-users 10000] [--items 112000]
        [--scenarios purchase-single,...] [--configs main,direct,1w,citus] [--results-name bench-latest]

(or `make bench`, which runs every configuration). Steps:

1. destroys and recreates three clusters with the cluster tool, `bench2w` (2 workers),
   `bench1w` (1 worker) and `benchcitus` (`cluster up --engine citus --workers 2`: a
   Citus coordinator and 2 Citus workers), migrates them and seeds each with the same
   deterministic data (`seed_demo --users 10000 --items 112000 --sales 0 --seed 11`:
   100,622 listings), then checks that all hold the same rows and runs VACUUM ANALYZE
   (benchmarks.search_latency's helpers; on Citus they ask the coordinator once);
2. prepares each (benchmarks.load_prep): API tokens, money and partner keys for the
   locust users, and the captured search SQL for pgbench. The users' groups (the worker
   each is on) are bench2w's on bench2w and bench1w, and on benchcitus the Citus worker
   holding the user's logical shard, so that a same-worker purchase there is a
   transaction on one Citus worker and a cross-worker one Citus's two-phase commit;
3. for each configuration, `2 workers, pgbouncer` (the main one), `2 workers, direct`
   (DB_DIRECT=1: the cost of pgbouncer), `1 worker, pgbouncer` (the cost of sharding)
   and `Citus, 2 workers, pgbouncer` (SHARDING engine citus, the app's connections to
   the coordinator's pgbouncer; its baseline is the main configuration): serves the app
   with gunicorn (production settings, DEBUG off) and `manage.py maintenance` beside it,
   and runs every scenario of benchmarks/locustfile.py headless: a warm-up run whose
   figures are thrown away, then the measured run. Before each run every locust user
   gets fresh pools of listings to buy;
4. baselines on each cluster (benchmarks.pgbench_baselines): with pgbench, the SQL of a
   search, of a local purchase and (2 workers) of a cross-worker purchase with two-phase
   commit; on bench2w our raw transfers as `make bench-2pc` measures them
   (benchmarks.twopc_transfers); on benchcitus the same two-UPDATE transfers with
   pgbench at the Citus coordinator, between accounts on one Citus worker and on two;
5. writes benchmarks/results/bench-latest.md and bench-latest.csv (--results-name: other
   names, for trial runs) and stops the clusters (data kept: `python -m cluster destroy
   --name bench2w --yes` frees the disk).

--configs measures a subset: `--configs main,citus` is our main configuration against
Citus (bench1w is made only for `1w`; it takes bench2w's groups, so bench2w is made
and prepared with it). Targets that need a configuration not measured say so.

Load-generator CPU is the CPU time (user + system) of the locust process over the
wall time of the measured run, in % of one core; server CPU the same for every gunicorn
process; machine CPU the share of all cores busy (everything: nodes, pgbouncers,
gunicorn, locust).
"""
import argparse
import csv
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import psutil

from benchmarks import UNTHROTTLED_ENV
from benchmarks.search_latency import _check_and_analyze, _worker_sessions
from cluster.config import config_path, load_config

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
LOCUSTFILE = REPO / "benchmarks" / "locustfile.py"
BIN = Path(sys.executable).parent

# name -> (workers, engine)
CLUSTERS = {"bench2w": (2, "own"), "bench1w": (1, "own"), "benchcitus": (2, "citus")}
# (scenario, locust class, what it does)
SCENARIOS = [
    ("browse", "Browse",
     "GET listings: newest, a category, a price sort within a category and price range; 30% follow the next page"),
    ("search", "Search",
     "GET listings?q=: one or two words of the demo vocabulary or a typo, by relevance (a quarter by price)"),
    ("item-detail", "ItemDetail", "GET items/{id} of a random listing"),
    ("deposit", "Deposit", "POST wallet/deposits with an Idempotency-Key"),
    ("purchase-single", "PurchaseSameWorker",
     "POST purchases: buyer and seller on the same worker (one local transaction)"),
    ("purchase-cross", "PurchaseCrossWorker",
     "POST purchases: buyer and seller on different workers (two-phase commit)"),
    ("partner-feed", "PartnerFeed",
     "GET partner/v1/products?page_size=100, following the cursor (a full sync, then again)"),
    ("mix", "Mix",
     "30% browse, 20% search, 30% item pages, 5% balance, 5% deposits, 10% purchases (half cross-worker)"),
]
PURCHASING = {"purchase-single", "purchase-cross", "mix"}
# (key for --configs, name, cluster, DB_DIRECT)
CONFIGS = [
    ("main", "2 workers, pgbouncer", "bench2w", False),
    ("direct", "2 workers, direct", "bench2w", True),
    ("1w", "1 worker, pgbouncer", "bench1w", False),
    ("citus", "Citus, 2 workers, pgbouncer", "benchcitus", False),
]
MAIN, DIRECT, ONE, CITUS = (name for _, name, _, _ in CONFIGS)
# The raw transfers: ours as `make bench-2pc` measures them, Citus's with pgbench (benchmarks.pgbench_baselines).
TRANSFER_SAME, TRANSFER_CROSS = "transfer (same worker)", "transfer (cross-worker)"
OURS_2PC, CITUS_PGBENCH = "bench-2pc, 2 workers", "pgbench, Citus 2 workers"
# A cross-worker baseline row -> its same-worker row (on the same cluster, by the same tool): the ratio cross / same.
SAME_OF = {"pgbench purchase (2PC)": "pgbench purchase (local)", TRANSFER_CROSS: TRANSFER_SAME}
POOL_CAP = 4000  # listings per locust user and kind


def log(message=""):
    print(message, flush=True)


def run(command, env=None, **kwargs):
    subprocess.run(command, cwd=REPO, env={**os.environ, **(env or {})}, check=True, **kwargs)


def cluster(command, name, *extra):
    run([sys.executable, "-m", "cluster", command, "--name", name, *extra])


def manage(name, *args, env=None):
    run([sys.executable, "manage.py", *args], env={"CLUSTER_NAME": name, **(env or {})})


# Machine ---------------------------------------------------------------------


def machine_info():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pg = subprocess.run(["/usr/bin/pgbench", "--version"], capture_output=True, text=True).stdout.strip()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                               text=True).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "cpu": cpu, "cores": psutil.cpu_count(logical=True),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(), "python": platform.python_version(),
        "postgres": _postgres_version(), "pgbench": pg,
        "load_before": os.getloadavg(),
    }


def _postgres_version():
    bindir = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
    try:
        return subprocess.run([f"{bindir}/postgres", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


# Clusters --------------------------------------------------------------------


def fresh_clusters(args, names):
    checks = {}
    for name in names:
        workers, engine = CLUSTERS[name]
        log(f"== {name}: fresh cluster with {workers} worker(s), engine {engine}")
        if config_path(name).exists():
            cluster("destroy", name, "--yes")
        cluster("up", name, "--workers", str(workers), "--engine", engine)
        manage(name, "migrate_cluster")
        log(f"== {name}: seed {args.seed_users} users and {args.items} items (seed {args.data_seed})")
        manage(name, "seed_demo", "--users", str(args.seed_users), "--items", str(args.items), "--sales", "0",
               "--seed", str(args.data_seed))
        log(f"== {name}: VACUUM ANALYZE and check the rows")
        checks[name] = _check_and_analyze(name)
    if len(set(checks.values())) != 1:
        raise SystemExit(f"the clusters do not hold the same rows: {checks} (items, listed, sum of prices, checksum)")
    items, listed, _, _ = checks[names[0]]
    log(f"== same rows on {', '.join(names)}: {items} items, {listed} listed")
    if listed < 100_000:
        log(f"warning: {listed} listings, fewer than the 100,000 the benchmark is meant for")
    return items, listed


def _worker_connections(name):
    """{worker: a connection straight to it}, as the app sees the workers: on Citus, the coordinator once."""
    return dict(_worker_sessions(name))


def listed_items(name):
    """[(id, user_id, price)] of every listed item of the cluster."""
    rows = []
    for connection in _worker_connections(name).values():
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, user_id, price FROM catalog_item WHERE status = 'listed'")
            rows.extend(cursor.fetchall())
        connection.close()
    return rows


def run_data(prep, name, scenario, rng, worker_after=None):
    """What the locust users of one run need: the prep, item ids to look at, and pools of listings to buy.

    A "same" purchase is between users of one worker, a "cross" one between users of two. With worker_after
    (shard -> the worker it will be on, for the rebalance benchmark) that holds both before and after the
    moves, so the mix of one-worker and two-phase purchases does not change as shards move.
    """
    listings = listed_items(name)
    data = {key: prep[key] for key in ("slots", "partner_keys", "categories")}
    if scenario in PURCHASING:
        from sharding.ids import shard_of_id

        def place(group, shard):
            return (group, worker_after[shard]) if worker_after else (group,)

        slot_users = {slot["user_id"] for slot in prep["slots"]}
        by_place = {}
        for item_id, user_id, price in listings:
            group = prep["groups"].get(str(user_id))
            if group and user_id not in slot_users:
                by_place.setdefault(place(group, shard_of_id(item_id)), []).append((item_id, price))
        pools = {str(slot["slot"]): {"same": [], "cross": []} for slot in prep["slots"]}
        for where, items in sorted(by_place.items()):
            rng.shuffle(items)
            half = len(items) // 2
            for kind, share in (("same", items[:half]), ("cross", items[half:])):
                # same: slots placed where the sellers are; cross: slots placed elsewhere every time.
                takers = [s for s in prep["slots"] if (
                    place(s["group"], s["shard"]) == where if kind == "same"
                    else all(a != b for a, b in zip(place(s["group"], s["shard"]), where, strict=True)))]
                per_slot = min(POOL_CAP, len(share) // max(1, len(takers)))
                for index, slot in enumerate(takers):
                    pools[str(slot["slot"])][kind] += [
                        [str(i), p] for i, p in share[index * per_slot:(index + 1) * per_slot]
                    ]
        data["pools"] = pools
    # Items to look at: listings no locust user of this run will buy (a sold item is a 404 to others).
    to_buy = {item_id for pool in data.get("pools", {}).values() for kind in pool.values() for item_id, _ in kind}
    viewable = [item_id for item_id, _, _ in listings if str(item_id) not in to_buy]
    data["items"] = [str(item_id) for item_id in rng.sample(viewable, min(5000, len(viewable)))]
    return data


# The app server --------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn serving app.wsgi on a free port, and the maintenance loop beside it."""

    def __init__(self, name, direct, args, workdir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "CLUSTER_NAME": name, "DB_DIRECT": "1" if direct else "0",
            "MARKETPLACE_ENV": "production", "DJANGO_SETTINGS_MODULE": "app.settings",
            "DJANGO_SECRET_KEY": "benchmark-only-secret-key-" + "x" * 40,
            "DJANGO_SECURE_SSL_REDIRECT": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            # Partner keys are rate limited to 60/min by default: the feed scenario would measure 429s.
            "PARTNER_RATE_LIMIT": "100000000/min", "SITE_URL": self.url,
            # Likewise every user's and address's limits: 16 Locust users on one address would meet them at once.
            **UNTHROTTLED_ENV,
        }
        self.log_path = Path(workdir) / f"gunicorn-{name}-{'direct' if direct else 'pgbouncer'}.log"
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "app.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(args.gunicorn_workers), "--threads", str(args.gunicorn_threads),
             "--worker-class", "gthread", "--timeout", "120", "--graceful-timeout", "10", "--log-level", "warning"],
            cwd=REPO, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.maintenance = subprocess.Popen([sys.executable, "manage.py", "maintenance"], cwd=REPO, env=self.env,
                                            stdout=self.log_file, stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited: see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/health/", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"gunicorn did not become healthy in 60s: see {self.log_path}")

    def cpu_seconds(self):
        total = 0.0
        try:
            master = psutil.Process(self.process.pid)
            for process in [master, *master.children(recursive=True)]:
                try:
                    times = process.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
        return total

    def stop(self):
        for process in (self.maintenance, self.process):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.maintenance, self.process):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log_file.close()


# Locust ----------------------------------------------------------------------


def locust(server, locust_class, data, seconds, args, workdir, label):
    """One headless locust run; returns its figures (or None for a warm-up)."""
    return finish_locust(start_locust(server, locust_class, data, seconds, args, workdir, label))


def start_locust(server, locust_class, data, seconds, args, workdir, label, locustfile=LOCUSTFILE, env=None):
    """Start headless locust in the background; with `seconds=None` it has no time limit: the locustfile stops it."""
    data_path = Path(workdir) / f"{label}.data.json"
    counters_path = Path(workdir) / f"{label}.counters.json"
    csv_prefix = Path(workdir) / label
    data_path.write_text(json.dumps(data))
    counters_path.unlink(missing_ok=True)
    run_time = ["--run-time", f"{seconds}s"] if seconds is not None else ["--stop-timeout", "60"]
    command = [str(BIN / "locust"), "-f", str(locustfile), "--headless", "-u", str(args.users), "-r", str(args.users),
               *run_time, "--host", server.url, "--csv", str(csv_prefix), "--only-summary",
               "--loglevel", "WARNING", "--exit-code-on-error", "0", locust_class]
    env = {**os.environ, "BENCH_DATA": str(data_path), "BENCH_COUNTERS": str(counters_path),
           "PYTHONPATH": str(REPO), "BENCH_WAIT": str(args.wait), **(env or {})}
    output_path = Path(workdir) / f"{label}.locust.log"
    output = open(output_path, "w")
    cpu_before, server_before = psutil.cpu_times(), server.cpu_seconds()
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    return {"process": process, "output": output, "output_path": output_path, "csv_prefix": csv_prefix,
            "counters_path": counters_path, "locust_class": locust_class, "server": server, "started": started,
            "cpu_before": cpu_before, "server_before": server_before}


def finish_locust(run):
    """Wait for a locust run to end; returns its figures."""
    process, server, csv_prefix, output_path = run["process"], run["server"], run["csv_prefix"], run["output_path"]
    counters_path, locust_class, started = run["counters_path"], run["locust_class"], run["started"]
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    run["output"].close()
    wall = time.monotonic() - started
    server_cpu = server.cpu_seconds() - run["server_before"]
    cpu_after, cpu_before = psutil.cpu_times(), run["cpu_before"]
    busy = _busy(cpu_after) - _busy(cpu_before)
    total = sum(cpu_after) - sum(cpu_before)
    stats_path = Path(f"{csv_prefix}_stats.csv")
    if process.returncode != 0 or not stats_path.exists():
        raise SystemExit(f"locust {locust_class} failed (exit {process.returncode}): see {output_path}")
    with open(stats_path) as f:
        rows = list(csv.DictReader(f))
    counters = json.loads(counters_path.read_text()) if counters_path.exists() else {}
    aggregated = next(row for row in rows if row["Name"] == "Aggregated")
    return {
        "rps": float(aggregated["Requests/s"]), "p50": _ms(aggregated["50%"]), "p95": _ms(aggregated["95%"]),
        "p99": _ms(aggregated["99%"]), "requests": int(aggregated["Request Count"]),
        "errors": int(aggregated["Failure Count"]), "expected_409": counters.get("expected_409", 0),
        "pool_exhausted": counters.get("pool_exhausted", 0),
        "failures_by_status": counters.get("failures_by_status", {}),
        "loadgen_cpu": 100.0 * (usage.ru_utime + usage.ru_stime) / wall,
        "server_cpu": 100.0 * server_cpu / wall,
        "machine_cpu": 100.0 * busy / total if total else None,
        "by_name": [{"name": row["Name"], "requests": int(row["Request Count"]), "rps": float(row["Requests/s"]),
                     "p50": _ms(row["50%"]), "p99": _ms(row["99%"])} for row in rows if row["Name"] != "Aggregated"],
        "wall": wall,
    }


def _ms(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _busy(times):
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def measure_config(config_name, name, direct, prep, args, workdir, rng):
    results = []
    log(f"== {config_name}: gunicorn ({args.gunicorn_workers} workers x {args.gunicorn_threads} threads) on cluster "
        f"{name}{' with DB_DIRECT=1' if direct else ''}")
    server = Server(name, direct, args, workdir)
    try:
        for scenario, locust_class, _ in SCENARIOS:
            if args.scenarios and scenario not in args.scenarios:
                continue
            label = f"{name}-{'direct' if direct else 'pgbouncer'}-{scenario}"
            log(f"   {scenario}: warm-up {args.warmup}s ...")
            locust(server, locust_class, run_data(prep, name, scenario, rng), args.warmup, args, workdir,
                   label + "-warmup")
            log(f"   {scenario}: measuring {args.duration}s ...")
            figures = locust(server, locust_class, run_data(prep, name, scenario, rng), args.duration, args, workdir,
                             label)
            figures.update(scenario=scenario, config=config_name)
            results.append(figures)
            log(f"   {scenario}: {figures['rps']:.1f} req/s, p50/p95/p99 {_fmt(figures['p50'])}/{_fmt(figures['p95'])}/"
                f"{_fmt(figures['p99'])} ms, {figures['requests']} requests, {figures['errors']} errors, "
                f"{figures['expected_409']} expected 409s, locust CPU {figures['loadgen_cpu']:.0f}%, "
                f"gunicorn CPU {figures['server_cpu']:.0f}%, machine {figures['machine_cpu']:.0f}% busy")
            if figures["errors"]:
                log(f"      failures by status: {figures['failures_by_status']} (see {workdir}/{label}_failures.csv)")
            if figures["pool_exhausted"]:
                log(f"      warning: locust users ran out of listings {figures['pool_exhausted']} times")
    finally:
        server.stop()
    return results


# pgbench ----------------------------------------------------------------------


def pgbench_baselines(name, prep, args, workdir):
    """The baseline rows of one cluster: pgbench, and on our 2-worker cluster our raw transfers too."""
    from benchmarks import pgbench_baselines as pb

    config = load_config(name)
    workers = [node["name"] for node in config["nodes"] if node["role"] == "worker"]
    options = dict(clients=args.pgbench_clients, warmup=min(args.warmup, 5), seconds=args.duration, workdir=workdir,
                   log=lambda m: log(m))
    citus = CLUSTERS[name][1] == "citus"
    if citus:
        label, clients = CITUS_PGBENCH, f"{args.pgbench_clients} clients at the coordinator"
        steps = [(TRANSFER_SAME, lambda: pb.citus_transfer(config, prep, cross=False, **options)),
                 (TRANSFER_CROSS, lambda: pb.citus_transfer(config, prep, cross=True, **options))]
    else:
        label = f"pgbench, {len(workers)} worker{'s' if len(workers) > 1 else ''}"
        clients = f"{args.pgbench_clients} clients per worker"
        steps = [("pgbench search", lambda: pb.search(config, prep, workers, users=args.seed_users + 2, **options)),
                 ("pgbench purchase (local)", lambda: pb.purchase_local(config, prep, workers, **options))]
        if len(workers) >= 2:
            steps.append(("pgbench purchase (2PC)", lambda: pb.purchase_2pc(config, prep, workers, **options)))
    out = []
    for scenario, step in steps:  # search first: the purchase pools add listings
        log(f"== {name}: {scenario} ({clients}, {options['warmup']}s warm-up, about {args.duration}s) ...")
        result = step()
        result.update(scenario=scenario, config=label)
        out.append(_logged(result))
    if len(workers) >= 2 and not citus:
        out += our_transfers(name, args, workdir)
    return out


def our_transfers(name, args, workdir):
    """Our same-worker and two-phase-commit transfers as `make bench-2pc` measures them (benchmarks.twopc_transfers)."""
    path = Path(workdir) / f"transfers-{name}.json"
    warmup = min(args.warmup, 5)
    log(f"== {name}: transfers, same worker and cross-worker (benchmarks.twopc_transfers, {args.pgbench_clients} "
        f"threads, {warmup}s warm-up, {args.duration}s each) ...")
    run([sys.executable, "-m", "benchmarks.twopc_transfers", "--threads", str(args.pgbench_clients),
         "--seconds", str(args.duration), "--warmup", str(warmup), "--json", str(path)], env={"CLUSTER_NAME": name},
        stdout=subprocess.DEVNULL)
    figures = json.loads(path.read_text())
    how = {"same-worker": "one local transaction on a worker", "cross-worker": "our two-phase commit over two workers"}
    return [
        _logged({"scenario": scenario, "config": OURS_2PC, "rps": figures[mode]["per_second"], "p50": None,
                 "p95": None, "p99": None, "requests": figures[mode]["transfers"], "errors": 0,
                 "note": f"benchmarks.twopc_transfers (`make bench-2pc`): {args.pgbench_clients} threads of one Python "
                         f"process, through pgbouncer, two UPDATEs in atomic_on_nodes: {how[mode]}"})
        for scenario, mode in ((TRANSFER_SAME, "same-worker"), (TRANSFER_CROSS, "cross-worker"))
    ]


def _logged(result):
    """A baseline row, logged, with the app's columns empty."""
    result.update(loadgen_cpu=None, server_cpu=None, machine_cpu=None, expected_409=0)
    log(f"   {result['rps']:.1f}/s, p50/p95/p99 {_fmt(result['p50'])}/{_fmt(result['p95'])}/{_fmt(result['p99'])} ms, "
        f"{result['requests']} transactions, {result['errors']} errors")
    return result


def is_baseline(row):
    """pgbench's rows and our raw transfers: no locust, no gunicorn."""
    return row["config"].startswith("pgbench") or row["config"] == OURS_2PC


# Report ----------------------------------------------------------------------


def _fmt(value, digits=None):
    if value is None:
        return "—"
    if digits is not None:
        return f"{value:.{digits}f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


DB_LIMIT = {"search": "pgbench search", "purchase-single": "pgbench purchase (local)"}


def attach_baselines(rows):
    """Each row's baseline (name, rps ratio, p99 ratio) and its ratio to the database limit."""
    index = {(row["scenario"], row["config"]): row for row in rows}

    def db_limit(row):
        if row["config"] == CITUS:  # no pgbench of the app's SQL on Citus
            return None
        workers = "1 worker" if row["config"] == ONE else "2 workers"
        scenario = row["scenario"]
        if scenario == "purchase-cross":
            name = "pgbench purchase (2PC)" if workers == "2 workers" else "pgbench purchase (local)"
        else:
            name = DB_LIMIT.get(scenario)
        return index.get((name, f"pgbench, {workers}")) if name else None

    for row in rows:
        if is_baseline(row):
            same = index.get((SAME_OF.get(row["scenario"]), row["config"]))
            row["baseline"] = f"{same['scenario']} (cross / same)" if same else None
            row["ratio"] = row["rps"] / same["rps"] if same and same["rps"] else None
            continue
        if row["config"] == MAIN:
            base, label = index.get((row["scenario"], ONE)), f"{ONE} (cost of sharding)"
        elif row["config"] == DIRECT:
            base, label = index.get((row["scenario"], MAIN)), f"{MAIN} (cost of pgbouncer: direct / pgbouncer)"
        elif row["config"] == CITUS:
            base, label = index.get((row["scenario"], MAIN)), f"{MAIN} (our engine: Citus / ours)"
        else:
            base = db_limit(row)
            label = f"{base['scenario']}, {base['config']} (database limit)" if base else None
        row["baseline"] = label if base else None
        row["ratio"] = row["rps"] / base["rps"] if base and base["rps"] else None
        row["p99_ratio"] = row["p99"] / base["p99"] if base and base.get("p99") and row.get("p99") else None
        limit = db_limit(row)
        row["db_limit_ratio"] = row["rps"] / limit["rps"] if limit and limit["rps"] else None
    return index


def targets(index, rows):
    def get(scenario, config, key):
        row = index.get((scenario, config))
        return row.get(key) if row else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    out = []
    cross, single = get("purchase-cross", MAIN, "rps"), get("purchase-single", MAIN, "rps")
    out.append(("cross-worker purchase throughput ≥ 0.55 × single-worker (2 workers, pgbouncer)",
                ratio(cross, single), lambda v: v >= 0.55, f"{_fmt(cross)} / {_fmt(single)} req/s"))
    # (target, scenario, the configuration our main one is measured against, the least ratio main / that one)
    against = [(f"{scenario} on 2 workers ≥ 0.9 × 1 worker (throughput)", scenario, ONE, 0.9)
               for scenario in ("item-detail", "purchase-single")]
    against += [("our same-worker purchase ≥ Citus's (purchase-single throughput, ours / Citus)", "purchase-single",
                 CITUS, 1.0),
                ("our cross-worker purchase ≥ 1.0 × Citus's (purchase-cross throughput, ours / Citus)",
                 "purchase-cross", CITUS, 1.0)]
    for what, scenario, other, least in against:
        a, b = get(scenario, MAIN, "rps"), get(scenario, other, "rps")
        out.append((what, ratio(a, b), lambda v, least=least: v >= least, f"{_fmt(a)} / {_fmt(b)} req/s"))
    a, b = get("search", MAIN, "p99"), get("search", ONE, "p99")
    out.append(("search p99 on 2 workers ≤ 2 × 1 worker", ratio(a, b), lambda v: v <= 2.0, f"{_fmt(a)} / {_fmt(b)} ms"))
    app_rows = [row for row in rows if not is_baseline(row)]
    errors = sum(row["errors"] for row in app_rows)
    failing = ", ".join(f"{row['scenario']} ({row['config']}): {row['errors']}" for row in app_rows if row["errors"])
    out.append(("no errors other than expected 409s in any scenario", float(errors), lambda v: v == 0,
                failing or "none"))
    return [(what, value, None if value is None else ("PASS" if check(value) else "MISS"), detail)
            for what, value, check, detail in out]


CSV_FIELDS = ["scenario", "configuration", "rps", "p50_ms", "p95_ms", "p99_ms", "requests", "errors", "expected_409",
              "loadgen_cpu_pct", "server_cpu_pct", "machine_cpu_pct", "baseline", "ratio_to_baseline",
              "p99_ratio_to_baseline", "ratio_to_db_limit"]


def write_results(rows, machine, args, data_info, target_rows, started):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(RESULTS_DIR / f"{args.results_name}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for row in rows:
            writer.writerow([row["scenario"], row["config"], f"{row['rps']:.2f}", _num(row.get("p50")),
                             _num(row.get("p95")), _num(row.get("p99")), row["requests"], row["errors"],
                             row.get("expected_409", 0), _num(row.get("loadgen_cpu")), _num(row.get("server_cpu")),
                             _num(row.get("machine_cpu")), row.get("baseline") or "", _num(row.get("ratio"), 3),
                             _num(row.get("p99_ratio"), 3), _num(row.get("db_limit_ratio"), 3)])
    items, listed = data_info
    lines = [
        "# Load benchmark: latest results",
        "",
        f"`make bench` (`python -m benchmarks.run_bench {' '.join(sys.argv[1:])}`), {machine['date']}, commit "
        f"{machine['commit']}, {((time.monotonic() - started) / 60):.0f} minutes in all.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, {machine['os']}; "
        f"load average before the run {', '.join(f'{v:.2f}' for v in machine['load_before'])}. Every node, pgbouncer, "
        "gunicorn and locust share these cores.",
        f"- {machine['postgres']}; {machine['pgbench']}; Python {machine['python']}.",
        f"- Data on each cluster ({', '.join(args.clusters)}): "
        f"{args.seed_users} users, {items} items ({listed} listed), `seed_demo --seed {args.data_seed} --sales 0`.",
        f"- Server: gunicorn, {args.gunicorn_workers} workers × {args.gunicorn_threads} threads (gthread), "
        "production settings (DEBUG off), `manage.py maintenance` beside it.",
        f"- Load: locust {args.users} users (FastHttpUser, wait {args.wait:g}s: closed loop), warm-up {args.warmup}s "
        f"(discarded), then {args.duration}s measured per scenario; pgbench {args.pgbench_clients} clients per node.",
        "",
        "rps: requests per second (pgbench: purchases or searches per second); latencies in ms; errors: answers other "
        "than 2xx, except the expected 409s of purchases (own column); CPU in % of one core (machine: % of all cores "
        "busy). Ratio: rps / the baseline's rps (p99 ratio likewise; for Citus the baseline is our engine's main "
        "configuration, so above 1 Citus is faster); for a cross-worker pgbench or transfer row, cross-worker / "
        "same-worker; DB limit: rps / the pgbench figure of the same SQL on the same cluster.",
        "",
        "| scenario | configuration | rps | p50 | p95 | p99 | requests | errors | 409s | locust CPU | gunicorn CPU | "
        "machine CPU | baseline | ratio | p99 ratio | vs DB limit |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['scenario']} | {row['config']} | {row['rps']:.1f} | {_fmt(row.get('p50'))} "
            f"| {_fmt(row.get('p95'))} "
            f"| {_fmt(row.get('p99'))} | {row['requests']} | {row['errors']} | {row.get('expected_409', 0)} "
            f"| {_pct(row.get('loadgen_cpu'))} | {_pct(row.get('server_cpu'))} | {_pct(row.get('machine_cpu'))} "
            f"| {row.get('baseline') or '—'} | {_fmt(row.get('ratio'), 2)} | {_fmt(row.get('p99_ratio'), 2)} "
            f"| {_fmt(row.get('db_limit_ratio'), 2)} |")
    lines += ["", "## Targets", "", "| target | measured | result | figures |", "| --- | ---: | --- | --- |"]
    for what, value, verdict, detail in target_rows:
        shown = "—" if value is None else (f"{int(value)} errors" if what.startswith("no errors") else f"{value:.2f}")
        lines.append(f"| {what} | {shown} | {verdict or 'not measured'} | {detail} |")
    lines += ["", "## Baselines: pgbench and raw transfers", ""]
    for row in rows:
        if is_baseline(row):
            lines.append(f"- {row['scenario']}, {row['config']}: {row['note']}.")
    lines += ["", transfer_comparison(rows)]
    lines += ["", "## Per request type (2 workers, pgbouncer)", "",
              "| scenario | request | requests | rps | p50 | p99 |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for row in rows:
        if row["config"] == MAIN:
            for part in row.get("by_name", []):
                lines.append(f"| {row['scenario']} | {part['name']} | {part['requests']} | {part['rps']:.1f} "
                             f"| {_fmt(part['p50'])} | {_fmt(part['p99'])} |")
    (RESULTS_DIR / f"{args.results_name}.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def transfer_comparison(rows):
    """Our raw transfers against Citus's, in one sentence (the issue's comparison); after attach_baselines."""
    cross = {row["config"]: row for row in rows if row["scenario"] == TRANSFER_CROSS}
    ours, citus = cross.get(OURS_2PC), cross.get(CITUS_PGBENCH)
    if not ours or not citus or not citus["rps"]:
        return "Raw transfers, ours against Citus's: not measured in this run."
    return (f"Raw transfers: our two-phase-commit transfer is {ours['rps'] / citus['rps']:.2f} × Citus's cross-worker "
            f"transfer ({_fmt(ours['rps'])} / {_fmt(citus['rps'])} per second); cross-worker / same-worker is "
            f"{_fmt(ours.get('ratio'), 2)} for ours and {_fmt(citus.get('ratio'), 2)} for Citus. Different clients "
            "(Python threads through pgbouncer and atomic_on_nodes; pgbench at the Citus coordinator), as in the "
            "issue's comparison.")


def _num(value, digits=2):
    return "" if value is None else f"{value:.{digits}f}"


def _pct(value):
    return "—" if value is None else f"{value:.0f}%"


# Main ------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds measured per scenario (default 30)")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of discarded warm-up per scenario (default 10)")
    parser.add_argument("--users", type=int, default=16, help="concurrent locust users (default 16)")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="seconds each locust user waits between requests (default 0)")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--gunicorn-threads", type=int, default=2)
    parser.add_argument("--pgbench-clients", type=int, default=4, help="pgbench clients per node (default 4)")
    parser.add_argument("--seed-users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=112_000,
                        help="items to seed; about 90%% are listed (default 112000)")
    parser.add_argument("--data-seed", type=int, default=11)
    parser.add_argument("--scenarios", help="comma-separated subset (default: all)")
    parser.add_argument("--configs", default=",".join(key for key, _, _, _ in CONFIGS),
                        help="comma-separated subset of the configurations: "
                             f"{', '.join(f'{key} ({name})' for key, name, _, _ in CONFIGS)} (default: all)")
    parser.add_argument("--results-name", default="bench-latest",
                        help="write benchmarks/results/NAME.md and NAME.csv (default bench-latest)")
    parser.add_argument("--reuse", action="store_true", help="keep the clusters and data of the last run (not fresh)")
    args = parser.parse_args()
    args.scenarios = set(args.scenarios.split(",")) if args.scenarios else None
    args.configs = set(args.configs.split(","))
    unknown = args.configs - {key for key, _, _, _ in CONFIGS}
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(sorted(unknown))}: use main, direct, 1w or citus")
    configs = [config for config in CONFIGS if config[0] in args.configs]
    measured = {cluster_name for _, _, cluster_name, _ in configs}
    # bench1w's groups are bench2w's (load_prep --roles), so bench2w is made and prepared with it.
    names = args.clusters = [
        name for name in CLUSTERS if name in measured or (name == "bench2w" and "bench1w" in measured)
    ]
    started = time.monotonic()
    machine = machine_info()
    log(f"== load benchmark: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB; "
        f"commit {machine['commit']}")
    workdir = tempfile.mkdtemp(prefix="bench-")
    log(f"== logs and raw locust/pgbench output in {workdir}")
    rng = random.Random(1)
    rows = []
    try:
        if args.reuse:
            for name in names:
                cluster("up", name)
            data_info = _check_and_analyze(names[0])[:2]
        else:
            data_info = fresh_clusters(args, names)
        preps = {}
        roles = Path(workdir) / "roles.json"
        for name in names:
            log(f"== {name}: tokens, money and partner keys for {args.users} locust users")
            out = Path(workdir) / f"prep-{name}.json"
            # Citus: the groups are its own workers, from its placement (not bench2w's roles).
            shared_roles = ["--roles", str(roles)] if CLUSTERS[name][1] == "own" else []
            run([sys.executable, "-m", "benchmarks.load_prep", "--slots", str(args.users), "--out", str(out),
                 *shared_roles], env={"CLUSTER_NAME": name})
            preps[name] = json.loads(out.read_text())
        for name in names:
            cluster("down", name)
        for name in names:
            if name not in measured:
                continue
            log(f"== {name}: measuring")
            cluster("up", name)
            for _, config_name, cluster_name, direct in configs:
                if cluster_name == name:
                    rows += measure_config(config_name, name, direct, preps[name], args, workdir, rng)
            rows += pgbench_baselines(name, preps[name], args, workdir)
            cluster("down", name)
    finally:
        for name in names:
            if config_path(name).exists():
                subprocess.run([sys.executable, "-m", "cluster", "down", "--name", name], cwd=REPO, check=False,
                               stdout=subprocess.DEVNULL)
    order = {name: i for i, (name, _, _) in enumerate(SCENARIOS)}
    config_order = {name: i for i, (_, name, _, _) in enumerate(CONFIGS)}
    rows.sort(
        key=lambda r: (order.get(r["scenario"], 99), config_order.get(r["config"], 9), r["scenario"], r["config"])
    )
    index = attach_baselines(rows)
    target_rows = targets(index, rows)
    text = write_results(rows, machine, args, data_info, target_rows, started)
    log("")
    log(text)
    log(f"\nwritten to benchmarks/results/{args.results_name}.md and {args.results_name}.csv "
        f"({(time.monotonic() - started) / 60:.1f} min)")
    shutil.rmtree(workdir, ignore_errors=True) if os.environ.get("BENCH_CLEAN_LOGS") else None


if __name__ == "__main__":
    main()
