"""The online rebalance benchmark: 2 workers to 3 under load, moved shard by shard, in one run.

    .venv/bin/python -m benchmarks.rebalance_bench [--users 8] [--before 30] [--after 30]
        [--items 112000] [--seed-users 10000] [--reuse]

(or `make bench-rebalance`). Steps:

1. destroys and recreates the cluster `rebal` with 2 workers, migrates it, seeds it
   (`seed_demo --users 10000 --items 112000 --sales 0 --seed 11`: about 100,600 listings) and
   runs VACUUM ANALYZE (benchmarks.search_latency's helper). With --reuse an existing seeded
   `rebal` is kept; workers a previous run added are drained and removed first;
2. prepares it for Locust (benchmarks.load_prep): demo users with an API token and money,
   one per Locust user and logical shard; predicts the shards the rebalance will move
   (sharding.rebalance's plan, with one more, empty worker) and gives each Locust user its
   demo users of those shards to write as (--writers all: every shard);
3. serves the app with gunicorn and `manage.py maintenance` (benchmarks.run_bench.Server)
   and starts Locust (benchmarks/locust_rebalance.py, class RebalanceMix): deposits,
   same-worker and cross-worker purchases and item pages, every request recorded in a CSV.
   A thread follows the move journal and keeps the shard being moved in a file: the Locust
   users do --hot (half) of their requests as their demo user on that shard;
4. after --before seconds: `python -m cluster add-node`, then `manage.py rebalance --yes`
   (timed); the load goes on for --after seconds more and stops (each Locust user finishes
   its request in flight);
5. checks the books: `manage.py audit_ledger`, and the ledger entries, purchases and sales
   created during the run (counted on each worker, on the shards it owns) against the
   successful deposits and purchases Locust saw;
6. writes benchmarks/results/rebalance-latest.md, .csv and .png, and stops the cluster
   (data kept, for --reuse; `python -m cluster destroy --name rebal --yes` frees the disk).
"""
import argparse
import csv
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from benchmarks.run_bench import (
    REPO,
    RESULTS_DIR,
    Server,
    _busy,
    _worker_connections,
    cluster,
    finish_locust,
    log,
    machine_info,
    manage,
    run,
    run_data,
    start_locust,
)
from benchmarks.search_latency import _check_and_analyze
from cluster.config import cluster_dir, config_path, load_config

LOCUSTFILE = REPO / "benchmarks" / "locust_rebalance.py"
LOCUST_CLASS = "RebalanceMix"
WRITES = ("deposit", "purchase same-worker", "purchase cross-worker")
PURCHASES = WRITES[1:]
RAMP_SECONDS = 5.0  # the first seconds of load (users starting, caches filling) are not in `before`
PREFIX = "rebal"


# The cluster -------------------------------------------------------------------------------------------------------


def workers_of(name):
    return [node["name"] for node in load_config(name)["nodes"] if node["role"] == "worker"]


def prepare_cluster(name, args):
    """(items, listed, how): a fresh, seeded cluster with 2 workers, or the kept one with --reuse."""
    if args.reuse and config_path(name).exists():
        cluster("up", name)
        items, listed, _, _ = _check_and_analyze(name)
        if items >= args.items:
            extra = workers_of(name)[2:]
            for worker in extra:
                log(f"== {name}: --reuse: drain {worker} (added by an earlier run) and remove it")
                manage(name, "drain_node", worker, "--yes")
                cluster("remove-node", name, worker, "--yes")
            return items, listed, "kept (--reuse)" + (f", {', '.join(extra)} drained and removed" if extra else "")
        log(f"== {name}: --reuse, but only {items} items: seeding a fresh cluster")
    log(f"== {name}: fresh cluster with 2 workers")
    if config_path(name).exists():
        cluster("destroy", name, "--yes")
    cluster("up", name, "--workers", "2")
    manage(name, "migrate_cluster")
    log(f"== {name}: seed {args.seed_users} users and {args.items} items (seed {args.data_seed})")
    manage(name, "seed_demo", "--users", str(args.seed_users), "--items", str(args.items), "--sales", "0",
           "--seed", str(args.data_seed))
    log(f"== {name}: VACUUM ANALYZE and count the rows")
    items, listed, _, _ = _check_and_analyze(name)
    return items, listed, "fresh"


def _coordinator(name):
    import psycopg2

    from sharding.config import direct_dsn

    config = load_config(name)
    node = next(n for n in config["nodes"] if n["role"] == "coordinator")
    connection = psycopg2.connect(**direct_dsn(config, node["name"]))
    connection.autocommit = True
    return connection


def predicted_moves(name):
    """The shards `manage.py rebalance` will move once one more (empty) worker is added (its own plan, run early),
    and the worker each of the 64 shards will be on after it."""
    os.environ["CLUSTER_NAME"] = name
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    import django

    django.setup()
    from django.db import connections

    from sharding.placement import NodeInfo, current_placement
    from sharding.rebalance import plan_rebalance

    try:
        placement = current_placement()
        new = f"worker{len(placement.workers) + 1}"
        placement = replace(placement, workers=(*placement.workers, new),
                            node_info={**placement.node_info, new: NodeInfo(new, "worker", None, None, None)})
        moves = plan_rebalance(placement)
        after = {shard: placement.node_of_shard(shard) for shard in range(len(placement.nodes))}
        after.update({move.shard: move.target for move in moves})
        return sorted(move.shard for move in moves), after
    finally:
        connections.close_all()


