"""Search latency (p50/p95/p99) across workers, and the same search on one worker holding the same rows.

Measure one cluster (the settings' cluster, CLUSTER_NAME):

    CLUSTER_NAME=bench-search2 .venv/bin/python -m benchmarks.search_latency \\
        [--queries 400] [--threads 1] [--json out.json]

Compare, in one run (or `make bench-search`):

    .venv/bin/python -m benchmarks.search_latency --compare [--queries 400] [--threads 1]

A measurement runs a fixed, seeded list of realistic searches through
app.catalog.search.search_listings in-process (page size 20): browsing newest,
price sorts with a category and a price range, full-text queries of one or two
words from the demo vocabulary, typos, and second pages (the `next` cursor of a
first page, followed once; only the second page is timed). A warm-up of
untimed queries comes first. Times are wall-clock (time.perf_counter) around
one search_listings call: the fan-out to every worker, the queries, the merge.

--compare brings up two clusters with the cluster tool, `bench-search2` (2
workers) and `bench-search1` (1 worker), migrates them, seeds both with the
same deterministic demo data (`seed_demo --users 10000 --items 225000 --sales 0
--seed 11 --if-empty`, at least 200,000 listed items; a second run
reuses the rows), checks that both hold the same rows (counts, sum of prices
and an order-independent checksum of every item), runs VACUUM ANALYZE on every
worker, measures each cluster in its own process with the same query list,
prints a Markdown table and writes it to benchmarks/results/search-latency.md.
The clusters are stopped at the end (data kept; --keep-up leaves them running).
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "search-latency.md"
PAGE_SIZE = 20
MIN_LISTINGS = 200_000

# Query kinds, in the order of the tables.
KINDS = ("browse", "category", "price-sort", "text-1", "text-2", "typo", "page-2")

# From app/core/demo_data.py: nouns, brands, adjectives, as people type them.
ONE_WORD = [
    "camera", "laptop", "dune", "guitar", "novel", "lego", "bike", "jacket", "vinyl", "drill",
    "headphones", "keyboard", "lamp", "grill", "tent", "boots", "print", "vase", "leica", "murakami",
    "backpack", "turntable", "sneakers", "synthesizer", "mower", "cookbook",
]
TWO_WORDS = [
    "vintage laptop", "signed novel", "fender guitar", "leica camera", "lego technic", "folding bike",
    "retro console", "wax jacket", "coffee maker", "board game", "vinyl lp", "hokusai print",
    "rare record", "hardcover tolkien", "makita drill", "trail shoes",
]
TYPOS = ["laptp", "camra", "guitr", "headphnes", "turntabel", "bookshelv", "sneakrs", "vintge camera"]


def _setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    import django

    django.setup()


# The query list -----------------------------------------------------------


def build_queries(count, seed):
    """[(kind, ListingQuery)], the same for a given (count, seed)."""
    from app.catalog.search import ListingQuery
    from app.core.demo_data import CATEGORIES, CATEGORY_NAMES

    rng = random.Random(seed)

    def price_range(category):
        low, high = CATEGORIES[category]["price"]
        a, b = sorted(int(low * (high / low) ** rng.random()) for _ in range(2))
        return (a // 100 * 100 or None), (b // 100 * 100 + 100)

    def make(kind):
        if kind == "browse":
            return ListingQuery(sort="newest")
        if kind == "category":
            return ListingQuery(category=rng.choice(CATEGORY_NAMES), sort="newest")
        if kind == "price-sort":
            category = rng.choice(CATEGORY_NAMES)
            low, high = price_range(category)
            if rng.random() < 0.3:  # only a ceiling: "under 50.00"
                low = None
            return ListingQuery(category=category, min_price=low, max_price=high, sort=rng.choice(["price", "-price"]))
        if kind == "text-1":
            q = rng.choice(ONE_WORD)
        elif kind == "text-2":
            q = rng.choice(TWO_WORDS)
        elif kind == "typo":
            q = rng.choice(TYPOS)
        if rng.random() < 0.25:  # some text searches sort by price
            return ListingQuery(q=q, sort=rng.choice(["price", "-price"]))
        return ListingQuery(q=q, sort="relevance")

    weights = {"browse": 2, "category": 2, "price-sort": 3, "text-1": 4, "text-2": 3, "typo": 2, "page-2": 2}
    kinds = rng.choices(list(weights), weights=list(weights.values()), k=count)
    queries = []
    for kind in kinds:
        if kind == "page-2":
            # The second page of one of the other kinds.
            queries.append((kind, make(rng.choice(["browse", "category", "price-sort", "text-1", "text-2"]))))
        else:
            queries.append((kind, make(kind)))
    return queries


# Measuring one cluster ----------------------------------------------------


def percentile(sorted_values, fraction):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(samples_ms):
    values = sorted(samples_ms)
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "mean": statistics.fmean(values) if values else None,
        "max": values[-1] if values else None,
    }


def run_one(kind, query):
    """(milliseconds, rows) of one timed search; a second page times only the second call."""
    from app.catalog.search import search_listings

    cursor = None
    if kind == "page-2":
        first = search_listings(query, page_size=PAGE_SIZE)
        cursor = first.next_cursor
        if cursor is None:  # fewer than one page: nothing to follow
            return None, 0
    started = time.perf_counter()
    page = search_listings(query, page_size=PAGE_SIZE, cursor=cursor)
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, len(page.rows)


def run_all(queries, threads):
    """[(kind, ms, rows)] for every query, `threads` at a time (each thread takes the next query)."""
    from django.db import connections

    results = [None] * len(queries)
    next_index = iter(range(len(queries)))
    lock = threading.Lock()

    def loop():
        try:
            while True:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                kind, query = queries[index]
                elapsed, rows = run_one(kind, query)
                results[index] = (kind, elapsed, rows)
        finally:
            for connection in connections.all(initialized_only=True):
                connection.close()

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def measure(args):
    _setup_django()
    from django.conf import settings

    from sharding.placement import all_workers

    workers = all_workers()
    queries = build_queries(args.warmup + args.queries, args.seed)
    warmup, timed = queries[:args.warmup], queries[args.warmup:]
    run_all(warmup, args.threads)
    started = time.perf_counter()
    results = run_all(timed, args.threads)
    wall = time.perf_counter() - started

    by_kind = {kind: [] for kind in KINDS}
    empty = {kind: 0 for kind in KINDS}
    for kind, elapsed, rows in results:
        if elapsed is None:
            continue
        by_kind[kind].append(elapsed)
        empty[kind] += rows == 0
    all_samples = [ms for samples in by_kind.values() for ms in samples]
    report = {
        "cluster": os.environ.get("CLUSTER_NAME", ""),
        "workers": len(workers),
        "db_direct": (
            settings.DATABASES[workers[0]]["PORT"] != str(settings.CLUSTER_CONFIG["nodes"][0].get("bouncer_port"))
        ),
        "queries": args.queries,
        "warmup": args.warmup,
        "threads": args.threads,
        "seed": args.seed,
        "page_size": PAGE_SIZE,
        "queries_per_second": len(all_samples) / wall if wall else None,
        "overall": summarize(all_samples),
        "kinds": {
            kind: {**summarize(samples), "empty_pages": empty[kind]} for kind, samples in by_kind.items() if samples
        },
    }
    print(f"{report['cluster']}: {report['workers']} worker(s), {len(all_samples)} timed searches "
          f"({args.threads} thread(s), {report['queries_per_second']:.1f}/s), milliseconds:")
    print(f"  {'kind':<11} {'n':>4} {'p50':>8} {'p95':>8} {'p99':>8} {'mean':>8} {'max':>8}")
    for name, stats in [*report["kinds"].items(), ("overall", report["overall"])]:
        print(f"  {name:<11} {stats['n']:>4} {stats['p50']:>8.2f} {stats['p95']:>8.2f} {stats['p99']:>8.2f} "
              f"{stats['mean']:>8.2f} {stats['max']:>8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


# Comparing a 2-worker and a 1-worker cluster ------------------------------

CLUSTERS = (("bench-search2", 2), ("bench-search1", 1))


def _step(what, command, name):
    print(f"== {name}: {what}", flush=True)
    env = {**os.environ, "CLUSTER_NAME": name}
    subprocess.run(command, cwd=REPO, env=env, check=True)


def _worker_sessions(name):
    """psycopg2 connections straight to every worker's PostgreSQL, as the app sees the workers.

    On Citus that is the coordinator alone (sharding.config.app_view): it answers for every Citus worker, and
    the raw workers would count each row again, since they answer queries on the distributed tables too.
    """
    import psycopg2

    sys.path.insert(0, str(REPO))
    from cluster.config import load_config
    from sharding.config import app_view

    config = app_view(load_config(name))
    sessions = []
    for node in config["nodes"]:
        if node["role"] != "worker":
            continue
        connection = psycopg2.connect(host=node["host"], port=node["port"], dbname=config["database"],
                                      user=config["user"], password=config["password"], connect_timeout=5)
        connection.autocommit = True
        sessions.append((node["name"], connection))
    return sessions


# Order-independent: a sum over rows, so it adds up over workers whatever the ids and placement.
CHECK_SQL = """
SELECT count(*), count(*) FILTER (WHERE status = 'listed'), coalesce(sum(price), 0),
       coalesce(sum(hashtextextended(
           concat_ws('|', title, description, category, price, status, owner_username), 0)::numeric), 0)
