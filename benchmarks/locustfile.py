"""Locust scenarios of the load benchmark: one FastHttpUser class per scenario.

    BENCH_DATA=run.json BENCH_COUNTERS=counters.json PYTHONPATH=. \
        .venv/bin/locust -f benchmarks/locustfile.py --headless -u 16 -r 16 --run-time 30s \
        --host http://127.0.0.1:8000 PurchaseCrossWorker

benchmarks.run_bench writes BENCH_DATA before every run (tokens, listing pools, item ids;
see benchmarks/load_prep.py) and reads BENCH_COUNTERS afterwards. Every user takes the
next *slot*: its own demo user and token (authenticated with `Authorization: Token`),
its own partner key, and its own pools of listings to buy, so two locust users never
race for one listing. A 409 (`item_not_available`, `price_changed`) of a purchase is
counted as expected, not as a failure, and only for purchases; any other non-2xx answer
is a failure.

Users wait BENCH_WAIT seconds between requests (default 0: closed loop, as fast as the
server answers), so a run measures throughput at saturation and latency under it.
"""
import itertools
import json
import os
import random
import time
import uuid

from locust import FastHttpUser, constant, events, task

from benchmarks.search_latency import ONE_WORD, TWO_WORDS, TYPOS

DATA = json.load(open(os.environ["BENCH_DATA"])) if os.environ.get("BENCH_DATA") else None
WAIT = float(os.environ.get("BENCH_WAIT", "0"))
COUNTERS = {"expected_409": 0, "pool_exhausted": 0, "failures_by_status": {}}
_next_slot = itertools.count()


@events.quitting.add_listener
def _write_counters(environment, **kwargs):
    path = os.environ.get("BENCH_COUNTERS")
    if path:
        with open(path, "w") as f:
            json.dump(COUNTERS, f)


def _money(minor):
    return f"{minor // 100}.{minor % 100:02d}"