def last_move_id(name):
    connection = _coordinator(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM sharding_shard_move")
        (value,) = cursor.fetchone()
    connection.close()
    return value


@dataclass
class Move:
    id: int
    shard: int
    source: str
    target: str
    state: str
    rows_copied: int
    rows_total: int
    write_pause_ms: float | None
    created_at: float
    copy_started_at: float | None
    switched_at: float | None
    finished_at: float | None
    error: str
    client_pause_ms: float | None = None  # filled in by the analysis
    writes_in_flight: int = 0

    @property
    def duration(self):
        return None if self.finished_at is None else self.finished_at - self.created_at


def moves_since(name, after_id):
    """The journal's moves with an id above `after_id` (this run's), times as epoch seconds."""
    connection = _coordinator(name)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, shard, source, target, state, rows_copied, rows_total, write_pause_ms, "
            "extract(epoch FROM created_at)::float8, extract(epoch FROM copy_started_at)::float8, "
            "extract(epoch FROM switched_at)::float8, extract(epoch FROM finished_at)::float8, error "
            "FROM sharding_shard_move WHERE id > %s ORDER BY id", [after_id])
        moves = [Move(*row) for row in cursor.fetchall()]
    connection.close()
    return moves


# Counting the writes ----------------------------------------------------------------------------------------------

OWNED = "logical_shard IN (SELECT shard FROM sharding_owned_shard)"
COUNT_SQL = f"""
SELECT (SELECT count(*) FROM wallet_ledgerentry WHERE kind = 'deposit' AND {OWNED}),
       (SELECT count(*) FROM wallet_ledgerentry WHERE kind = 'purchase' AND {OWNED}),
       (SELECT count(*) FROM wallet_ledgerentry WHERE kind = 'sale' AND {OWNED}),
       (SELECT count(*) FROM orders_purchase WHERE {OWNED}),
       (SELECT count(*) FROM orders_sale WHERE {OWNED}),
       (SELECT count(*) FROM wallet_ledgerentry WHERE NOT {OWNED})
         + (SELECT count(*) FROM orders_purchase WHERE NOT {OWNED})
         + (SELECT count(*) FROM orders_sale WHERE NOT {OWNED})
"""
COUNTS = ("deposit entries", "purchase entries", "sale entries", "purchases", "sales", "rows on shards not owned")


def write_counts(name):
    """Rows of the shards each worker owns (a move's copy is not counted), summed over the workers."""
    totals = dict.fromkeys(COUNTS, 0)
    for connection in _worker_connections(name).values():
        with connection.cursor() as cursor:
            cursor.execute(COUNT_SQL)
            for key, value in zip(COUNTS, cursor.fetchone(), strict=True):
                totals[key] += value
        connection.close()
    return totals


# Running the steps ------------------------------------------------------------------------------------------------


def step(command, label, env=None):
    """Run a command, echoing its output; returns (exit code, output lines, start, end) in epoch seconds."""
    started = time.time()
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        log(f"   [{label}] {line}")
    process.wait()
    return process.returncode, lines, started, time.time()


def sleep_until(moment):
    time.sleep(max(0.0, moment - time.time()))


class CpuSampler(threading.Thread):
    """Every second: the CPU the whole machine used, and the part of it this benchmark's processes used.

    Ours are this process and its descendants (gunicorn, Locust, maintenance, add-node, rebalance)
    and every process of the cluster (postmasters and pgbouncers started with the cluster's
    directory on their command line, and their children). A process's own CPU time plus that of
    its children it has reaped, so a PostgreSQL backend that ended still counts. The rest of the
    busy CPU is other work on the machine (in cores: 1.0 is one core busy all the second).
    """

    def __init__(self, cluster_directory):
        super().__init__(daemon=True)
        self.directory = str(cluster_directory)
        self.samples = []  # (epoch seconds, machine busy cores, ours cores)
        self.stopped = threading.Event()

    def _ours(self):
        roots = [psutil.Process()]
        for process in psutil.process_iter(["cmdline"]):
            if self.directory in " ".join(process.info["cmdline"] or []):
                roots.append(process)
        seen, total = set(), 0.0
        for root in roots:
            try:
                family = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for process in family:
                if process.pid in seen:
                    continue
                seen.add(process.pid)
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                total += times.user + times.system + times.children_user + times.children_system
        return total

    def run(self):
        last_time, last_busy, last_ours = time.time(), _busy(psutil.cpu_times()), self._ours()
        while not self.stopped.wait(1.0):
            now, busy, ours = time.time(), _busy(psutil.cpu_times()), self._ours()
            seconds = now - last_time
            self.samples.append((now, (busy - last_busy) / seconds, max(0.0, ours - last_ours) / seconds))
            last_time, last_busy, last_ours = now, busy, ours

    def stop(self):
        self.stopped.set()
        self.join(timeout=5)

    def window(self, start, end):
        """(machine busy, other work) in cores, averaged over the samples that ended in [start, end)."""
        inside = [(busy, max(0.0, busy - ours)) for moment, busy, ours in self.samples if start <= moment < end]
        if not inside:
            return None, None
        return sum(b for b, _ in inside) / len(inside), sum(o for _, o in inside) / len(inside)


# Analysis -----------------------------------------------------------------------------------------------------------


@dataclass
class Request:
    start: float
    name: str
    ms: float
    success: bool
    status: int
    shard: int | None
    seller_shard: int | None

    @property
    def end(self):
        return self.start + self.ms / 1000.0

    @property
    def ok(self):
        return self.success and 200 <= self.status < 300

    @property
    def write(self):
        return self.name in WRITES