FROM catalog_item
"""


def _check_and_analyze(name):
    """(items, listed, sum of prices, checksum) over every worker, after VACUUM ANALYZE on each."""
    totals = [0, 0, 0, 0]
    for node, connection in _worker_sessions(name):
        # Not `with connection`: that opens a transaction, and VACUUM cannot run in one.
        with connection.cursor() as cursor:
            # VACUUM as well as ANALYZE: the visibility map and hint bits no longer depend on
            # whether autovacuum happened to run, so both clusters start in the same state.
            cursor.execute("VACUUM (ANALYZE) catalog_item")
            cursor.execute("ANALYZE")
            cursor.execute(CHECK_SQL)
            row = cursor.fetchone()
            print(f"   {node}: {row[0]} items, {row[1]} listed", flush=True)
            totals = [total + int(value) for total, value in zip(totals, row, strict=True)]
        connection.close()
    return tuple(totals)


def _fmt(value):
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _table(reports):
    two, one = reports
    lines = [
        "| kind | n | 2 workers p50 / p99 (ms) | 1 worker p50 / p99 (ms) | ratio p50 (2w/1w) | ratio p99 (2w/1w) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [(kind, two["kinds"][kind], one["kinds"][kind]) for kind in KINDS if kind in two["kinds"]]
    rows.append(("**overall**", two["overall"], one["overall"]))
    for kind, a, b in rows:
        lines.append(
            f"| {kind} | {a['n']} | {_fmt(a['p50'])} / {_fmt(a['p99'])} | {_fmt(b['p50'])} / {_fmt(b['p99'])} "
            f"| {a['p50'] / b['p50']:.2f} | {a['p99'] / b['p99']:.2f} |"
        )
    lines.append(
        f"| mean / max overall | | {_fmt(two['overall']['mean'])} / {_fmt(two['overall']['max'])} "
        f"| {_fmt(one['overall']['mean'])} / {_fmt(one['overall']['max'])} | | |"
    )
    return "\n".join(lines)


def compare(args):
    python = sys.executable
    seed_args = ["--users", str(args.users), "--items", str(args.items), "--sales", "0", "--seed", str(args.data_seed),
                 "--if-empty"]
    checks = {}
    try:
        for name, workers in CLUSTERS:
            _step(f"up ({workers} worker{'s' if workers > 1 else ''})",
                  [python, "-m", "cluster", "up", "--name", name, "--workers", str(workers)], name)
            _step("migrate", [python, "manage.py", "migrate_cluster"], name)
            _step("seed", [python, "manage.py", "seed_demo", *seed_args], name)
            print(f"== {name}: VACUUM ANALYZE and check the rows", flush=True)
            checks[name] = _check_and_analyze(name)
        (a_name, _), (b_name, _) = CLUSTERS
        if checks[a_name] != checks[b_name]:
            raise SystemExit(f"the clusters do not hold the same rows: {a_name} {checks[a_name]} "
                             f"!= {b_name} {checks[b_name]} "
                             f"(items, listed, sum of prices, checksum); destroy them and run again")
        items, listed, price_sum, _ = checks[a_name]
        print(f"== same rows on both: {items} items ({listed} listed), sum of prices {price_sum}", flush=True)
        if listed < MIN_LISTINGS:
            print(f"warning: only {listed} listings, fewer than the {MIN_LISTINGS} the benchmark is meant for",
                  flush=True)

        reports = []
        with tempfile.TemporaryDirectory() as tmp:
            for name, _ in CLUSTERS:
                out = Path(tmp) / f"{name}.json"
                _step("measure", [python, "-m", "benchmarks.search_latency", "--queries", str(args.queries),
                                  "--warmup", str(args.warmup), "--threads", str(args.threads),
                                  "--seed", str(args.seed), "--json", str(out)], name)
                reports.append(json.loads(out.read_text()))
    finally:
        if not args.keep_up:
            from cluster.config import config_path

            for name, _ in CLUSTERS:
                if config_path(name).exists():
                    subprocess.run([python, "-m", "cluster", "down", "--name", name], cwd=REPO, check=False)

    table = _table(reports)
    header = (
        f"Search latency, {reports[0]['queries']} searches ({reports[0]['warmup']} warm-up) per cluster, "
        f"{args.threads} thread(s), page size {PAGE_SIZE}, query seed {args.seed}; "
        f"{items} items ({listed} listed) on each cluster (seed_demo --users {args.users} --items {args.items} "
        f"--sales 0 --seed {args.data_seed}). Throughput: 2 workers {reports[0]['queries_per_second']:.1f} searches/s, "
        f"1 worker {reports[1]['queries_per_second']:.1f} searches/s."
    )
    print()
    print(header)
    print()
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Search latency: 2 workers against 1 worker holding the same rows\n\n"
        f"Measured {time.strftime('%Y-%m-%d')} with `make bench-search` "
        f"(`python -m benchmarks.search_latency --compare --queries {args.queries} --threads {args.threads}`).\n"
        "All nodes on one machine (see benchmarks/README.md).\n\n"
        f"{header}\n\n{table}\n"
    )
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", action="store_true",
                        help="bring up, seed and measure a 2-worker and a 1-worker cluster")
    parser.add_argument("--queries", type=int, default=400, help="timed searches (default 400)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed searches first (default 50)")
    parser.add_argument("--threads", type=int, default=1, help="searches at a time (default 1)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the query list (default 7)")
    parser.add_argument("--json", help="write the figures to this file")
    # seed_demo leaves about 10% of items unlisted: 225,000 items give about 202,500 listings.
    parser.add_argument("--items", type=int, default=225_000, help="--compare: items to seed (default 225000)")
    parser.add_argument("--users", type=int, default=10_000, help="--compare: users to seed (default 10000)")
    parser.add_argument("--data-seed", type=int, default=11, help="--compare: seed_demo's seed (default 11)")
    parser.add_argument("--keep-up", action="store_true", help="--compare: leave both clusters running")
    args = parser.parse_args()
    if args.compare:
        compare(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
