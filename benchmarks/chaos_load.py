"""The load client of `make chaos` (benchmarks/chaos.py): threads of `requests` sending a mix of API calls, retrying
failed money-moving writes under the same Idempotency-Key, and recording every attempt.

    .venv/bin/python -m benchmarks.chaos_load --plan plan.json --events events.jsonl --keys keys.json \
        [--threads 12] [--think 0.01] [--max-seconds 900]

The plan (written by benchmarks/chaos.py) names the server, the client's users (id, token, worker) and the
listings on sale (id, price, seller, worker). Threads are split into lanes so that a slow answer from one node never
holds up a thread whose requests do not need that node (what is measured is the server's isolation, not the
client's):

  <worker> lanes (one per worker, a third of the threads each): users of that worker only: deposits, purchases of
                 that worker's listings (same-worker), item pages of its listings, wallet reads, new listings
                 (25/25/20/10/20%; with fewer than 400 listings left on the worker its purchases list items instead)
  cross          purchases between users and listings of different workers (two-phase commit)
  search         GET listings?q= (every worker, partial answers allowed)

A deposit or a purchase that fails without an answer (connection error, timeout, 5xx) is sent again with the same key
after Retry-After (at least 0.5 s, backing off to 4 s); other requests are not retried. A thread whose request failed
so (a search excepted) sends nothing until then: it honours Retry-After, as a polite client does, rather than
hammering a node that said it is down.

Commands on stdin, one per line; each is answered on stdout with one JSON line:
  pause [S] stop sending new requests, send every pending retry until it has an answer (up to S seconds,
           default --settle), write --keys, answer {"paused": all answered, "pending": N, "listings_left": ...};
           again while paused: settle again
  resume   go on
  stop     as pause, then exit
It also stops by itself after --max-seconds.

Events (--events, one JSON object per attempt): t (unix start), d (seconds), lane, op, st (HTTP status; 0 no
connection, -1 timeout), code (the error code of the body), good, needs (nodes the request needs), key, try,
partial (search only), unavail (nodes a partial search left out).
"""
import argparse
import json
import os
import random
import sys
import threading
import time
import uuid

import requests

COORDINATOR = "coordinator"
RETRYABLE = {0, -1, 500, 502, 503, 504}
CONNECT_TIMEOUT, READ_TIMEOUT = 5.0, 30.0
LOW_POOL = 400
INITIAL_DEPOSIT = 100_000_000  # minor units per user before the load starts (1,000,000.00, the API's maximum)
WORDS = ["camera", "laptop", "guitar", "novel", "lego", "bike", "jacket", "vinyl", "drill", "lamp", "tent", "boots",
         "vintage laptop", "leica camera", "folding bike", "wax jacket", "board game", "laptp", "camra", "sneakrs"]
TITLES = ["Vintage camera", "Folding bike", "Signed novel", "Retro lamp", "Wax jacket", "Vinyl record", "Trail boots"]


def money(minor):
    return f"{minor // 100}.{minor % 100:02d}"


def minor(text):
    units, _, cents = str(text).partition(".")
    return int(units) * 100 + int((cents + "00")[:2])