def read_requests(path):
    def shard(value):
        return int(value) if value != "" else None

    with open(path, newline="") as f:
        return [Request(float(row["start"]), row["name"], float(row["response_time_ms"]), row["success"] == "1",
                        int(row["status"]), shard(row["shard"]), shard(row["seller_shard"]))
                for row in csv.DictReader(f)]


def percentile(values, p):
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    values = sorted(values)
    if not values:
        return None
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def phase_figures(requests, start, end):
    """Figures of the requests that ended in [start, end)."""
    inside = [r for r in requests if start <= r.end < end]
    seconds = max(end - start, 1e-9)
    ok = [r for r in inside if r.ok]
    writes = [r for r in ok if r.write]
    return {
        "seconds": end - start, "requests": len(inside), "ok": len(ok), "rps": len(ok) / seconds,
        "writes": len(writes), "write_rps": len(writes) / seconds,
        "write_p50": percentile([r.ms for r in writes], 50), "write_p99": percentile([r.ms for r in writes], 99),
        "write_max": max((r.ms for r in writes), default=None),
        "errors": sum(1 for r in inside if not r.success),
        "expected_409": sum(1 for r in inside if r.success and r.status == 409),
    }


def client_pauses(requests, moves):
    """Per moved shard: the longest write on it (buyer's or seller's shard) in flight at the switch."""
    for move in moves:
        if move.switched_at is None:
            continue
        in_flight = [r for r in requests if r.write and move.shard in (r.shard, r.seller_shard)
                     and r.start <= move.switched_at <= r.end]
        move.writes_in_flight = len(in_flight)
        move.client_pause_ms = max((r.ms for r in in_flight), default=None)


def summary(values):
    values = [v for v in values if v is not None]
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values, default=None)}


def analyse(requests, moves, timeline, counts_before, counts_after, cpu):
    client_pauses(requests, moves)
    load_start, stop = timeline["load_start"], timeline["load_stop"]
    phases = {
        "before": (min(load_start + RAMP_SECONDS, timeline["add_start"]), timeline["add_start"]),
        "add-node": (timeline["add_start"], timeline["add_end"]),
        "during the moves": (timeline["rebalance_start"], timeline["rebalance_end"]),
        "after": (timeline["rebalance_end"], stop),
    }
    figures = {phase: phase_figures(requests, *window) for phase, window in phases.items()}
    for phase, window in phases.items():
        figures[phase]["machine_cores"], figures[phase]["other_cores"] = cpu.window(*window)
    done = [m for m in moves if m.state == "done"]
    rows = sum(m.rows_copied for m in done)
    move_seconds = sum(m.duration for m in done if m.duration is not None)
    copy_seconds = sum(m.switched_at - m.copy_started_at for m in done if m.switched_at and m.copy_started_at)
    rebalance_seconds = timeline["rebalance_end"] - timeline["rebalance_start"]
    ok = [r for r in requests if r.ok]
    client_writes = {
        "deposits": sum(1 for r in ok if r.name == "deposit"),
        "purchases": sum(1 for r in ok if r.name in PURCHASES),
    }
    delta = {key: counts_after[key] - counts_before[key] for key in COUNTS}
    checks = [
        ("deposit ledger entries", delta["deposit entries"], client_writes["deposits"]),
        ("purchases (buyer's record)", delta["purchases"], client_writes["purchases"]),
        ("sales (seller's record)", delta["sales"], client_writes["purchases"]),
        ("purchase ledger entries (buyer's debit)", delta["purchase entries"], client_writes["purchases"]),
        ("sale ledger entries (seller's credit)", delta["sale entries"], client_writes["purchases"]),
    ]
    return {
        "phases": phases, "figures": figures, "moves": moves, "done": done,
        "mover": summary(m.write_pause_ms for m in done), "client": summary(m.client_pause_ms for m in done),
        "rows": rows, "move_seconds": move_seconds, "copy_seconds": copy_seconds,
        "rebalance_seconds": rebalance_seconds,
        "rows_per_move_second": rows / move_seconds if move_seconds else None,
        "rows_per_copy_second": rows / copy_seconds if copy_seconds else None,
        "rows_per_second_overall": rows / rebalance_seconds if rebalance_seconds > 0 else None,
        "total": phase_figures(requests, load_start, stop + 3600), "cpu": cpu.window(load_start, stop + 60),
        "checks": checks, "delta": delta, "client_writes": client_writes,
        "ratio": _ratio(figures["during the moves"]["rps"], figures["before"]["rps"]),
        "write_ratio": _ratio(figures["during the moves"]["write_rps"], figures["before"]["write_rps"]),
        "after_ratio": _ratio(figures["after"]["rps"], figures["before"]["rps"]),
    }


def _ratio(a, b):
    return a / b if b else None


