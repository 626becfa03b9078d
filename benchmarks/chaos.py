"""The fault-injection suite (`make chaos`): the API under a mixed load while nodes crash, vanish, slow down or lose
connections in the middle of two-phase commit; the invariants checked after each fault.

    .venv/bin/python -m benchmarks.chaos [--window 15] [--gap 10] [--threads 12] [--faults all|name,name]

Not part of `make test`. It runs as root (it installs iptables if missing and adds DROP rules on lo), only on its own
cluster `chaos`, which it creates afresh (destroying an old one), seeds (`seed_demo --users 200 --items 2000
--sales 0 --seed 1`) and stops at the end (`cluster down`, data kept). Steps:

1. a fault-injecting proxy (benchmarks/chaos_proxy.py) in front of each node's pgbouncer; the app reaches the nodes
   only through it: a copy of cluster.json with the proxy ports (CLUSTER_CONFIG) and the catalogue's
   sharding_node.bouncer_port pointed at the proxy (restored at the end);
2. gunicorn serving the app (production settings) and `manage.py maintenance` beside it (straight to the real
   pgbouncers, so recovery is not cut by the proxy's faults);
3. 24 users registered through the API (12 on each worker), then the load client (benchmarks/chaos_load.py) with
   --threads threads in lanes: each worker's users, cross-worker purchases, searches;
4. each fault in turn: a healthy gap (the baseline), the fault for --window seconds, the heal, a few seconds of load,
   then the load pauses (every pending retry gets its answer), in-doubt transactions must be gone within 60 s of
   the heal, and the invariants are checked; then the load resumes;
5. benchmarks/results/chaos-latest.md (figures, targets met or missed, findings with the server's tracebacks) and
   benchmarks/results/chaos-latest.png (good answers per second and p99 latency per second, faults shaded).

Faults (--faults takes these names), in this order:
  kill-worker-postgres       SIGKILL of worker1's postmaster; `cluster up` after the window
  kill-worker-pgbouncer      SIGKILL of worker2's pgbouncer; `cluster up` after the window
  kill-coordinator-postgres  SIGKILL of the coordinator's postmaster; `cluster up` after the window
  partition-worker           iptables DROP on lo of every packet to/from worker1's PostgreSQL, pgbouncer and proxy ports
  slow-worker                the proxy holds every chunk to/from worker2 back 200 ms, each way
  cut-prepare                the proxy closes worker1's connection once PREPARE TRANSACTION is answered
  cut-decision               the proxy closes the coordinator's connection at the decision record (after/before COMMIT)
  cut-commit-prepared        the proxy closes worker2's connection at COMMIT PREPARED (after/before it)
"""
import argparse
import atexit
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import psycopg2

from benchmarks import UNTHROTTLED_ENV

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent
CLUSTER = "chaos"
CHAIN = "MKTCHAOS"
COORDINATOR = "coordinator"
USERS_PER_WORKER = 12
SLOW_SECONDS = 0.2
CUT_MAX, CUT_PROBABILITY = 10, 0.5
POST_HEAL_SECONDS = 5
IN_DOUBT_LIMIT = 60
LATENCY_LIMIT = 5.0
RATE_TARGET = 0.8
BASELINE_SKIP = 2.0  # seconds after a resume left out of the baseline
ABANDONED_AFTER = 10  # seconds in a transaction, idle, with the load paused: abandoned by its client
FIRST_SETTLE = 20  # seconds the load's pause may take before the check for abandoned transactions


def log(message=""):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# Faults ------------------------------------------------------------------------


class Fault:
    name = node = text = ""

    def start(self, run):
        raise NotImplementedError

    def heal(self, run):
        raise NotImplementedError


class KillPostmaster(Fault):
    def __init__(self, name, node):
        self.name, self.node = name, node
        self.text = f"SIGKILL of {node}'s postmaster; `cluster up` after the window"

    def start(self, run):
        from cluster import core

        pid = core.kill_postmaster(CLUSTER, self.node)
        core.wait_for_exit(pid, timeout=10)
        return f"killed postmaster {pid}"

    def heal(self, run):
        return run.cluster_up()


class KillBouncer(Fault):
    def __init__(self, name, node):
        self.name, self.node = name, node
        self.text = f"SIGKILL of {node}'s pgbouncer; `cluster up` after the window"

    def start(self, run):
        from cluster import bouncer, core
        from cluster.config import find_node, load_config

        pid = bouncer.pid(find_node(load_config(CLUSTER), self.node))
        if not pid:
            raise RuntimeError(f"{self.node}'s pgbouncer is not running")
        os.kill(pid, signal.SIGKILL)
        core.wait_for_exit(pid, timeout=10)
        return f"killed pgbouncer {pid}"

    def heal(self, run):
        return run.cluster_up()


class Partition(Fault):
    def __init__(self, name, node):
        self.name, self.node = name, node
        self.text = (f"iptables DROP on lo of every packet to and from {node}'s PostgreSQL, pgbouncer and proxy "
                     "ports (INPUT and OUTPUT, --dport and --sport)")

    def start(self, run):
        node = run.node(self.node)
        ports = [node["port"], node["bouncer_port"], run.proxy_ports[self.node]]
        run.firewall.drop(ports)
        return f"DROP on ports {', '.join(map(str, ports))}"

    def heal(self, run):
        run.firewall.clear()
        return "rules removed"


class Slow(Fault):
    def __init__(self, name, node, seconds):
        self.name, self.node, self.seconds = name, node, seconds
        self.text = f"the proxy holds every chunk to and from {node} back {seconds * 1000:.0f} ms, each way"

    def start(self, run):
        run.proxy.send("delay", listener=self.node, seconds=self.seconds)
        return f"delay {self.seconds}s"

    def heal(self, run):
        run.proxy.send("clear", listener=self.node)
        return "delay off"


class Cut(Fault):
    def __init__(self, name, node, pattern, when, text):
        self.name, self.node, self.pattern, self.when, self.text = name, node, pattern, when, text

    def start(self, run):
        run.proxy.send("cut", listener=self.node, pattern=self.pattern, when=self.when, max=CUT_MAX,
                       probability=CUT_PROBABILITY)
        return f"cut {self.when} /{self.pattern}/, at most {CUT_MAX}, p={CUT_PROBABILITY}"

    def heal(self, run):
        stats = run.proxy.send("stats")["listeners"][self.node]
        run.proxy.send("clear", listener=self.node)
        self.cut_log = stats["cut_log"]
        self.rules = stats["rules"]
        return f"{sum(r['cuts'] for r in stats['rules'])} cuts of {sum(r['matches'] for r in stats['rules'])} matches"


