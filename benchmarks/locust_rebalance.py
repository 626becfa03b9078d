"""Locust load of the rebalance benchmark (benchmarks.rebalance_bench): writes and item pages, every request recorded.

    BENCH_DATA=run.json BENCH_REQUESTS=requests.csv BENCH_STOP_FILE=stop BENCH_HOT_FILE=hot PYTHONPATH=. \
        .venv/bin/locust -f benchmarks/locust_rebalance.py --headless -u 8 -r 8 --stop-timeout 60 \
        --host http://127.0.0.1:8000 RebalanceMix

The users are those of benchmarks/locustfile.py (BenchUser: tokens, pools of listings,
checked requests), but each locust user acts in turn as several demo users of its own,
DATA["writers"][its index], one per logical shard it writes to. Before each task it
picks one: with probability BENCH_HOT (default 0.5) the one on the "hot" shard, the
number the orchestrator keeps in BENCH_HOT_FILE (the shard being moved, while a move
runs), otherwise one at random.

Every request is appended to BENCH_REQUESTS as it ends: start (epoch seconds), name,
response time (ms), success (after the 409 rule of BenchUser), HTTP status (0: no
answer), the logical shard of the demo user acting, and for a purchase the seller's shard
(from the listing's id). The run has no time limit: it stops, letting every user finish
the request in flight, when the file BENCH_STOP_FILE appears.
"""
import csv
import os

import gevent
from locust import events, task

from benchmarks.locustfile import DATA, BenchUser
from sharding.ids import shard_of_id

FIELDS = ["start", "name", "response_time_ms", "success", "status", "shard", "seller_shard"]
HOT_SHARE = float(os.environ.get("BENCH_HOT", "0.5"))
_output = {}
_hot = {"shard": None}


@events.init.add_listener
def _open_requests_file(environment, **kwargs):
    path = os.environ.get("BENCH_REQUESTS")
    if path:
        handle = open(path, "w", newline="")
        _output["file"], _output["writer"] = handle, csv.writer(handle)
        _output["writer"].writerow(FIELDS)
    stop_file = os.environ.get("BENCH_STOP_FILE")
    if stop_file:
        gevent.spawn(_stop_when_told, environment, stop_file)
    hot_file = os.environ.get("BENCH_HOT_FILE")
    if hot_file:
        gevent.spawn(_follow_hot_shard, hot_file)


def _stop_when_told(environment, stop_file):
    while not os.path.exists(stop_file):
        gevent.sleep(0.1)
    environment.runner.quit()  # users finish their request (--stop-timeout), then locust shuts down


def _follow_hot_shard(path):
    while True:
        try:
            with open(path) as f:
                text = f.read().strip()
            _hot["shard"] = int(text) if text else None
        except (OSError, ValueError):
            pass
        gevent.sleep(0.1)


@events.request.add_listener
def _record_request(name, response_time, response=None, context=None, exception=None, start_time=None, **kwargs):
    writer = _output.get("writer")
    if writer is None:
        return
    context = context or {}
    status = getattr(response, "status_code", None) or 0
    writer.writerow([f"{start_time:.6f}", name, f"{response_time:.3f}", 0 if exception else 1, status,
                     context.get("shard", ""), "" if context.get("seller_shard") is None else context["seller_shard"]])


@events.quitting.add_listener
def _close_requests_file(environment, **kwargs):
    handle = _output.pop("file", None)
    _output.pop("writer", None)
    if handle:
        handle.close()


class RebalanceMix(BenchUser):
    """40% deposits, 20% same-worker and 20% cross-worker purchases, 20% item pages; each as one of its demo users."""

    def on_start(self):
        super().on_start()
        writers = DATA["writers"][self.index % len(DATA["writers"])] or [self.slot]
        self.identities = {}
        for slot in writers:
            self.take_slot(slot)
            self.identities[slot["shard"]] = (self.slot, self.headers, self.pools)
        self.shards = sorted(self.identities)
        self.seller_shard = None

    def act_as_next(self):
        shard = _hot["shard"]
        if shard not in self.identities or self.rng.random() >= HOT_SHARE:
            shard = self.rng.choice(self.shards)
        self.slot, self.headers, self.pools = self.identities[shard]

    def context(self):
        return {"shard": self.slot["shard"], "seller_shard": self.seller_shard}

    def purchase(self, kind):
        pool = self.pools[kind]
        self.seller_shard = shard_of_id(int(pool[-1][0])) if pool else None  # the listing purchase() takes
        try:
            super().purchase(kind)
        finally:
            self.seller_shard = None

    @task(4)
    def t_deposit(self):
        self.act_as_next()
        self.deposit()

    @task(2)
    def t_purchase_same(self):
        self.act_as_next()
        self.purchase("same")

    @task(2)
    def t_purchase_cross(self):
        self.act_as_next()
        self.purchase("cross")

    @task(2)
    def t_detail(self):
        self.act_as_next()
        self.item_detail()