def targets(result, outcome):
    figures = result["figures"]
    errors = result["total"]["errors"]
    lost = [(what, created, seen) for what, created, seen in result["checks"] if created != seen]
    stray = outcome["counts_after"]["rows on shards not owned"]
    books = outcome["audit_rc"] == 0 and not lost and not stray
    mover, client = result["mover"]["max"], result["client"]["max"]
    moved = outcome["rebalance_rc"] == 0 and result["done"] and len(result["done"]) == len(result["moves"])
    ratio = result["ratio"]

    def verdict(ok):
        return "met" if ok else "missed"

    rows = [
        ("0 errors (non-2xx other than expected 409s)",
         f"{errors} errors, {result['total']['expected_409']} expected 409s", verdict(errors == 0)),
        ("0 lost or duplicated writes", "audit_ledger exit " f"{outcome['audit_rc']}; "
         + ("every count matches" if not lost else "; ".join(f"{w}: {c} rows for {s} successes" for w, c, s in lost))
         + (f"; {stray} rows on shards their worker does not own" if stray else ""), verdict(books)),
        ("longest write pause per shard ≤ 1 s, by the mover (aim ~100 ms)",
         "—" if mover is None else f"max {mover:.0f} ms (p50 {result['mover']['p50']:.0f} ms)",
         verdict(moved and mover is not None and mover <= 1000)),
        ("longest write pause per shard ≤ 1 s, at the client (aim ~100 ms)",
         "—" if client is None else f"max {client:.0f} ms (p50 {result['client']['p50']:.0f} ms, "
         f"{result['client']['n']} of {len(result['done'])} shards with a write in flight)",
         verdict(moved and client is not None and client <= 1000) if client is not None else "not measured"),
        ("throughput during the moves ≥ 0.85 × before",
         "—" if ratio is None else f"{figures['during the moves']['rps']:.1f} / {figures['before']['rps']:.1f} req/s "
         f"= {ratio:.2f}", verdict(moved and ratio is not None and ratio >= 0.85)),
    ]
    if not moved:
        rows.append(("every planned move done", f"rebalance exit {outcome['rebalance_rc']}, "
                     f"{len(result['done'])} of {len(result['moves'])} moves done", "missed"))
    return rows


# Report -------------------------------------------------------------------------------------------------------------


def _f(value, digits=1):
    return "—" if value is None else f"{value:.{digits}f}"