class BenchUser(FastHttpUser):
    """The common part: a slot (user, token, pools) and checked requests."""

    abstract = True
    wait_time = constant(WAIT)
    # FastHttpUser's defaults are fine for loopback; no connection reuse limit.
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self):
        self.index = index = next(_next_slot)
        self.rng = random.Random(index)
        slots = DATA["slots"]
        self.take_slot(slots[index % len(slots)])
        self.partner_key = DATA["partner_keys"][index % len(DATA["partner_keys"])]
        self.feed_cursor = None

    def take_slot(self, slot):
        """Act as this slot's demo user: its token and its own pools of listings (shuffled)."""
        self.slot = slot
        self.headers = {"Authorization": f"Token {slot['token']}"}
        pools = DATA.get("pools", {}).get(str(slot["slot"]), {})
        self.pools = {kind: list(pools.get(kind, [])) for kind in ("same", "cross")}
        self.rng.shuffle(self.pools["same"])
        self.rng.shuffle(self.pools["cross"])

    # Requests -----------------------------------------------------------

    def get(self, url, name, headers=None):
        with self.client.get(url, name=name, headers=headers or self.headers, catch_response=True) as response:
            self._check(response)
            return response

    def _check(self, response, expected_409=False):
        status = response.status_code
        if 200 <= status < 300:
            response.success()
        elif status == 409 and expected_409:
            COUNTERS["expected_409"] += 1
            response.success()
        else:
            key = str(status)
            COUNTERS["failures_by_status"][key] = COUNTERS["failures_by_status"].get(key, 0) + 1
            response.failure(f"HTTP {status}: {(response.text or '')[:200]}")

    # The scenarios' actions ---------------------------------------------

    def browse(self):
        """Newest listings, a category, or a price sort in a category with a price range; some next pages."""
        kind = self.rng.random()
        if kind < 0.4:
            params, name = "sort=newest", "listings browse newest"
        elif kind < 0.7:
            params, name = f"category={self.rng.choice(DATA['categories'])}", "listings browse category"
        else:
            low = self.rng.choice([0, 5, 10, 25])
            high = low + self.rng.choice([25, 100, 500])
            params = (f"category={self.rng.choice(DATA['categories'])}&sort={self.rng.choice(['price', '-price'])}"
                      f"&max_price={high}.00" + (f"&min_price={low}.00" if low else ""))
            name = "listings browse price"
        response = self.get(f"/api/v1/listings?{params}", name)
        if response.status_code == 200 and self.rng.random() < 0.3:
            cursor = response.json().get("next")
            if cursor:
                self.get(f"/api/v1/listings?{params}&cursor={cursor}", "listings browse next page")

    def search(self):
        """Text search: one or two words of the demo vocabulary, or a typo; a quarter sorted by price."""
        kind = self.rng.random()
        if kind < 0.45:
            q, name = self.rng.choice(ONE_WORD), "listings search 1 word"
        elif kind < 0.8:
            q, name = self.rng.choice(TWO_WORDS), "listings search 2 words"
        else:
            q, name = self.rng.choice(TYPOS), "listings search typo"
        sort = "&sort=" + self.rng.choice(["price", "-price"]) if self.rng.random() < 0.25 else ""
        self.get(f"/api/v1/listings?q={q.replace(' ', '+')}{sort}", name)

    def item_detail(self):
        self.get(f"/api/v1/items/{self.rng.choice(DATA['items'])}", "item detail")

    def wallet(self):
        self.get("/api/v1/wallet", "wallet")

    def deposit(self):
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
        amount = _money(self.rng.randrange(100, 100_000))
        with self.client.post("/api/v1/wallet/deposits", json={"amount": amount}, headers=headers,
                              name="deposit", catch_response=True) as response:
            self._check(response)

    def purchase(self, kind):
        """Buy the next listing of this user's pool (`same`: seller on the buyer's worker, `cross`: on the other)."""
        pool = self.pools[kind]
        if not pool:
            # Ran out (the orchestrator sizes pools so that this does not happen, and reports it if it does).
            COUNTERS["pool_exhausted"] += 1
            time.sleep(0.05)  # gevent's sleep: no busy loop
            return
        item_id, price = pool.pop()
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
        with self.client.post("/api/v1/purchases", json={"item_id": str(item_id), "expected_price": _money(price)},
                              headers=headers, name=f"purchase {kind}-worker", catch_response=True) as response:
            self._check(response, expected_409=True)

    def partner_feed(self):
        """One page of the partner products feed, following `next`; a new full sync once caught up."""
        url = "/api/partner/v1/products?page_size=100"
        if self.feed_cursor:
            url += f"&cursor={self.feed_cursor}"
        response = self.get(url, "partner products page", headers={"Authorization": f"Api-Key {self.partner_key}"})
        if response.status_code == 200:
            body = response.json()
            self.feed_cursor = body["next"] if body.get("has_more") else None


# One class per scenario (selected by class name on the locust command line) ---------


class Browse(BenchUser):
    @task
    def scenario(self):
        self.browse()


class Search(BenchUser):
    @task
    def scenario(self):
        self.search()


class ItemDetail(BenchUser):
    @task
    def scenario(self):
        self.item_detail()


class Deposit(BenchUser):
    @task
    def scenario(self):
        self.deposit()


class PurchaseSameWorker(BenchUser):
    @task
    def scenario(self):
        self.purchase("same")


class PurchaseCrossWorker(BenchUser):
    @task
    def scenario(self):
        self.purchase("cross")


class PartnerFeed(BenchUser):
    @task
    def scenario(self):
        self.partner_feed()


class Mix(BenchUser):
    """Mostly reads: 85% browse, search, item pages and balance; 15% deposits and purchases."""

    @task(30)
    def t_browse(self):
        self.browse()

    @task(20)
    def t_search(self):
        self.search()

    @task(30)
    def t_detail(self):
        self.item_detail()

    @task(5)
    def t_wallet(self):
        self.wallet()

    @task(5)
    def t_deposit(self):
        self.deposit()

    @task(5)
    def t_purchase_same(self):
        self.purchase("same")

    @task(5)
    def t_purchase_cross(self):
        self.purchase("cross")