FAULTS = [
    KillPostmaster("kill-worker-postgres", "worker1"),
    KillBouncer("kill-worker-pgbouncer", "worker2"),
    KillPostmaster("kill-coordinator-postgres", COORDINATOR),
    Partition("partition-worker", "worker1"),
    Slow("slow-worker", "worker2", SLOW_SECONDS),
    Cut("cut-prepare", "worker1", r"^PREPARE TRANSACTION", "after",
        f"the proxy closes worker1's connection once PREPARE TRANSACTION is answered ({CUT_MAX} at most, "
        f"p={CUT_PROBABILITY})"),
    Cut("cut-decision", COORDINATOR, r"INSERT INTO sharding_transaction_decision", "alternate",
        "the proxy closes the coordinator's connection at the decision record: once its COMMIT is answered, and "
        f"before it is sent, alternately ({CUT_MAX} at most, p={CUT_PROBABILITY})"),
    Cut("cut-commit-prepared", "worker2", r"^COMMIT PREPARED", "alternate",
        "the proxy closes worker2's connection at COMMIT PREPARED: once it is answered, and before it is sent, "
        f"alternately ({CUT_MAX} at most, p={CUT_PROBABILITY})"),
]
FAULT_NAMES = [fault.name for fault in FAULTS]


# iptables ----------------------------------------------------------------------


class Firewall:
    """DROP rules in a chain of our own, jumped to from INPUT (-i lo) and OUTPUT (-o lo); removed whatever happens."""

    def __init__(self):
        self.active = False

    @staticmethod
    def ensure_installed():
        if shutil.which("iptables"):
            return
        log("iptables is missing: apt-get install -y iptables")
        subprocess.run(["apt-get", "install", "-y", "-q", "iptables"], check=False, stdout=subprocess.DEVNULL)
        if not shutil.which("iptables"):
            subprocess.run(["apt-get", "update", "-q"], check=False, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-q", "iptables"], check=True, stdout=subprocess.DEVNULL)

    @staticmethod
    def _ipt(*args, check=True):
        return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, check=check)

    def drop(self, ports):
        self.clear()
        self.active = True
        self._ipt("-N", CHAIN)
        for port in ports:
            for direction in ("--dport", "--sport"):
                self._ipt("-A", CHAIN, "-p", "tcp", direction, str(port), "-j", "DROP")
        self._ipt("-I", "INPUT", "-i", "lo", "-j", CHAIN)
        self._ipt("-I", "OUTPUT", "-o", "lo", "-j", CHAIN)

    def clear(self):
        """Remove the jumps and the chain (also one left over by an earlier run); safe to call any time."""
        for hook, iface in (("INPUT", "-i"), ("OUTPUT", "-o")):
            for _ in range(20):
                if self._ipt("-D", hook, iface, "lo", "-j", CHAIN, check=False).returncode != 0:
                    break
        self._ipt("-F", CHAIN, check=False)
        self._ipt("-X", CHAIN, check=False)
        self.active = False

    def leftovers(self):
        out = self._ipt("-S", check=False).stdout
        return [line for line in out.splitlines() if CHAIN in line]


# Processes ---------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lines:
    """A subprocess's stdout read line by line in a thread, so the orchestrator can wait with a timeout."""

    def __init__(self, stream):
        self.queue = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def get(self, timeout):
        line = self.queue.get(timeout=timeout)
        if line is None:
            raise RuntimeError("the process ended")
        return line