def write_results(result, outcome, machine, args, started):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    target_rows = targets(result, outcome)
    timeline, figures = outcome["timeline"], result["figures"]
    t0 = timeline["load_start"]
    write_csv(result, outcome)
    chart = write_chart(result, outcome)
    load = machine["load_before"]
    busy_note = ("idle before the run" if load[0] < 0.5 else
                 f"**busy before the run** (1-minute load average {load[0]:.2f} on {machine['cores']} cores: other "
                 "work was running; the figures are noisier and lower than on an idle machine)")
    machine_cores, other_cores = result["cpu"]
    other_note = ("" if other_cores is None else
                  f" Other work (processes outside this benchmark and its cluster) used {other_cores:.2f} of the "
                  f"{machine['cores']} cores on average during the load, the whole machine {machine_cores:.2f}"
                  + (": **the machine was shared**, compare the phases with the `other work` column below."
                     if other_cores >= 0.2 else "."))
    done, moves = result["done"], result["moves"]
    lines = [
        "# Online rebalance benchmark: latest results",
        "",
        f"`make bench-rebalance` (`{' '.join(['python -m benchmarks.rebalance_bench', *sys.argv[1:]])}`"
        f"{'' if sys.argv[1:] else ': the defaults'}), {machine['date']}, "
        f"commit {machine['commit']}, {(time.monotonic() - started) / 60:.1f} minutes in all.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, {machine['os']}; "
        f"load average before the run {', '.join(f'{v:.2f}' for v in load)}: {busy_note}. "
        f"During the load the machine was {_f(outcome['locust']['machine_cpu'], 0)}% busy (all cores), gunicorn "
        f"{_f(outcome['locust']['server_cpu'], 0)}% and Locust {_f(outcome['locust']['loadgen_cpu'], 0)}% of one core; "
        f"load average after it {', '.join(f'{v:.2f}' for v in outcome['load_after'])}. Every node, pgbouncer, the "
        "mover, gunicorn and Locust share these cores." + other_note,
        f"- {machine['postgres']}; Python {machine['python']}.",
        f"- Cluster `{args.cluster}` ({outcome['cluster_how']}): 2 workers, then 3; 64 logical shards. Data: "
        f"{args.seed_users} users, {outcome['items']} items ({outcome['listed']} listed), "
        f"`seed_demo --seed {args.data_seed} --sales 0`.",
        f"- Server: gunicorn, {args.gunicorn_workers} workers × {args.gunicorn_threads} threads (gthread), production "
        "settings, through pgbouncer, `manage.py maintenance` beside it.",
        f"- Load: Locust, {args.users} users (FastHttpUser, closed loop, wait {args.wait:g} s), class `{LOCUST_CLASS}` "
        "of benchmarks/locust_rebalance.py: 40% deposits, 20% same-worker and 20% cross-worker purchases (buyer and "
        "seller on one worker, or on two, both before and after the rebalance, so the share of two-phase commits stays "
        "the same as shards move), 20% item pages of random listings. Each Locust user has its own "
        f"demo user on each of {len(outcome['written_shards'])} shards "
        + (f"(the shards the rebalance was predicted to move, {outcome['predicted_text']})" if args.writers == "moved"
           else "(every shard, --writers all)")
        + f" and acts as one of them for each request: with probability {args.hot:g} the one on the shard being moved "
        f"(between moves, one of those shards in turn, a new one every {HotShard.ROTATE:g} s), otherwise one at "
        "random. So every moved shard takes writes while it moves and at its switch; the listings bought belong to "
        "sellers on any shard.",
        f"- Timeline (seconds from the start of the load): `add-node` at {timeline['add_start'] - t0:.1f} "
        f"({timeline['add_end'] - timeline['add_start']:.1f} s), `rebalance --yes` from "
        f"{timeline['rebalance_start'] - t0:.1f} to {timeline['rebalance_end'] - t0:.1f} "
        f"({result['rebalance_seconds']:.1f} s, {len(done)} moves done of {len(moves)}, "
        f"exit {outcome['rebalance_rc']}), load stopped at {timeline['load_stop'] - t0:.1f}.",
        "",
        "## Targets",
        "",
        "| target | measured | result |",
        "| --- | --- | --- |",
        *(f"| {what} | {measured} | {verdict} |" for what, measured, verdict in target_rows),
        "",
    ]
    if outcome["rebalance_rc"] != 0 or outcome["add_rc"] != 0:
        lines += ["## The rebalance failed", "",
                  f"`cluster add-node` exit {outcome['add_rc']}, `manage.py rebalance --yes` "
                  f"exit {outcome['rebalance_rc']}. Their output:", "", "```", *outcome["add_output"],
                  *outcome["rebalance_output"], "```", ""]
    mover, client = result["mover"], result["client"]
    lines += [
        "## Write pause per moved shard",
        "",
        "| measured by | shards | p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| the mover (`ShardMove.write_pause_ms`) | {mover['n']} | {_f(mover['p50'])} | {_f(mover['p99'])} | "
        f"{_f(mover['max'])} |",
        f"| the client (longest write in flight at the switch) | {client['n']} of {len(done)} | {_f(client['p50'])} | "
        f"{_f(client['p99'])} | {_f(client['max'])} |",
        "",
        "- By the mover: `write_pause_ms` of each move of this run, the mover's own clock from the moment its fence "
        "transaction holds the shard's fence lock (new writers of the shard wait from then on) to the COMMIT PREPARED "
        "that lets them go, past the switch.",
        "- At the client: for each moved shard S, among the write requests (deposits and purchases) whose demo user is "
        "on S, or for a purchase whose seller is on S, that were in flight at S's `switched_at` (start ≤ switched_at ≤ "
        "start + response time, Locust's clock and the mover's on the same machine), the longest response time. It is "
        "the whole request, so it includes the normal work of the request, not only the wait: for scale, writes before "
        f"the rebalance took p50 {_f(figures['before']['write_p50'], 0)} ms, "
        f"p99 {_f(figures['before']['write_p99'], 0)} ms. "
        "A shard with no write in flight at that instant has no client figure.",
        "- p50 and p99 are nearest-rank percentiles over the shards (with about 20 shards, p99 is the maximum).",
        "",
        "## Throughput",
        "",
        "Successful requests (2xx) that ended in each window, per second; write latencies of those writes. CPU in "
        "cores (1.00: one core busy the whole time), averaged over the window: `machine` everything, `other work` the "
        "processes that are neither this benchmark's nor its cluster's (another cluster, a test run).",
        "",
        "| phase | window (s from load start) | ok req/s | writes/s | write p50 ms | write p99 ms | write max ms | "
        "errors | 409s | machine CPU | other work CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for phase, (start, end) in result["phases"].items():
        f = figures[phase]
        lines.append(f"| {phase} | {start - t0:.1f}–{end - t0:.1f} ({end - start:.1f} s) | {f['rps']:.1f} | "
                     f"{f['write_rps']:.1f} | {_f(f['write_p50'], 0)} | {_f(f['write_p99'], 0)} | "
                     f"{_f(f['write_max'], 0)} | {f['errors']} | {f['expected_409']} | {_f(f['machine_cores'], 2)} | "
                     f"{_f(f['other_cores'], 2)} |")
    lines += [
        "",
        f"During the moves / before: {_f(result['ratio'], 2)} (all successful requests), "
        f"{_f(result['write_ratio'], 2)} (writes); after / before: {_f(result['after_ratio'], 2)}. "
        f"`before` leaves out the first {RAMP_SECONDS:g} s of load; "
        "`during the moves` is the wall time of `manage.py rebalance --yes`.",
        "",
        "## Rows copied",
        "",
        f"- {result['rows']} rows copied by {len(done)} moves "
        "(the shards' rows of every sharded table, `rows_copied`).",
        f"- Per second of move: {_f(result['rows_per_move_second'], 0)} rows/s (sum of rows_copied / sum of the moves' "
        f"durations, created_at to finished_at: {result['move_seconds']:.1f} s, which include each move's wait of the "
        "placement TTL before it copies).",
        f"- Per second of copy and catch-up: {_f(result['rows_per_copy_second'], 0)} rows/s (sum of rows_copied / sum "
        f"of copy_started_at to switched_at: {result['copy_seconds']:.1f} s).",
        f"- Overall: {_f(result['rows_per_second_overall'], 0)} rows/s (rows / the {result['rebalance_seconds']:.1f} s "
        "of `rebalance --yes`).",
        "",
        "## Errors, lost and duplicated writes",
        "",
        f"- Requests: {result['total']['requests']} in all, {result['total']['ok']} successful, "
        f"{result['total']['errors']} errors, {result['total']['expected_409']} expected 409s "
        f"(`item_not_available`, `price_changed`). Failures by status: {json.dumps(outcome['failures_by_status'])}."
        + (f" Locust users ran out of listings {outcome['pool_exhausted']} times."
           if outcome["pool_exhausted"] else ""),
        f"- `manage.py audit_ledger` after the run: exit {outcome['audit_rc']} "
        f"(`{outcome['audit_output'][-1] if outcome['audit_output'] else ''}`).",
        "- Rows created during the run (counted on each worker before the load and after it, on the shards the worker "
        "owns, so a move's copy is not counted) against the successful requests Locust saw:",
        "",
        "| rows | created | successful requests | difference |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {what} | {created} | {seen} | {created - seen} |" for what, created, seen in result["checks"]),
        "",
        "Rows on shards their worker does not own after the run: "
        f"{outcome['counts_after']['rows on shards not owned']}.",
        "",
        "## Moves",
        "",
        "| move | shard | from | to | state | rows | duration s | copy s | pause (mover) ms | pause (client) ms | "
        "writes in flight | switch at s |",
        "| ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in moves:
        copy = m.switched_at - m.copy_started_at if m.switched_at and m.copy_started_at else None
        lines.append(f"| {m.id} | {m.shard} | {m.source} | {m.target} | {m.state} | {m.rows_copied}/{m.rows_total} | "
                     f"{_f(m.duration)} | {_f(copy)} | {_f(m.write_pause_ms)} | {_f(m.client_pause_ms)} | "
                     f"{m.writes_in_flight} | {_f(None if m.switched_at is None else m.switched_at - t0)} |")
    lines += ["", f"The chart: `{chart.name}` (successful requests/s and write p99 per second; a thin line at each "
              "switch, the rebalance shaded).", ""]
    (RESULTS_DIR / "rebalance-latest.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines), target_rows


def write_csv(result, outcome):
    """One row per figure: metric, scope, value, unit."""
    rows = []
    for phase, f in result["figures"].items():
        for key, unit in (("rps", "req/s"), ("write_rps", "req/s"), ("write_p50", "ms"), ("write_p99", "ms"),
                          ("write_max", "ms"), ("errors", "requests"), ("expected_409", "requests"),
                          ("seconds", "s"), ("machine_cores", "cores"), ("other_cores", "cores")):
            rows.append((key, phase, f[key], unit))
    for key in ("ratio", "write_ratio", "after_ratio"):
        rows.append((f"throughput_{key}", "during/before" if key != "after_ratio" else "after/before", result[key], ""))
    for who in ("mover", "client"):
        for stat in ("n", "p50", "p99", "max"):
            rows.append((f"write_pause_{who}", stat, result[who][stat], "shards" if stat == "n" else "ms"))
    for key in ("rows", "move_seconds", "copy_seconds", "rebalance_seconds", "rows_per_move_second",
                "rows_per_copy_second", "rows_per_second_overall"):
        rows.append((key, "rebalance", result[key], "rows" if key == "rows" else ("rows/s" if "per" in key else "s")))
    for what, created, seen in result["checks"]:
        rows.append(("rows_created", what, created, "rows"))
        rows.append(("successful_requests", what, seen, "requests"))
    rows.append(("audit_ledger_exit", "after", outcome["audit_rc"], ""))
    rows.append(("rebalance_exit", "rebalance", outcome["rebalance_rc"], ""))
    t0 = outcome["timeline"]["load_start"]
    for m in result["moves"]:
        scope = f"move {m.id} shard {m.shard} {m.source}->{m.target}"
        for key, value, unit in (("rows_copied", m.rows_copied, "rows"), ("duration", m.duration, "s"),
                                 ("write_pause_mover", m.write_pause_ms, "ms"),
                                 ("write_pause_client", m.client_pause_ms, "ms"),
                                 ("writes_in_flight_at_switch", m.writes_in_flight, "requests"),
                                 ("switched_at", None if m.switched_at is None else m.switched_at - t0,
                                  "s from load start")):
            rows.append((key, scope, value, unit))
    with open(RESULTS_DIR / "rebalance-latest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", "scope", "value", "unit"])
        for metric, scope, value, unit in rows:
            shown = "" if value is None else (f"{value:.3f}" if isinstance(value, float) else value)
            writer.writerow([metric, scope, shown, unit])


def write_chart(result, outcome):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline, requests = outcome["timeline"], outcome["requests"]
    t0 = timeline["load_start"]
    seconds = int(timeline["load_stop"] - t0)  # whole seconds: the last, partial one would look like a drop
    ok, writes, latencies = [0] * seconds, [0] * seconds, [[] for _ in range(seconds)]
    for r in requests:
        if not r.ok:
            continue
        ended = int(r.end - t0)
        if 0 <= ended < seconds:
            ok[ended] += 1
            writes[ended] += r.write
        started = int(r.start - t0)
        if r.write and 0 <= started < seconds:
            latencies[started].append(r.ms)
    x = list(range(seconds))
    p99 = [percentile(values, 99) if values else float("nan") for values in latencies]
    figure, (top, bottom, cpu_axis) = plt.subplots(3, 1, figsize=(11, 8), sharex=True, height_ratios=[3, 2, 1.3])
    top.plot(x, ok, drawstyle="steps-post", color="tab:blue", linewidth=1.2, label="successful requests/s")
    top.plot(x, writes, drawstyle="steps-post", color="tab:green", linewidth=1.0, label="of which writes/s")
    bottom.plot(x, p99, drawstyle="steps-post", color="tab:red", linewidth=1.0,
                label="write p99 (ms), writes by the second they started")
    samples = outcome["cpu"].samples
    cpu_axis.plot([m - t0 for m, _, _ in samples], [busy for _, busy, _ in samples], color="0.35", linewidth=1.0,
                  label="machine CPU (cores)")
    cpu_axis.plot([m - t0 for m, _, _ in samples], [max(0.0, busy - ours) for _, busy, ours in samples],
                  color="tab:purple", linewidth=1.0, label="other work, not this benchmark (cores)")
    cpu_axis.set_ylim(0, psutil.cpu_count() * 1.05)
    cpu_axis.set_ylabel("CPU (cores)")
    cpu_axis.legend(loc="lower left", fontsize=8, ncol=2)
    for axis in (top, bottom, cpu_axis):
        axis.axvspan(0, RAMP_SECONDS, facecolor="none", edgecolor="0.75", hatch="//", linewidth=0,
                     label="start-up (not in before)" if axis is top else None)
        axis.axvspan(timeline["add_start"] - t0, timeline["add_end"] - t0, color="0.85", alpha=0.6,
                     label="add-node" if axis is top else None)
        axis.axvspan(timeline["rebalance_start"] - t0, timeline["rebalance_end"] - t0, color="tab:orange", alpha=0.15,
                     label="rebalance --yes" if axis is top else None)
        for index, move in enumerate(m for m in result["moves"] if m.switched_at is not None):
            axis.axvline(move.switched_at - t0, color="0.3", linewidth=0.5,
                         label="a shard's switch" if axis is top and index == 0 else None)
        axis.grid(True, alpha=0.3)
    top.set_ylabel("requests/s")
    top.set_ylim(bottom=0)
    bottom.set_ylabel("write p99 (ms)")
    steady = [value for second, value in enumerate(p99) if second >= RAMP_SECONDS and not math.isnan(value)]
    bottom.set_ylim(0, 1.15 * max(steady, default=1000))  # the start-up seconds of the load can be off the scale
    cpu_axis.set_xlabel("seconds from the start of the load")
    top.legend(loc="lower left", fontsize=8, ncol=3)
    bottom.legend(loc="upper left", fontsize=8)
    top.set_title(f"Online rebalance 2 → 3 workers under load: {len(result['done'])} shard moves "
                  f"({outcome['machine']['date']}, commit {outcome['machine']['commit'].split()[0]})", fontsize=10)
    figure.tight_layout()
    path = RESULTS_DIR / "rebalance-latest.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# Main ---------------------------------------------------------------------------------------------------------------


def writers(prep, shards, users):
    """For each locust user, its own demo user (prep slot) on each of `shards`, where prep has one."""
    by_shard = defaultdict(list)
    for slot in prep["slots"]:
        by_shard[slot["shard"]].append(slot)
    return [[by_shard[shard][index] for shard in shards if len(by_shard[shard]) > index] for index in range(users)]


class HotShard(threading.Thread):
    """Keeps the number of the shard being moved in a file (the locust users write to it more); between moves, a
    shard of `shards` in turn, a new one every ROTATE seconds, so that the load is the same before and after."""

    ROTATE = 7.0

    def __init__(self, name, path, shards, after_id):
        super().__init__(daemon=True)
        self.name_, self.path, self.shards, self.after_id = name, Path(path), shards, after_id
        self.stopped = threading.Event()
        self.write(self.rotating())

    def rotating(self):
        return self.shards[int(time.time() // self.ROTATE) % len(self.shards)] if self.shards else None

    def write(self, shard):
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("" if shard is None else str(shard))
        os.replace(temporary, self.path)

    def run(self):
        connection = _coordinator(self.name_)
        try:
            while not self.stopped.wait(0.1):
                with connection.cursor() as cursor:
                    cursor.execute("SELECT shard FROM sharding_shard_move WHERE id > %s AND state NOT IN ('done', "
                                   "'aborted') ORDER BY id LIMIT 1", [self.after_id])
                    row = cursor.fetchone()
                self.write(row[0] if row else self.rotating())
        finally:
            connection.close()

    def stop(self):
        self.stopped.set()
        self.join(timeout=5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=8, help="concurrent locust users (default 8)")
    parser.add_argument("--before", type=int, default=30, help="seconds of load before the rebalance (default 30)")
    parser.add_argument("--after", type=int, default=30, help="seconds of load after the rebalance (default 30)")
    parser.add_argument("--items", type=int, default=112_000,
                        help="items to seed; about 90%% are listed (default 112000)")
    parser.add_argument("--seed-users", type=int, default=10_000)
    parser.add_argument("--data-seed", type=int, default=11)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the cluster and its data when it exists and is seeded "
                             "(extra workers are drained first)")
    parser.add_argument("--writers", choices=("moved", "all"), default="moved",
                        help="demo users the load writes as: those of the shards that will move (default), "
                             "or all shards")
    parser.add_argument("--hot", type=float, default=0.5,
                        help="share of the tasks done as the demo user of the shard being moved (default 0.5)")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds each locust user waits between requests")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--gunicorn-threads", type=int, default=2)
    parser.add_argument("--cluster", default=PREFIX, help=f"cluster name, starting with {PREFIX!r} (default {PREFIX})")
    args = parser.parse_args()
    if not args.cluster.startswith(PREFIX):
        parser.error(f"the cluster name must start with {PREFIX!r}: this benchmark destroys and recreates it")
    name = args.cluster
    started = time.monotonic()
    machine = machine_info()
    log(f"== rebalance benchmark: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB; commit "
        f"{machine['commit']}; load average {', '.join(f'{v:.2f}' for v in machine['load_before'])}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-rebalance-"))
    log(f"== logs, the request log and raw locust output in {workdir}")
    outcome = {"machine": machine}
    server = None
    try:
        items, listed, how = prepare_cluster(name, args)
        outcome.update(items=items, listed=listed, cluster_how=how)
        log(f"== {name}: {items} items, {listed} listed")
        if listed < 100_000:
            log(f"warning: {listed} listings, fewer than the 100,000 the benchmark is meant for")
        # One demo user per Locust user and logical shard (load_prep takes demo users in id order, alternating
        # between the workers, and consecutive ids are on consecutive shards).
        slots = max(64, min(64 * args.users, args.seed_users // 2))
        log(f"== {name}: tokens and money for {slots} demo users ({slots // 64} per logical shard)")
        prep_path = workdir / "prep.json"
        run([sys.executable, "-m", "benchmarks.load_prep", "--slots", str(slots), "--out", str(prep_path)],
            env={"CLUSTER_NAME": name})
        prep = json.loads(prep_path.read_text())
        predicted, worker_after = predicted_moves(name)
        log(f"== the rebalance should move {len(predicted)} shards: {predicted}")
        # "mix": every slot gets pools of listings to buy, on the same worker (or on another) before and after
        data = run_data(prep, name, "mix", random.Random(1), worker_after=worker_after)
        shards = predicted if args.writers == "moved" and predicted else list(range(64))
        data["writers"] = writers(prep, shards, args.users)
        written = sorted({slot["shard"] for group in data["writers"] for slot in group})
        outcome.update(identities=sum(map(len, data["writers"])), identities_each=len(data["writers"][0]),
                       written_shards=written,
                       predicted_text=f"{len(predicted)} shards: {', '.join(map(str, predicted))}")
        log(f"== each locust user writes as {outcome['identities_each']} demo users, on shards {written}")
        counts_before = write_counts(name)
        moves_before = last_move_id(name)
        hot = HotShard(name, workdir / "hot", written, moves_before)
        log(f"== gunicorn ({args.gunicorn_workers} workers x {args.gunicorn_threads} threads) "
            f"and maintenance on {name}")
        server = Server(name, False, args, workdir)
        cpu = CpuSampler(cluster_dir(name))
        requests_path, stop_file = workdir / "requests.csv", workdir / "stop"
        log(f"== load: {args.users} locust users ({LOCUST_CLASS}); the rebalance starts in {args.before}s")
        timeline = {"load_start": time.time()}
        run_handle = start_locust(server, LOCUST_CLASS, data, None, args, workdir, "rebalance", locustfile=LOCUSTFILE,
                                  env={"BENCH_REQUESTS": str(requests_path), "BENCH_STOP_FILE": str(stop_file),
                                       "BENCH_HOT_FILE": str(hot.path), "BENCH_HOT": str(args.hot)})
        hot.start()
        cpu.start()
        try:
            sleep_until(timeline["load_start"] + args.before)
            log("== python -m cluster add-node")
            outcome["add_rc"], outcome["add_output"], timeline["add_start"], timeline["add_end"] = step(
                [sys.executable, "-m", "cluster", "add-node", "--name", name], "add-node")
            if outcome["add_rc"] == 0:
                log("== manage.py rebalance --yes")
                rc, output, timeline["rebalance_start"], timeline["rebalance_end"] = step(
                    [sys.executable, "manage.py", "rebalance", "--yes"], "rebalance", env={"CLUSTER_NAME": name})
            else:
                rc, output = None, ["(not run: add-node failed)"]
                timeline["rebalance_start"] = timeline["rebalance_end"] = timeline["add_end"]
            outcome["rebalance_rc"], outcome["rebalance_output"] = rc, output
            log(f"== rebalance {'done' if rc == 0 else f'FAILED (exit {rc})'} in "
                f"{timeline['rebalance_end'] - timeline['rebalance_start']:.1f}s; load for {args.after}s more")
            sleep_until(timeline["rebalance_end"] + args.after)
        finally:
            timeline["load_stop"] = time.time()
            stop_file.touch()
            locust_figures = finish_locust(run_handle)
            hot.stop()
            cpu.stop()
        log(f"== load stopped: {locust_figures['requests']} requests, {locust_figures['errors']} errors")
        server.stop()
        server = None
        outcome.update(timeline=timeline, locust=locust_figures, load_after=os.getloadavg(),
                       failures_by_status=locust_figures["failures_by_status"],
                       pool_exhausted=locust_figures["pool_exhausted"])
        counts_after = write_counts(name)
        log("== manage.py audit_ledger")
        outcome["audit_rc"], outcome["audit_output"], _, _ = step(
            [sys.executable, "manage.py", "audit_ledger"], "audit", env={"CLUSTER_NAME": name}
        )
        moves = moves_since(name, moves_before)
        requests = read_requests(requests_path)
        outcome.update(requests=requests, counts_before=counts_before, counts_after=counts_after, cpu=cpu)
        result = analyse(requests, moves, timeline, counts_before, counts_after, cpu)
        text, target_rows = write_results(result, outcome, machine, args, started)
    finally:
        if server is not None:
            server.stop()
        if config_path(name).exists():
            subprocess.run([sys.executable, "-m", "cluster", "down", "--name", name], cwd=REPO, check=False,
                           stdout=subprocess.DEVNULL)
    log("")
    log(text)
    log("written to benchmarks/results/rebalance-latest.md, .csv and .png "
        f"({(time.monotonic() - started) / 60:.1f} min)")
    log("targets: " + "; ".join(f"{what}: {verdict}" for what, _, verdict in target_rows))


if __name__ == "__main__":
    main()