class Keys:
    """Every Idempotency-Key sent: what it asked for and every answer it got."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}

    def new(self, key, **fields):
        with self.lock:
            self.keys[key] = {**fields, "answers": [], "final": None}

    def answer(self, key, status, code, body_id):
        with self.lock:
            entry = self.keys[key]
            entry["answers"].append([round(time.time(), 3), status, code, body_id])
            if status not in RETRYABLE and entry["final"] is None:
                entry["final"] = [status, code, body_id]

    def dump(self, path):
        with self.lock:
            text = json.dumps(self.keys)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


class Events:
    def __init__(self, path):
        self.file = open(path, "a", buffering=1 << 16)
        self.lock = threading.Lock()

    def write(self, event):
        line = json.dumps(event, separators=(",", ":")) + "\n"
        with self.lock:
            self.file.write(line)

    def flush(self):
        with self.lock:
            self.file.flush()


class Pending:
    """A write to send again under the same key."""

    def __init__(self, op, method, path, body, headers, key, needs, lane, on_answer):
        self.op, self.method, self.path, self.body, self.headers = op, method, path, body, headers
        self.key, self.needs, self.lane, self.on_answer = key, needs, lane, on_answer
        self.tries = 1
        self.due = 0.0
        self.backoff = 0.5


class Client:
    def __init__(self, plan, events, keys, threads, think, seed):
        self.url = plan["url"].rstrip("/")
        self.workers = sorted(plan["workers"])
        self.users = {int(u["id"]): u for u in plan["users"]}
        self.by_worker = {w: [u for u in plan["users"] if u["node"] == w] for w in self.workers}
        self.pools = {w: [] for w in self.workers}
        for listing in plan["listings"]:
            self.pools[listing["node"]].append((int(listing["id"]), int(listing["price"]), int(listing["seller"])))
        self.item_ids = {w: [item for item, _, _ in self.pools[w]][:2000] for w in self.workers}
        self.pool_lock = threading.Lock()
        self.events, self.keys = events, keys
        self.think = think
        self.seed = seed
        self.run_id = uuid.uuid4().hex[:8]
        self.lanes = self._lanes(threads)
        self.paused = threading.Event()
        self.stopping = threading.Event()
        self.idle = {}  # thread index -> Event set while it has stopped for a pause
        self.pending_count = {}
        self.counter = 0
        self.counter_lock = threading.Lock()
        self.local = threading.local()

    def _lanes(self, threads):
        per_worker = max(1, threads // 3)
        rest = max(2, threads - per_worker * len(self.workers))
        lanes = [w for w in self.workers for _ in range(per_worker)]
        lanes += ["cross" if i % 2 == 0 else "search" for i in range(rest)]
        return lanes

    # Requests ---------------------------------------------------------------

    def send(self, session, lane, op, method, path, body=None, headers=None, key=None, needs=(), attempt=1):
        started_wall, started = time.time(), time.monotonic()
        status, code, data, partial, unavailable, message = 0, None, None, None, None, None
        try:
            response = session.request(method, self.url + path, json=body, headers=headers,
                                       timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
            status = response.status_code
            retry_after = response.headers.get("Retry-After")
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                code = data["error"].get("code")
                message = str(data["error"].get("message", ""))[:120]
            if isinstance(data, dict) and op == "search":
                partial = bool(data.get("partial"))
                unavailable = data.get("unavailable_nodes")
        except requests.Timeout:
            status, retry_after, code = -1, None, "client_timeout"
        except requests.RequestException as exc:
            status, retry_after, code = 0, None, type(exc).__name__
        duration = time.monotonic() - started
        good = self._good(op, status, code)
        if status in RETRYABLE and op != "search":
            try:
                wait = float(retry_after) if retry_after else 1.0
            except ValueError:
                wait = 1.0
            self.hold(time.monotonic() + max(0.5, min(wait, 5.0)))
        event = {"t": round(started_wall, 4), "d": round(duration, 4), "lane": lane, "op": op, "st": status,
                 "code": code, "good": good, "needs": list(needs), "try": attempt}
        if key:
            event["key"] = key
        if message and not good:
            event["msg"] = message
        if partial is not None:
            event["partial"] = partial
            if unavailable:
                event["unavail"] = unavailable
        self.events.write(event)
        return status, code, data, retry_after

    def hold(self, until):
        """This thread sends nothing before `until` (it honours Retry-After, as a polite client does)."""
        local = self.local
        local.hold_until = max(getattr(local, "hold_until", 0.0), until)

    @staticmethod
    def _good(op, status, code):
        if 200 <= status < 300:
            return True
        if op == "purchase" and status in (402, 409):
            return True  # insufficient_funds, item_not_available, price_changed: an answer
        if op == "item" and status == 404:
            return True  # sold meanwhile
        return False

    def write(self, session, pending_list, lane, op, path, body, user, key, needs, on_answer, fields):
        headers = {"Authorization": f"Token {user['token']}", "Idempotency-Key": key}
        self.keys.new(key, op=op, user=int(user["id"]), needs=list(needs), **fields)
        pending = Pending(op, "POST", path, body, headers, key, needs, lane, on_answer)
        self._attempt(session, pending, pending_list)

    def _attempt(self, session, pending, pending_list):
        status, code, data, retry_after = self.send(session, pending.lane, pending.op, pending.method, pending.path,
                                                    pending.body, pending.headers, pending.key, pending.needs,
                                                    pending.tries)
        body_id = data.get("id") if isinstance(data, dict) else None
        self.keys.answer(pending.key, status, code, body_id)
        if status in RETRYABLE:
            try:
                wait = float(retry_after) if retry_after else pending.backoff
            except ValueError:
                wait = pending.backoff
            pending.due = time.monotonic() + max(0.5, min(wait, 5.0))
            self.hold(pending.due)
            pending.backoff = min(4.0, pending.backoff * 2)
            pending.tries += 1
            if pending not in pending_list:
                pending_list.append(pending)
        else:
            if pending in pending_list:
                pending_list.remove(pending)
            pending.on_answer(status, code, data)

    # Operations ---------------------------------------------------------------

    def _key(self, op):
        with self.counter_lock:
            self.counter += 1
            return f"chaos-{self.run_id}-{op}-{self.counter}"

    def deposit(self, session, pending_list, lane, user, rng):
        amount = rng.randrange(100, 50_000)
        self.write(session, pending_list, lane, "deposit", "/api/v1/wallet/deposits", {"amount": money(amount)}, user,
                   self._key("deposit"), (COORDINATOR, user["node"]), lambda *a: None, {"amount": amount})

    def purchase(self, session, pending_list, lane, buyer, listing_node, rng):
        listing = self._pop_listing(listing_node, int(buyer["id"]), rng)
        if listing is None:
            return False
        item_id, price, seller = listing

        def on_answer(status, code, data):
            if status == 402:
                self._return_listing(listing_node, listing)  # still for sale

        needs = tuple(sorted({COORDINATOR, buyer["node"], listing_node}))
        self.write(session, pending_list, lane, "purchase", "/api/v1/purchases",
                   {"item_id": str(item_id), "expected_price": money(price)}, buyer, self._key("purchase"), needs,
                   on_answer, {"item_id": item_id, "price": price, "seller": seller, "listing_node": listing_node,
                               "cross": buyer["node"] != listing_node})
        return True

    def _pop_listing(self, node, buyer_id, rng):
        with self.pool_lock:
            pool = self.pools[node]
            for _ in range(5):
                if not pool:
                    return None
                index = rng.randrange(len(pool))
                pool[index], pool[-1] = pool[-1], pool[index]
                listing = pool.pop()
                if listing[2] != buyer_id:
                    return listing
                pool.insert(0, listing)
        return None

    def _return_listing(self, node, listing):
        with self.pool_lock:
            self.pools[node].append(listing)

    def new_listing(self, session, lane, user, rng):
        price = rng.randrange(100, 20_000)
        body = {"title": f"{rng.choice(TITLES)} {rng.randrange(1000)}", "description": "chaos suite listing",
                "price": money(price), "category": ""}
        status, _, data, _ = self.send(session, lane, "create", "POST", "/api/v1/items", body,
                                       {"Authorization": f"Token {user['token']}"},
                                       needs=(COORDINATOR, user["node"]))
        if status == 201 and isinstance(data, dict) and data.get("id"):
            with self.pool_lock:
                self.pools[user["node"]].append((int(data["id"]), price, int(user["id"])))
                self.item_ids[user["node"]].append(int(data["id"]))

    def item_page(self, session, lane, user, node, rng):
        ids = self.item_ids[node]
        item_id = ids[rng.randrange(len(ids))]
        self.send(session, lane, "item", "GET", f"/api/v1/items/{item_id}", None,
                  {"Authorization": f"Token {user['token']}"}, needs=(COORDINATOR, node))

    def wallet(self, session, lane, user):
        self.send(session, lane, "wallet", "GET", "/api/v1/wallet", None, {"Authorization": f"Token {user['token']}"},
                  needs=(COORDINATOR, user["node"]))

    def search(self, session, lane, user, rng):
        q = rng.choice(WORDS).replace(" ", "+")
        self.send(session, lane, "search", "GET", f"/api/v1/listings?q={q}", None,
                  {"Authorization": f"Token {user['token']}"}, needs=(COORDINATOR, *self.workers))

    def one_request(self, session, pending_list, lane, rng):
        if lane == "search":
            self.search(session, lane, rng.choice(list(self.users.values())), rng)
            return
        if lane == "cross":
            buyer_node = rng.choice(self.workers)
            others = [w for w in self.workers if w != buyer_node]
            buyer = rng.choice(self.by_worker[buyer_node])
            if not self.purchase(session, pending_list, lane, buyer, rng.choice(others), rng):
                self.search(session, lane, buyer, rng)  # no listing left there: a read instead
            return
        user = rng.choice(self.by_worker[lane])
        roll = rng.random()
        if roll < 0.25:
            self.deposit(session, pending_list, lane, user, rng)
        elif roll < 0.50:
            # Fewer than LOW_POOL listings left on this worker: list one instead, so the run never runs dry.
            if len(self.pools[lane]) < LOW_POOL or not self.purchase(session, pending_list, lane, user, lane, rng):
                self.new_listing(session, lane, user, rng)
        elif roll < 0.70:
            self.item_page(session, lane, user, lane, rng)
        elif roll < 0.80:
            self.wallet(session, lane, user)
        else:
            self.new_listing(session, lane, user, rng)

    # Threads ------------------------------------------------------------------

    def thread(self, index, deadline):
        lane = self.lanes[index]
        rng = random.Random(self.seed * 1000 + index)
        session = requests.Session()
        pending_list = []
        idle = self.idle[index]
        while not self.stopping.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            self.pending_count[index] = len(pending_list)
            if self.paused.is_set():
                due = [p for p in pending_list if p.due <= now]
                if due:
                    self._attempt(session, due[0], pending_list)
                    continue
                if not pending_list:
                    idle.set()
                    self.stopping.wait(0.05)
                    continue
                time.sleep(min(0.2, max(0.01, min(p.due for p in pending_list) - now)))
                continue
            idle.clear()
            hold = getattr(self.local, "hold_until", 0.0) - now
            if hold > 0:
                time.sleep(min(hold, 0.2))
                continue
            due = [p for p in pending_list if p.due <= now]
            if due:
                self._attempt(session, min(due, key=lambda p: p.due), pending_list)
            else:
                self.one_request(session, pending_list, lane, rng)
            if self.think:
                time.sleep(self.think)
        self.pending_count[index] = len(pending_list)
        idle.set()

    def initial_deposits(self, deadline):
        """Every user gets INITIAL_DEPOSIT before the load starts (through the API, so the books know it)."""
        session = requests.Session()
        for user in self.users.values():
            key = f"chaos-{self.run_id}-init-{user['id']}"
            self.keys.new(key, op="deposit", user=int(user["id"]), needs=[COORDINATOR, user["node"]],
                          amount=INITIAL_DEPOSIT)
            pending = Pending("deposit", "POST", "/api/v1/wallet/deposits", {"amount": money(INITIAL_DEPOSIT)},
                              {"Authorization": f"Token {user['token']}", "Idempotency-Key": key}, key,
                              (COORDINATOR, user["node"]), "init", lambda *a: None)
            pending_list = []
            self._attempt(session, pending, pending_list)
            while pending_list and time.monotonic() < deadline:
                time.sleep(0.5)
                self._attempt(session, pending, pending_list)
            if pending_list:
                raise SystemExit(f"chaos_load: the initial deposit of user {user['id']} got no answer")

    def wait_settled(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(event.is_set() for event in self.idle.values()):
                return True
            time.sleep(0.05)
        return False

    def run(self, max_seconds, keys_path, settle):
        deadline = time.monotonic() + max_seconds
        self.initial_deposits(deadline)
        threads = []
        for index in range(len(self.lanes)):
            self.idle[index] = threading.Event()
            thread = threading.Thread(target=self.thread, args=(index, deadline), daemon=True, name=f"load-{index}")
            thread.start()
            threads.append(thread)
        reply({"started": True, "lanes": self.lanes, "users": len(self.users),
               "listings": {w: len(p) for w, p in self.pools.items()}})
        stdin_thread = threading.Thread(target=self.commands, args=(keys_path, settle), daemon=True)
        stdin_thread.start()
        while time.monotonic() < deadline and not self.stopping.is_set():
            time.sleep(0.2)
        if not self.stopping.is_set():  # out of time: settle and write what we have
            self.paused.set()
            self.wait_settled(settle)
            self.stopping.set()
        for thread in threads:
            thread.join(timeout=READ_TIMEOUT + 5)
        self.events.flush()
        self.keys.dump(keys_path)

    def commands(self, keys_path, settle):
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command in ("pause", "stop"):
                self.paused.set()
                settled = self.wait_settled(float(argument) if argument else settle)
                self.events.flush()
                self.keys.dump(keys_path)
                pending = sum(self.pending_count.values())
                with self.pool_lock:
                    left = {w: len(p) for w, p in self.pools.items()}
                reply({"paused": settled, "pending": pending, "listings_left": left})
                if command == "stop":
                    self.stopping.set()
                    return
            elif command == "resume":
                self.paused.clear()
                reply({"resumed": True})
            elif command:
                reply({"error": f"unknown command {command!r}"})
        self.stopping.set()  # stdin closed: the orchestrator is gone


_reply_lock = threading.Lock()


def reply(message):
    with _reply_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--keys", required=True)
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--think", type=float, default=0.0, help="seconds each thread waits between requests")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds a pause may take to answer every retry")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop by itself after this long")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with open(args.plan) as f:
        plan = json.load(f)
    client = Client(plan, Events(args.events), Keys(), args.threads, args.think, args.seed)
    client.run(args.max_seconds, args.keys, args.settle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