def stop_process(process, timeout=30):
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class Run:
    def __init__(self, args):
        self.args = args
        self.faults = [f for f in FAULTS if args.faults == "all" or f.name in args.faults.split(",")]
        unknown = set(args.faults.split(",")) - set(FAULT_NAMES) - {"all", "none"}
        if unknown:
            raise SystemExit(f"chaos: unknown fault(s) {', '.join(sorted(unknown))}: use {', '.join(FAULT_NAMES)}")
        self.workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
        self.firewall = Firewall()
        self.processes = {}
        self.catalogue_ports = None  # the real bouncer ports, to restore
        self.marks = []  # per fault: dict of times and results
        self.started = time.time()
        self.total_before = None

    # Cluster -----------------------------------------------------------------

    def env(self, **extra):
        env = {**os.environ, "CLUSTER_NAME": CLUSTER, **extra}
        env.pop("CLUSTER_CONFIG", None)
        env.update(extra)
        return env

    def manage(self, *args, check=True, timeout=600):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env(), capture_output=True,
                              text=True, check=check, timeout=timeout)

    def cluster(self, *args, check=True, timeout=300):
        return subprocess.run([sys.executable, "-m", "cluster", *args, "--name", CLUSTER], cwd=REPO, env=self.env(),
                              capture_output=True, text=True, check=check, timeout=timeout)

    def cluster_up(self):
        started = time.monotonic()
        out = self.cluster("up", check=False, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"cluster up failed: {out.stderr.strip() or out.stdout.strip()}")
        return f"cluster up in {time.monotonic() - started:.1f}s"

    def fresh_cluster(self):
        from cluster.config import config_path

        if config_path(CLUSTER).exists():
            log("destroying the old chaos cluster")
            self.cluster("destroy", "--yes")
        log("cluster up --name chaos --workers 2")
        self.cluster("up", "--workers", "2")
        log("migrate_cluster")
        self.manage("migrate_cluster")
        log("seed_demo --users 200 --items 2000 --sales 0 --seed 1")
        self.manage("seed_demo", "--users", "200", "--items", "2000", "--sales", "0", "--seed", "1")
        from cluster.config import load_config

        self.cfg = load_config(CLUSTER)

    def node(self, name):
        return next(n for n in self.cfg["nodes"] if n["name"] == name)

    def connect(self, name, timeout=3):
        node = self.node(name)
        conn = psycopg2.connect(host=node["host"], port=node["port"], dbname=self.cfg["database"],
                                user=self.cfg["user"], password=self.cfg["password"], connect_timeout=timeout)
        conn.autocommit = True
        return conn

    def query(self, name, sql, params=()):
        conn = self.connect(name)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    @property
    def workers(self):
        return [n["name"] for n in self.cfg["nodes"] if n["role"] == "worker"]

    # The proxy, the config copy and the catalogue -------------------------------

    def start_proxy(self):
        from benchmarks.chaos_proxy import ProxyControl

        listens = [f"{n['name']}=127.0.0.1:0:{n['host']}:{n['bouncer_port']}" for n in self.cfg["nodes"]]
        command = [sys.executable, "-m", "benchmarks.chaos_proxy", "--max-seconds", str(self.budget_seconds()),
                   "--seed", "1", *[arg for listen in listens for arg in ("--listen", listen)]]
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=open(self.workdir / "proxy.log", "w"), text=True)
        self.processes["proxy"] = process
        ready = json.loads(Lines(process.stdout).get(timeout=15))
        self.proxy = ProxyControl(ready["control"])
        self.proxy_ports = ready["listeners"]
        log(f"proxy: {', '.join(f'{k} :{v}' for k, v in self.proxy_ports.items())} (control :{ready['control']})")

        copy = json.loads(json.dumps(self.cfg))
        for node in copy["nodes"]:
            node["bouncer_port"] = self.proxy_ports[node["name"]]
        self.config_copy = self.workdir / "cluster-via-proxy.json"
        fd = os.open(self.config_copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(copy, f, indent=2)

        rows = self.query(COORDINATOR, "SELECT name, bouncer_port FROM sharding_node")
        self.catalogue_ports = dict(rows)
        self.set_catalogue_ports(
            {name: self.proxy_ports[name] for name in self.catalogue_ports if name in self.proxy_ports}
        )

    def set_catalogue_ports(self, ports):
        conn = self.connect(COORDINATOR, timeout=5)
        try:
            conn.autocommit = False
            with conn.cursor() as cur:
                for name, port in ports.items():
                    cur.execute("UPDATE sharding_node SET bouncer_port = %s WHERE name = %s", (port, name))
                cur.execute("UPDATE sharding_placement_version SET version = version + 1")
            conn.commit()
        finally:
            conn.close()

    def restore_catalogue(self):
        if self.catalogue_ports:
            self.set_catalogue_ports(self.catalogue_ports)
            self.catalogue_ports = None

    # Server --------------------------------------------------------------------

    def start_server(self):
        self.url = f"http://127.0.0.1:{free_port()}"
        env = self.env(MARKETPLACE_ENV="production", DJANGO_SETTINGS_MODULE="app.settings",
                       DJANGO_SECRET_KEY="chaos-only-secret-key-" + "x" * 40, DJANGO_SECURE_SSL_REDIRECT="0",
                       DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost", SITE_URL=self.url, **UNTHROTTLED_ENV)
        server_env = {**env, "CLUSTER_CONFIG": str(self.config_copy)}
        self.server_log = self.workdir / "server.log"
        self.maintenance_log = self.workdir / "maintenance.log"
        port = self.url.rsplit(":", 1)[1]
        self.processes["server"] = subprocess.Popen(
            [str(BIN / "gunicorn"), "app.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(self.args.gunicorn_workers), "--threads", str(self.args.gunicorn_threads),
             "--worker-class", "gthread", "--timeout", "120", "--graceful-timeout", "10", "--log-level", "warning"],
            cwd=REPO, env=server_env, stdout=open(self.server_log, "w"), stderr=subprocess.STDOUT)
        self.processes["maintenance"] = subprocess.Popen(
            [sys.executable, "manage.py", "maintenance"], cwd=REPO, env=env,
            stdout=open(self.maintenance_log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.processes["server"].poll() is not None:
                raise SystemExit(f"gunicorn exited: see {self.server_log}")
            try:
                with urllib.request.urlopen(self.url + "/health/", timeout=5) as response:
                    if response.status == 200:
                        log(f"gunicorn on {self.url} ({self.args.gunicorn_workers} workers x "
                            f"{self.args.gunicorn_threads} threads), maintenance beside it")
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"gunicorn did not become healthy in 60s: see {self.server_log}")

    def api(self, method, path, body=None, token=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  **({"Authorization": f"Token {token}"} if token else {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    # Users and the plan -----------------------------------------------------------

    def register_users(self):
        placement = dict(self.query(COORDINATOR, "SELECT shard, node FROM sharding_shard_placement"))
        shards = self.cfg["logical_shards"]
        users = {w: [] for w in self.workers}
        stamp = secrets.token_hex(3)
        for index in range(10 * USERS_PER_WORKER * len(self.workers)):
            if all(len(v) >= USERS_PER_WORKER for v in users.values()):
                break
            name, password = f"chaos_{stamp}_{index}", secrets.token_urlsafe(16)
            status, body = self.api("POST", "/api/v1/auth/register",
                                    {"username": name, "email": f"{name}@example.com", "password": password})
            if status != 201:
                raise SystemExit(f"chaos: register {name}: {status} {body}")
            uid = int(body["id"])
            node = placement[uid % shards]
            if len(users[node]) >= USERS_PER_WORKER:
                continue  # that worker has its users already
            status, token = self.api("POST", "/api/v1/auth/token", {"username": name, "password": password})
            if status != 200:
                raise SystemExit(f"chaos: token for {name}: {status} {token}")
            users[node].append({"id": uid, "token": token["token"], "node": node, "username": name})
        self.users = [u for v in users.values() for u in v]
        log(f"registered {len(self.users)} users: " + ", ".join(f"{w} {len(v)}" for w, v in users.items()))

    def write_plan(self):
        listings = []
        for worker in self.workers:
            for item_id, seller, price in self.query(
                    worker, "SELECT id, user_id, price FROM catalog_item WHERE status = 'listed' ORDER BY id"):
                listings.append({"id": item_id, "seller": seller, "price": price, "node": worker})
        plan = {"url": self.url, "workers": self.workers, "users": self.users, "listings": listings}
        self.plan_path = self.workdir / "plan.json"
        self.plan_path.write_text(json.dumps(plan))
        return len(listings)

    def total_balance(self):
        return sum(self.query(w, "SELECT coalesce(sum(balance), 0) FROM wallet_wallet")[0][0] for w in self.workers)

    # The load client ---------------------------------------------------------------

    def start_load(self):
        self.events_path = self.workdir / "events.jsonl"
        self.keys_path = self.workdir / "keys.json"
        command = [sys.executable, "-m", "benchmarks.chaos_load", "--plan", str(self.plan_path),
                   "--events", str(self.events_path), "--keys", str(self.keys_path),
                   "--threads", str(self.args.threads),
                   "--think", str(self.args.think), "--max-seconds", str(self.budget_seconds())]
        process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=open(self.workdir / "load.log", "w"), text=True)
        self.processes["load"] = process
        self.load_lines = Lines(process.stdout)
        started = json.loads(self.load_lines.get(timeout=120))
        self.lanes = started["lanes"]
        log(f"load: {len(self.lanes)} threads in lanes {', '.join(sorted(set(self.lanes)))}; "
            f"{started['listings']} listings on sale")

    def load_command(self, command, timeout=90):
        process = self.processes["load"]
        process.stdin.write(command + "\n")
        process.stdin.flush()
        return json.loads(self.load_lines.get(timeout=timeout))

    def budget_seconds(self):
        per_fault = self.args.gap + self.args.window + POST_HEAL_SECONDS + IN_DOUBT_LIMIT + 90
        return int(300 + per_fault * len(self.faults))

    # Checks --------------------------------------------------------------------------

    def prepared(self):
        """{node: [(gid, unix time prepared)]} of every node's pg_prepared_xacts; an unreachable node raises."""
        return {name: [(gid, float(at)) for gid, at in self.query(
                    name, "SELECT gid, extract(epoch FROM prepared) FROM pg_prepared_xacts")]
                for name in [COORDINATOR, *self.workers]}

    def watch_in_doubt(self, healed_at):
        """Poll every node once a second from the heal on, in a thread: when were the prepared transactions that
        existed at the heal (prepared before it) all gone? Returns a function giving (seconds or None, left)."""
        state = {"settled": None, "left": {}, "stop": False}

        def poll():
            while not state["stop"] and time.time() < healed_at + IN_DOUBT_LIMIT + 5:
                try:
                    found = self.prepared()
                except psycopg2.Error as exc:
                    state["left"] = {"error": str(exc).strip().splitlines()[0]}
                    time.sleep(1)
                    continue
                old = {name: [(gid, round(time.time() - at, 1)) for gid, at in rows if at < healed_at]
                       for name, rows in found.items()}
                old = {name: rows for name, rows in old.items() if rows}
                state["left"] = old
                if not old:
                    state["settled"] = time.time() - healed_at
                    return
                time.sleep(1)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()

        def result():
            thread.join(timeout=max(0.0, healed_at + IN_DOUBT_LIMIT + 6 - time.time()))
            state["stop"] = True
            return state["settled"], state["left"]

        return result

    def wait_no_prepared(self, timeout):
        """Seconds until no node has any prepared transaction at all (the load paused); None after `timeout`."""
        started = time.time()
        left = {}
        while time.time() < started + timeout:
            try:
                left = {name: rows for name, rows in self.prepared().items() if rows}
            except psycopg2.Error as exc:
                left = {"error": str(exc).strip().splitlines()[0]}
            if not left:
                return time.time() - started, {}
            time.sleep(1)
        return None, left

    ABANDONED_SQL = """
        SELECT a.pid, extract(epoch FROM now() - a.xact_start), a.state, left(a.query, 160), a.client_port,
               (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid)
        FROM pg_stat_activity a
        WHERE a.datname = current_database() AND a.state LIKE 'idle in transaction%%'
          AND a.xact_start < now() - make_interval(secs => %s)"""

    def end_abandoned(self, older_than=ABANDONED_AFTER):
        """Sessions idle in a transaction for longer than `older_than` s on any node (a client that vanished without
        its connection closing: they hold their row locks): recorded, then ended, so the next fault starts clean."""
        found = {}
        for name in [COORDINATOR, *self.workers]:
            rows = self.query(name, self.ABANDONED_SQL, (older_than,))
            if rows:
                found[name] = [{"pid": pid, "age_s": round(float(age), 1), "state": state, "query": query,
                                "client_port": port, "locks": locks} for pid, age, state, query, port, locks in rows]
                for row in rows:
                    self.query(name, "SELECT pg_terminate_backend(%s)", (row[0],))
        return found

    def check_invariants(self):
        """Every invariant, with the load paused and every retry answered: a list of (check, ok, detail)."""
        keys = json.loads(self.keys_path.read_text())
        results = []
        users = {u["id"]: u for u in self.users}

        # Money
        deposits = [k for k in keys.values() if k["op"] == "deposit"]
        seen = sum(k["amount"] for k in deposits if k["final"] and k["final"][0] == 201)
        unknown = [k for k in keys.values() if k["final"] is None]
        unknown_money = sum(k["amount"] for k in unknown if k["op"] == "deposit")
        total = self.total_balance()
        delta = total - self.total_before
        ok = delta == seen
        results.append(("money conserved", ok, f"balances grew by {delta / 100:,.2f}, deposits answered 201 sum to "
                        f"{seen / 100:,.2f}"
                        + (f" ({len(unknown)} keys without an answer, "
                           f"{unknown_money / 100:,.2f} of deposits among them)" if unknown else "")))

        # Listings sold once, purchases and sales in pairs
        purchases, sales, items = {}, {}, {}
        dup_sales = []
        for worker in self.workers:
            for pid, buyer, source, price in self.query(worker, "SELECT id, user_id, source_item_id, price "
                                                                "FROM orders_purchase"):
                purchases[pid] = (buyer, source, price, worker)
            for sid, seller, item, purchase_id in self.query(worker, "SELECT id, user_id, item_id, purchase_id "
                                                                     "FROM orders_sale"):
                if item in sales:
                    dup_sales.append(item)
                sales[item] = (sid, seller, purchase_id, worker)
            for item_id, status in self.query(worker, "SELECT id, status FROM catalog_item WHERE status = 'sold'"):
                items[item_id] = status
        results.append(("each listing sold once", not dup_sales,
                        f"{len(sales)} sales, {len(dup_sales)} listings sold twice"
                        + (f": {dup_sales[:5]}" if dup_sales else "")))
        unpaired = [
            pid for pid, (_, source, _, _) in purchases.items() if sales.get(source, (None, None, None))[2] != pid
        ]
        orphan_sales = [item for item, (_, _, pid, _) in sales.items() if pid not in purchases]
        not_sold = [item for item in sales if item not in items]
        results.append(("every purchase has its sale", not unpaired and not orphan_sales and not not_sold,
                        f"{len(purchases)} purchases; {len(unpaired)} without their sale, {len(orphan_sales)} sales "
                        f"without their purchase, {len(not_sold)} sold listings not marked sold"))

        # Exactly once per key
        problems = []
        ledger = {}
        for worker in self.workers:
            ids = [u["id"] for u in self.users if u["node"] == worker]
            for eid, uid, amount in self.query(worker, "SELECT id, user_id, amount FROM wallet_ledgerentry "
                                                       "WHERE kind = 'deposit' AND user_id = ANY(%s)", (ids,)):
                ledger[eid] = (uid, amount)
            stored = dict(((uid, key), (status, response)) for uid, key, status, response in self.query(
                worker, "SELECT user_id, key, status_code, response FROM core_idempotencykey "
                        "WHERE user_id = ANY(%s)", (ids,)))
            for key, entry in keys.items():
                if users[entry["user"]]["node"] != worker:
                    continue
                definitive = {tuple(a[1:]) for a in entry["answers"] if a[1] not in (0, -1, 500, 502, 503, 504)}
                if len(definitive) > 1:
                    problems.append(f"{key}: different answers {sorted(definitive)}")
                record = stored.get((entry["user"], key))
                final = entry["final"]
                if final is None:
                    continue
                if record is None:
                    if final[0] == 201:
                        problems.append(f"{key}: answered 201 but no idempotency record")
                    continue
                rec_id = (record[1] or {}).get("id") if isinstance(record[1], dict) else None
                if record[0] != final[0] or (final[0] == 201 and str(rec_id) != str(final[2])):
                    problems.append(f"{key}: the client saw {final[0]} id {final[2]}, the record says {record[0]} id "
                                    f"{rec_id}")
        ok_keys = {k: e for k, e in keys.items() if e["final"] and e["final"][0] == 201}
        for op, rows in (("deposit", ledger), ("purchase", purchases)):
            by_user_seen, by_user_rows = {}, {}
            for key, entry in ok_keys.items():
                if entry["op"] != op:
                    continue
                by_user_seen[entry["user"]] = by_user_seen.get(entry["user"], 0) + 1
                if int(entry["final"][2]) not in rows:
                    problems.append(f"{key}: {op} {entry['final'][2]} answered 201 is not in the database")
            for row in rows.values():
                if row[0] in users:
                    by_user_rows[row[0]] = by_user_rows.get(row[0], 0) + 1
            unknown_by_user = {}
            for entry in unknown:
                if entry["op"] == op:
                    unknown_by_user[entry["user"]] = unknown_by_user.get(entry["user"], 0) + 1
            for uid in users:
                have, want = by_user_rows.get(uid, 0), by_user_seen.get(uid, 0)
                if not want <= have <= want + unknown_by_user.get(uid, 0):
                    problems.append(f"user {uid}: {have} {op}s in the database, {want} keys answered 201"
                                    + (f" (+{unknown_by_user[uid]} unanswered)" if uid in unknown_by_user else ""))
        retried = sum(1 for e in keys.values() if len(e["answers"]) > 1)
        results.append(("each idempotent request took effect once", not problems,
                        f"{len(keys)} keys ({retried} retried, {len(unknown)} never answered): "
                        + ("; ".join(problems[:8]) + (f" ... {len(problems)} problems" if len(problems) > 8 else "")
                           if problems else "one effect per key answered 201, none for the others")))

        audit = self.manage("audit_ledger", check=False, timeout=120)
        lines = (audit.stdout + audit.stderr).strip().splitlines()
        results.append(("audit_ledger passes", audit.returncode == 0,
                        (lines[-1] if lines else "no output") if audit.returncode == 0 else " | ".join(lines[-4:])))
        return results

    # The schedule ------------------------------------------------------------------

    def run_fault(self, fault):
        mark = {"fault": fault.name, "node": fault.node, "text": fault.text}
        mark["gap_start"] = time.time()
        log(f"-- {fault.name}: healthy for {self.args.gap}s")
        time.sleep(self.args.gap)
        mark["start"] = time.time()
        mark["start_note"] = fault.start(self)
        log(f"-- {fault.name}: {mark['start_note']}; {self.args.window}s")
        time.sleep(max(0.0, mark["start"] + self.args.window - time.time()))
        mark["end"] = time.time()
        try:
            mark["heal_note"] = fault.heal(self)
        except Exception as exc:  # noqa: BLE001 - reported; the next step tries again
            mark["heal_note"] = f"heal failed: {exc}"
            log(f"   heal failed ({exc}); trying cluster up")
            self.firewall.clear()
            self.cluster_up()
        mark["healed"] = time.time()
        in_doubt = self.watch_in_doubt(mark["healed"])
        log(f"-- {fault.name}: healed in {mark['healed'] - mark['end']:.1f}s ({mark['heal_note']}); "
            f"{POST_HEAL_SECONDS}s more load")
        time.sleep(POST_HEAL_SECONDS)
        mark["pause"] = time.time()
        paused = self.load_command(f"pause {FIRST_SETTLE}", timeout=FIRST_SETTLE + 40)
        mark["pending_at_pause"] = paused["pending"]
        log(f"   load paused in {time.time() - mark['pause']:.1f}s ({paused['pending']} retries still pending); "
            f"listings left {paused['listings_left']}")
        mark["abandoned"] = self.end_abandoned()
        for node, rows in mark["abandoned"].items():
            for row in rows:
                log(f"   ABANDONED on {node}: pid {row['pid']} {row['state']} for {row['age_s']}s holding "
                    f"{row['locks']} locks, last query {row['query'][:70]!r}: ended it")
        if paused["pending"]:
            paused = self.load_command(f"pause {IN_DOUBT_LIMIT}", timeout=IN_DOUBT_LIMIT + 40)
            log(f"   {paused['pending']} retries still pending after a second settle")
        mark["paused"] = time.time()
        mark["pending_after_settle"] = paused["pending"]
        mark["settled_retries"] = paused["paused"]
        settled, left = in_doubt()
        leftover, rows = self.wait_no_prepared(timeout=max(5.0, mark["healed"] + IN_DOUBT_LIMIT - time.time()))
        mark["in_doubt_s"] = settled if settled is not None and leftover is not None else None
        mark["in_doubt_left"] = left or rows
        log(f"   the prepared transactions of before the heal were gone {mark['in_doubt_s']:.1f}s after it; none at "
            f"all with the load paused" if mark["in_doubt_s"] is not None
            else f"   prepared transactions still there {IN_DOUBT_LIMIT}s after the heal: {mark['in_doubt_left']}")
        mark["invariants"] = self.check_invariants()
        for check, ok, detail in mark["invariants"]:
            log(f"   {'ok  ' if ok else 'FAIL'} {check}: {detail}")
        if hasattr(fault, "cut_log"):
            mark["cut_log"], mark["rules"] = fault.cut_log, fault.rules
        self.marks.append(mark)
        self.load_command("resume")
        mark["resumed"] = time.time()

    def run(self):
        Firewall.ensure_installed()
        self.firewall.clear()
        atexit.register(self.firewall.clear)
        log(f"workdir {self.workdir}")
        self.fresh_cluster()
        self.start_proxy()
        self.start_server()
        self.register_users()
        self.total_before = self.total_balance()
        listings = self.write_plan()
        log(f"{listings} listings on sale; total of all balances {self.total_before / 100:,.2f}")
        self.start_load()
        self.load_started = time.time()
        log("warm-up 5s")
        time.sleep(5)
        for fault in self.faults:
            self.run_fault(fault)
        self.final = {"gap_start": time.time()}
        time.sleep(min(self.args.gap, 5) if self.faults else self.args.gap)
        stopped = self.load_command("stop", timeout=IN_DOUBT_LIMIT + 30)
        self.final["end"] = time.time()
        self.processes["load"].wait(timeout=60)
        log(f"load stopped ({stopped['pending']} retries pending)")
        _, left = self.wait_no_prepared(timeout=IN_DOUBT_LIMIT)
        self.final["in_doubt_left"] = left
        self.final["abandoned"] = self.end_abandoned()
        self.final["invariants"] = self.check_invariants()
        for check, ok, detail in self.final["invariants"]:
            log(f"   final: {'ok  ' if ok else 'FAIL'} {check}: {detail}")

    def cleanup(self):
        self.firewall.clear()
        for name in ("load", "server", "maintenance"):
            stop_process(self.processes.get(name))
        try:
            if self.catalogue_ports:
                try:
                    self.restore_catalogue()
                except psycopg2.Error:
                    self.cluster_up()
                    self.restore_catalogue()
        except Exception as exc:  # noqa: BLE001 - reported, the rest of the cleanup goes on
            log(f"could not restore sharding_node.bouncer_port ({exc}): the chaos cluster's catalogue points at the "
                "proxy")
        if "proxy" in self.processes:
            try:
                self.proxy.send("quit")
            except Exception:  # noqa: BLE001 - it may be gone already
                pass
            stop_process(self.processes["proxy"], timeout=10)
        if not self.args.keep_cluster:
            out = self.cluster("down", check=False)
            log("cluster down --name chaos" + ("" if out.returncode == 0 else f" failed: {out.stderr.strip()}"))
        left = self.firewall.leftovers()
        if left:
            log(f"WARNING: iptables rules left: {left}")


# Analysis ------------------------------------------------------------------------


def load_events(path):
    events = []
    with open(path) as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    events.sort(key=lambda e: e["t"])
    return events


def other_request(faulty):
    """Requests that do not need the faulty node; a search counts as such only if it answered 200."""
    def test(event):
        if event["op"] == "search" and faulty != COORDINATOR:
            return event["st"] == 200
        return faulty not in event["needs"]
    return test


def stats(events, t0, t1, test=lambda e: True):
    chosen = [e for e in events if t0 <= e["t"] < t1 and test(e)]
    seconds = max(1e-9, t1 - t0)
    good = sum(1 for e in chosen if e["good"])
    return {"n": len(chosen), "good": good, "good_per_s": good / seconds,
            "error_rate": (len(chosen) - good) / len(chosen) if chosen else None,
            "status": _count(f"{e['st']} {e.get('code') or ''}".strip() for e in chosen if not e["good"]),
            "messages": _count(f"{e['op']} {e['st']}: {e.get('msg') or e.get('code') or ''}"
                               for e in chosen if not e["good"])}


def _count(values):
    out = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+) ([\w.]+): (.*)$")


def server_records(path):
    """(unix time, level, logger, message, text with traceback) of every log record of the server."""
    records = []
    if not path.exists():
        return records
    current = None
    for line in path.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(match.group(2)) / 1000
            current = [stamp, match.group(3), match.group(4), match.group(5), [line]]
            records.append(current)
        elif current is not None:
            current[4].append(line)
    return records


def analyse(run):
    events = load_events(run.events_path)
    records = server_records(run.server_log)
    maintenance = server_records(run.maintenance_log)
    rows = []
    for mark in run.marks:
        faulty = mark["node"]
        test = other_request(faulty)
        base_t0 = mark["gap_start"] + BASELINE_SKIP
        base = stats(events, base_t0, mark["start"], test)
        during = stats(events, mark["start"], mark["end"], test)
        base_all = stats(events, base_t0, mark["start"])
        during_all = stats(events, mark["start"], mark["end"])
        after_all = stats(events, mark["end"], mark["pause"])
        span = [e for e in events if mark["start"] <= e["t"] < mark["pause"]]
        longest = max(span, key=lambda e: e["d"], default=None)
        slow = [e for e in span if e["d"] > LATENCY_LIMIT]
        five_xx = [
            e for e in events if mark["gap_start"] <= e["t"] < mark["resumed"] and e["st"] >= 500 and e["st"] != 503
        ]
        no_answer = [e for e in span if e["st"] in (0, -1)]
        n503 = sum(1 for e in span if e["st"] == 503)
        window = [r for r in records if mark["gap_start"] <= r[0] < mark["resumed"] + 1]
        # Django logs every 5xx answer at ERROR; a bare "Service Unavailable" line is a 503, which is expected.
        errors = [r for r in window if r[1] in ("ERROR", "CRITICAL")
                  and not (r[3].startswith("Service Unavailable:") and len(r[4]) == 1)]
        breaker = [r for r in window if r[2].startswith("sharding.breaker") and r[1] == "WARNING"]
        tx_warnings = _count(re.sub(r"\d{6,}", "N", re.sub(r"mkt_\d+_\w+", "<gid>", r[3]))[:90] for r in window
                             if r[2] == "sharding.transactions" and r[1] == "WARNING")
        settled = [r for r in maintenance if mark["start"] <= r[0] < mark["resumed"] + 1 and r[2] == "sharding.recovery"
                   and " PREPARED " in r[3]]
        in_doubt_ages = [float(m.group(1)) for m in (re.search(r"in doubt for ([\d.]+)s", r[3]) for r in settled) if m]
        recovery = {"commit": sum(1 for r in settled if r[3].startswith("COMMIT")),
                    "rollback": sum(1 for r in settled if r[3].startswith("ROLLBACK")),
                    "max_age": max(in_doubt_ages, default=None)}
        other_exists = faulty != COORDINATOR
        ratio = during["good_per_s"] / base["good_per_s"] if other_exists and base["good_per_s"] else None
        violations = [c for c in mark["invariants"] if not c[1]]
        rows.append({
            **mark, "base": base, "during": during, "base_all": base_all, "during_all": during_all,
            "after_all": after_all, "ratio": ratio, "other_exists": other_exists, "longest": longest,
            "slow": slow, "five_xx": five_xx, "no_answer": no_answer, "n503": n503, "errors": errors,
            "breaker": breaker, "recovery": recovery, "tx_warnings": tx_warnings,
            "violations": violations,
            "targets": {
                "latency": longest is None or longest["d"] <= LATENCY_LIMIT,
                "rate": None if ratio is None else ratio >= RATE_TARGET,
                "invariants": not violations,
                "in_doubt": mark["in_doubt_s"] is not None and mark["in_doubt_s"] <= IN_DOUBT_LIMIT,
                "abandoned": not mark["abandoned"],
            },
        })
    return events, records, rows


def per_second(events, t0, t1):
    seconds = int(t1 - t0) + 1
    good = [[0] * seconds for _ in range(3)]  # all, worker lanes..., computed below
    lat = [[] for _ in range(seconds)]
    lanes = sorted({e["lane"] for e in events})
    by_lane = {lane: [0] * seconds for lane in lanes}
    for e in events:
        i = int(e["t"] - t0)
        if 0 <= i < seconds:
            lat[i].append(e["d"])
            if e["good"]:
                good[0][i] += 1
                by_lane[e["lane"]][i] += 1
    p99 = []
    for values in lat:
        if values:
            values.sort()
            p99.append(values[min(len(values) - 1, int(0.99 * len(values)))])
        else:
            p99.append(float("nan"))
    return good[0], by_lane, p99, [max(v) if v else float("nan") for v in lat]


def chart(run, events, rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = run.load_started
    t1 = run.final["end"]
    total, by_lane, p99, worst = per_second(events, t0, t1)
    xs = list(range(len(total)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(15, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    top.plot(xs, total, color="black", linewidth=1.2, label="all requests")
    colors = {"worker1": "tab:blue", "worker2": "tab:orange", "cross": "tab:green", "search": "tab:purple"}
    for lane, series in by_lane.items():
        if lane == "init":
            continue
        top.plot(xs, series, linewidth=0.8, color=colors.get(lane), label=f"lane {lane}")
    top.set_ylabel("good answers per second")
    top.legend(loc="upper left", fontsize=8, ncol=5)
    bottom.plot(xs, p99, color="tab:red", linewidth=1, label="p99 per second")
    bottom.plot(xs, worst, color="tab:gray", linewidth=0.6, alpha=0.7, label="max per second")
    bottom.axhline(LATENCY_LIMIT, color="tab:red", linestyle="--", linewidth=0.8, label=f"{LATENCY_LIMIT:g} s target")
    bottom.set_yscale("log")
    bottom.set_ylabel("request latency (s)")
    bottom.set_xlabel("seconds since the load started")
    bottom.legend(loc="upper left", fontsize=8, ncol=3)
    ymax = max(total) if total else 1
    for row in rows:
        for axis in (top, bottom):
            axis.axvspan(row["start"] - t0, row["end"] - t0, color="tab:red", alpha=0.15)
            axis.axvspan(row["end"] - t0, row["pause"] - t0, color="tab:orange", alpha=0.08)
            axis.axvspan(row["pause"] - t0, row["resumed"] - t0, color="gray", alpha=0.12)
        top.text((row["start"] - t0) + 0.5, ymax * 1.02, row["fault"], rotation=30, fontsize=7, va="bottom")
    top.set_ylim(0, ymax * 1.35)
    top.set_title(f"make chaos: red = fault window, orange = after the heal, gray = load paused for the checks "
                  f"({datetime.now(timezone.utc):%Y-%m-%d})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_info():
    """The load benchmark's machine facts, plus pgbouncer's version (every fault here goes through one)."""
    from benchmarks.run_bench import machine_info as bench_machine_info

    bouncer = subprocess.run(["pgbouncer", "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    return {**bench_machine_info(), "pgbouncer": bouncer[0] if bouncer else "?"}


def _pct(value):
    return "-" if value is None else f"{100 * value:.1f}%"


def _mark(ok):
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def report(run, events, records, rows, machine, command, path):
    out = []
    w = out.append
    w("# Chaos suite: faults under load\n")
    w(f"`{command}` on {machine['date']}, commit `{machine['commit']}`.\n")
    w(f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, {machine['os']}; "
      f"Python {machine['python']}, {machine['postgres']}, {machine['pgbouncer']}.\n")
    w("Load average of the machine (1, 5, 15 min) before the run "
      f"{', '.join(f'{x:.1f}' for x in machine['load_before'])}, "
      f"after it {', '.join(f'{x:.1f}' for x in os.getloadavg())}: other work on the machine (other engineers' "
      "clusters and benchmarks) shares the 2 cores, so rates move between windows for reasons of their own; "
      "each fault is compared with the healthy gap right before it.\n")
    w(f"Cluster `chaos`: a coordinator and 2 workers (PostgreSQL 15 + pgbouncer each), seeded with `seed_demo --users "
      f"200 --items 2000 --sales 0 --seed 1`; gunicorn {run.args.gunicorn_workers} workers x "
      f"{run.args.gunicorn_threads} threads (production settings) and `manage.py maintenance` beside it; "
      f"the app reaches every node through benchmarks/chaos_proxy.py. Load: {len(run.lanes)} client threads "
      f"({', '.join(f'{lane} {run.lanes.count(lane)}' for lane in sorted(set(run.lanes)))}), "
      f"{len(run.users)} users registered through the API (half on each worker), think time {run.args.think}s; "
      f"window {run.args.window}s, healthy gap {run.args.gap}s before each fault, {POST_HEAL_SECONDS}s of load after "
      f"the heal, then the load pauses for the checks. {len(events)} requests in all.\n")

    w("## Targets\n")
    w("| fault | no request over 5 s | requests not needing the node keep >= 80% of their rate "
      "| 0 invariant violations "
      "| no prepared transaction 60 s after the heal | no transaction left open by a vanished client (extra check) |")
    w("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        t = r["targets"]
        longest = f"{r['longest']['d']:.2f} s" if r["longest"] else "-"
        rate = "every request needs the coordinator" if not r["other_exists"] else f"{_pct(r['ratio'])}"
        in_doubt = (f"{r['in_doubt_s']:.0f} s" if r["in_doubt_s"] is not None
                    else f"still {sum(map(len, r['in_doubt_left'].values()))}")
        w(f"| {r['fault']} | {_mark(t['latency'])} ({longest}) | {_mark(t['rate'])} ({rate}) | "
          f"{_mark(t['invariants'])} ({len(r['violations'])}) | {_mark(t['in_doubt'])} ({in_doubt}) | "
          f"{_mark(t['abandoned'])} ({sum(map(len, r['abandoned'].values()))}) |")
    final_bad = [c for c in run.final["invariants"] if not c[1]]
    final_abandoned = sum(map(len, run.final.get("abandoned", {}).values()))
    w(f"\nAfter the last fault and the load's end: {len(final_bad)} invariant violation(s), {final_abandoned} "
      "abandoned transaction(s)"
      + (f" ({'; '.join(c[0] for c in final_bad)})" if final_bad else "") + ".\n")

    w("## Figures per fault\n")
    w("*Other requests* are those that do not need the faulty node: the other worker's users and listings, and "
      "searches that answered 200 (complete or partial). Baseline: the healthy gap before the fault (its first "
      f"{BASELINE_SKIP:g} s left out). Rates are good answers per second (2xx, and the business answers 402/409 of a "
      "purchase and 404 of an item page); the error rate is the share of attempts without a good answer.\n")
    w("| fault | node | other: good/s before -> during | kept | other: error rate during | all: good/s before -> "
      "during -> after the heal | all: error rate during | 503s | other 5xx | no answer | longest request "
      "| in doubt gone after | retries pending at pause (after settling) |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        longest = r["longest"]
        lo = f"{longest['d']:.2f} s ({longest['op']} st {longest['st']})" if longest else "-"
        other = (f"{r['base']['good_per_s']:.1f} -> {r['during']['good_per_s']:.1f}" if r["other_exists"] else "n/a")
        w(f"| {r['fault']} | {r['node']} | {other} | {_pct(r['ratio'])} | "
          f"{_pct(r['during']['error_rate']) if r['other_exists'] else 'n/a'} | "
          f"{r['base_all']['good_per_s']:.1f} -> {r['during_all']['good_per_s']:.1f} "
          f"-> {r['after_all']['good_per_s']:.1f} | "
          f"{_pct(r['during_all']['error_rate'])} | {r['n503']} | {len(r['five_xx'])} | {len(r['no_answer'])} | {lo} | "
          f"{'%.1f s' % r['in_doubt_s'] if r['in_doubt_s'] is not None else 'not within 60 s'} | "
          f"{r['pending_at_pause']} ({r['pending_after_settle']}) |")
    w("")
    for r in rows:
        w(f"### {r['fault']}\n")
        w(f"{r['text']}. Start: {r['start_note']}; heal: {r['heal_note']} ({r['healed'] - r['end']:.1f} s).\n")
        w(f"- attempts without a good answer during the fault, all requests: {json.dumps(r['during_all']['status'])} "
          f"(status and code: count; 0 = no connection, -1 = client timeout after 30 s)")
        if r["other_exists"]:
            w(f"- other requests without a good answer during the fault: {json.dumps(r['during']['status'])}")
        ops = _count(e["op"] for e in r["slow"])
        w(f"- requests over {LATENCY_LIMIT:g} s from the fault's start to the pause: {len(r['slow'])}"
          + (f" ({json.dumps(ops)})" if ops else ""))
        partial = [e for e in events if r["start"] <= e["t"] < r["end"] and e["op"] == "search" and e.get("partial")]
        w(f"- partial searches during the fault: {len(partial)}")
        rec = r["recovery"]
        if rec["commit"] or rec["rollback"]:
            w(f"- recovery (manage.py maintenance) settled {rec['commit']} prepared transaction(s) "
              f"with COMMIT PREPARED and {rec['rollback']} with ROLLBACK PREPARED, "
              f"the oldest in doubt for {rec['max_age']:.1f} s")
        else:
            w("- recovery had nothing to settle (no prepared transaction was left behind)")
        if r["tx_warnings"]:
            w("- two-phase commit warnings in the server log: "
              + "; ".join(f"{n} x `{m}`" for m, n in r["tx_warnings"].items()))
        if r["breaker"]:
            w(f"- circuit breaker warnings in the server log: {len(r['breaker'])} "
              f"(first: `{r['breaker'][0][3][:160]}`)")
        if r.get("rules"):
            rules = "; ".join(f"{x['matches']} matches of /{x['pattern']}/, {x['cuts']} cut" for x in r["rules"])
            w(f"- proxy: {rules}")
        for check, ok, detail in r["invariants"]:
            w(f"- {'ok' if ok else '**VIOLATION**'}: {check}: {detail}")
        for node, sessions in r["abandoned"].items():
            for x in sessions:
                w(f"- **abandoned transaction** on {node}: pid {x['pid']}, {x['state']} for {x['age_s']} s, holding "
                  f"{x['locks']} locks, last statement `{x['query'][:100]}` (ended by the suite with "
                  "pg_terminate_backend after the check, so that the next fault starts clean)")
        if r["in_doubt_left"]:
            w(f"- prepared transactions left: {json.dumps(r['in_doubt_left'], default=str)[:600]}")
        w("")

    w("## Findings: server errors, requests over 5 s, invariant violations\n")
    anything = False
    for r in rows:
        if not (r["five_xx"] or r["slow"] or r["violations"] or r["errors"] or r["targets"]["rate"] is False
                or r["abandoned"]
                or (r["other_exists"] and r["during"]["messages"])):
            continue
        anything = True
        w(f"### {r['fault']}\n")
        if r["other_exists"] and r["during"]["messages"]:
            w(f"- requests not needing {r['node']} that got no good answer during the fault: "
              + "; ".join(f"{n} x {m}" for m, n in r["during"]["messages"].items()))
        if r["targets"]["rate"] is False:
            w(f"- requests not needing {r['node']} kept {_pct(r['ratio'])} of their rate "
              f"({r['base']['good_per_s']:.1f}/s -> {r['during']['good_per_s']:.1f}/s; error rate "
              f"{_pct(r['during']['error_rate'])})")
        for e in r["five_xx"][:10]:
            w(f"- {datetime.fromtimestamp(e['t'], timezone.utc):%H:%M:%S.%f}"[:-3] +
              f" UTC {e['op']} ({e['lane']}) answered {e['st']} {e.get('code') or ''} after {e['d']:.2f} s")
        if len(r["five_xx"]) > 10:
            w(f"- ... {len(r['five_xx']) - 10} more 5xx")
        for e in sorted(r["slow"], key=lambda e: -e["d"])[:10]:
            w(f"- {datetime.fromtimestamp(e['t'], timezone.utc):%H:%M:%S.%f}"[:-3] +
              f" UTC {e['op']} ({e['lane']}, needs {', '.join(e['needs'])}) took {e['d']:.2f} s, answered {e['st']} "
              f"{e.get('code') or ''}" + (f" ({e['msg']})" if e.get("msg") else ""))
        for check, _, detail in r["violations"]:
            w(f"- invariant violated: {check}: {detail}")
        for node, sessions in r["abandoned"].items():
            w(f"- {len(sessions)} session(s) on {node} still in a transaction (idle) after the heal with the load "
              f"paused, the oldest for {max(x['age_s'] for x in sessions):.0f} s, holding "
              f"{sum(x['locks'] for x in sessions)} locks: their client (an app connection) was gone, but the "
              "connection to pgbouncer was not closed")
        busy = sum(
            1 for e in events if r["end"] <= e["t"] < r["pause"] and e.get("msg", "").startswith("The resource is busy")
        )
        if busy:
            w(f"- {busy} answers 503 `The resource is busy` (lock_timeout) between the heal and the pause")
        kinds = {}
        for record in r["errors"]:
            text = record[4]
            last = next((line for line in reversed(text[1:]) if line and not line.startswith((" ", "\t"))), "")
            message = re.sub(r"\d{6,}", "N", record[3])[:100]
            kinds.setdefault((message, last[:200]), []).append(record)
        for (message, last), found in list(kinds.items())[:6]:
            w(f"\nServer log, {len(found)} x `{message}`" + (f" ending `{last}`" if last else "") + "; the first:\n")
            w("```")
            w("\n".join(found[0][4][:60]))
            w("```")
        w("")
    if not anything:
        w("None: no 5xx, no request over 5 s, no violated invariant, no ERROR in the server log.\n")

    w("## How to read this\n")
    w("Each fault runs for the window, then heals (`cluster up`, the iptables rules removed, or the proxy back to a "
      "plain proxy); the load goes on for a few seconds, then pauses: every deposit or purchase still without an "
      "answer is sent again with its Idempotency-Key until it gets one, and the checks run with nothing in flight. "
      "In the chart (chaos-latest.png) the red bands are the fault windows, orange the seconds after the heal, gray "
      "the pauses; the top panel has good answers per second overall and per lane (the lanes of worker1's and "
      "worker2's users, cross-worker purchases, searches), the bottom one the p99 and the maximum latency of each "
      "second (log scale) against the 5 s target.\n")
    w("A *kept* share above 100% is no anomaly: the threads whose requests need the faulty node get 503s at once and "
      "then wait for Retry-After, which leaves more of the 2 shared cores to the rest; a slow node's threads wait on "
      "it. So on this machine the rate target shows whether the other requests are held up (by a lock, a pool, a "
      "timeout), not what separate machines would gain.\n")
    w(f"Logs of this run (server, maintenance, proxy, load, every request in events.jsonl): `{run.workdir}`.\n")
    path.write_text("\n".join(out) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--window", type=float, default=15, help="seconds each fault lasts (default 15)")
    parser.add_argument("--gap", type=float, default=10, help="healthy seconds before each fault (default 10)")
    parser.add_argument("--threads", type=int, default=12, help="load client threads (default 12)")
    parser.add_argument("--think", type=float, default=0.0, help="seconds a client thread waits between requests")
    parser.add_argument("--faults", default="all",
                        help=f"all, none (the load and the checks only), or some of: {','.join(FAULT_NAMES)}")
    parser.add_argument("--gunicorn-workers", type=int, default=3)
    parser.add_argument("--gunicorn-threads", type=int, default=6)
    parser.add_argument("--keep-cluster", action="store_true", help="leave the chaos cluster running at the end")
    parser.add_argument("--out", default=str(RESULTS_DIR / "chaos-latest"),
                        help="results path without extension (default benchmarks/results/chaos-latest)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("chaos: run as root (iptables rules for the partition)")
    command = "python -m benchmarks.chaos " + " ".join(argv if argv is not None else sys.argv[1:])

    def terminate(signum, frame):
        raise SystemExit(f"chaos: stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    run = Run(args)
    machine = machine_info()
    try:
        run.run()
    finally:
        run.cleanup()
    events, records, rows = analyse(run)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    chart(run, events, rows, out.with_suffix(".png"))
    report(run, events, records, rows, machine, command.strip(), out.with_suffix(".md"))
    log(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.png')}")
    missed = [r["fault"] for r in rows if any(v is False for v in r["targets"].values())]
    log("targets missed by: " + ", ".join(missed) if missed else "every target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
