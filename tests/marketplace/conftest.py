"""Fixtures for the marketplace API tests: a real dev server over HTTP, clean tables, helpers.

The server (tests/conftest.py's live_server_url) runs as a subprocess (`manage.py runserver`)
on the `test` cluster (or $CLUSTER_NAME); tests talk to it with `requests`, from threads for the
concurrency tests, and look at the nodes directly (psycopg2, no Django) to check
where rows landed. The server's output goes to SERVER_LOG (overwritten by each run).
"""
import html
import re
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest
import requests

from sharding.placement import node_for_user
from tests.conftest import (  # noqa: F401 - SERVER_LOG stays importable from here
    MARKETPLACE_WORKER_TABLES,
    REPO,
    SERVER_LOG,
    coordinator_name,
    server_env,
    worker_names,
)

API_PREFIX = "/api/v1/"
PASSWORD = "correct-horse-battery-9"

# Tables whose content must not change when a request is refused. Idempotency
# records are left out: a refused purchase (402/409) is itself stored under its key.
SNAPSHOT_TABLES = tuple(t for t in MARKETPLACE_WORKER_TABLES if t != "core_idempotencykey")

_MISSING = object()


def cents(value):
    """'12.34' -> 1234; refuses anything that is not a two-decimal money string."""
    assert isinstance(value, str), f"money must be a string, got {value!r}"
    _, _, frac = value.partition(".")
    assert len(frac) == 2 and frac.isdigit(), f"money must have two decimals, got {value!r}"
    return int(Decimal(value) * 100)


def fmt(amount_cents):
    sign = "-" if amount_cents < 0 else ""
    amount_cents = abs(amount_cents)
    return f"{sign}{amount_cents // 100}.{amount_cents % 100:02d}"


def new_key():
    return f"test-{uuid.uuid4().hex}"


def describe(response):
    """The status and a short form of the body (the exception of a Django debug page, not its HTML)."""
    text = response.text
    if "<html" in text[:500].lower():
        title = re.search(r"<title>(.*?)</title>", text, re.S)
        value = re.search(r'<pre class="exception_value">(.*?)</pre>', text, re.S)
        text = " ".join(" ".join(part.group(1).split()) for part in (title, value) if part)
        text = html.unescape(text) or response.text[:200]
    return f"{response.status_code}: {text[:500]}"


def assert_error(response, status, code=None):
    """The response has `status` and the error shape {"error": {"code", "message", "details"}}."""
    statuses = (status,) if isinstance(status, int) else tuple(status)
    assert response.status_code in statuses, (
        f"{response.request.method} {response.request.path_url}: expected {status} {code or ''}, "
        f"got {describe(response)}"
    )
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"error response is not JSON: {response.text[:300]!r}") from None
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str), body
    assert isinstance(error.get("details"), dict), body
    if code is not None:
        codes = (code,) if isinstance(code, str) else tuple(code)
        assert error["code"] in codes, f"expected code {code}, got {error['code']}: {body}"
    return error


def is_id(value):
    return isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0


# --------------------------------------------------------------------------- server


# live_server_url (a session-scoped `manage.py runserver`) comes from tests/conftest.py.


# --------------------------------------------------------------------------- cleaning


# clean_marketplace comes from tests/conftest.py.


# --------------------------------------------------------------------------- database views


@pytest.fixture
def node_connection(direct_connect):
    """node_connection(node) -> one autocommit connection per node for the whole test."""
    opened = {}

    def connection(node):
        if node not in opened:
            opened[node] = direct_connect(node)
        return opened[node]

    return connection


@pytest.fixture
def db_rows(node_connection):
    """db_rows(node, sql, params) -> list of rows, straight from a node."""

    def query(node, sql, params=()):
        with node_connection(node).cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    return query


@pytest.fixture
def snapshot(node_connection):
    """A fingerprint of every marketplace row on every node (and the users on the coordinator)."""

    def take():
        state = {}
        for name in worker_names():
            with node_connection(name).cursor() as cursor:
                for table in SNAPSHOT_TABLES:
                    cursor.execute(
                        f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"
                    )
                    state[(name, table)] = cursor.fetchone()
        with node_connection(coordinator_name()).cursor() as cursor:
            cursor.execute(
                "SELECT count(*), coalesce(md5(string_agg(concat_ws(',', id, username, email, is_active), '|' "
                "ORDER BY id)), '') FROM auth_user"
            )
            state[("coordinator", "auth_user")] = cursor.fetchone()
        return state

    return take


# --------------------------------------------------------------------------- API client


class Marketplace:
    """A thin client for the API: every call is one real HTTP request (thread-safe)."""

    def __init__(self, base_url):
        self.base_url = base_url
        self._pool = []  # registered users without a token yet, kept for user_on()

    def url(self, path):
        if path.startswith("/"):
            return self.base_url + path
        return self.base_url + API_PREFIX + path

    def request(
        self, method, path, user=None, *, json=_MISSING, data=None, headers=None, key=None, timeout=60, params=None
    ):
        all_headers = {}
        if user is not None:
            all_headers.update(user["headers"] if isinstance(user, dict) else {"Authorization": f"Token {user}"})
        if key is not None:
            all_headers["Idempotency-Key"] = key
        if headers:
            all_headers.update(headers)
        kwargs = {"headers": all_headers, "timeout": timeout, "params": params}
        if json is not _MISSING:
            kwargs["json"] = json
        elif data is not None:
            kwargs["data"] = data
            all_headers.setdefault("Content-Type", "application/json")
        return requests.request(method, self.url(path), **kwargs)

    def get(self, path, user=None, **kw):
        return self.request("GET", path, user, **kw)

    def post(self, path, user=None, **kw):
        return self.request("POST", path, user, **kw)

    def patch(self, path, user=None, **kw):
        return self.request("PATCH", path, user, **kw)

    def delete(self, path, user=None, **kw):
        return self.request("DELETE", path, user, **kw)

    # ---- users

    def register_only(self, username=None, password=PASSWORD, email=None):
        username = username or f"u{uuid.uuid4().hex[:14]}"
        email = email or f"{username.lower()}@example.com"
        response = self.post("auth/register", json={"username": username, "email": email, "password": password})
        assert response.status_code == 201, f"register {username}: {describe(response)}"
        body = response.json()
        assert is_id(body["id"]), body
        # Django normalizes the domain of an email address to lower case.
        local, _, domain = email.rpartition("@")
        assert body["username"] == username and body["email"] == f"{local}@{domain.lower()}", body
        email = body["email"]
        return {"id": body["id"], "username": username, "email": email, "password": password}

    def login(self, user):
        response = self.post("auth/token", json={"username": user["username"], "password": user["password"]})
        assert response.status_code == 200, f"token for {user['username']}: {describe(response)}"
        token = response.json()["token"]
        assert isinstance(token, str) and token, response.text
        user["token"] = token
        user["headers"] = {"Authorization": f"Token {token}"}
        return user

    def register(self, username=None, password=PASSWORD, email=None):
        return self.login(self.register_only(username, password, email))

    def user_on(self, alias):
        """A new user (with a token) whose rows live on worker `alias`."""
        for index, user in enumerate(self._pool):
            if node_for_user(int(user["id"])) == alias:
                del self._pool[index]
                return self.login(user)
        for _ in range(200):
            user = self.register_only()
            if node_for_user(int(user["id"])) == alias:
                return self.login(user)
            self._pool.append(user)
        raise AssertionError(f"no user landed on {alias} after 200 registrations")

    def partner_headers(self, scopes=("products:read", "webhooks:manage")):
        """The Authorization header of a new partner's API key (made in this process, on the coordinator)."""
        from app.partners.keys import issue_key
        from app.partners.models import Partner

        _, key = issue_key(Partner.objects.create(name=f"p{uuid.uuid4().hex[:12]}"), list(scopes))
        return {"Authorization": f"Api-Key {key}"}

    # ---- money and items

    def deposit(self, user, amount="100.00", key=None):
        response = self.post("wallet/deposits", user, json={"amount": amount}, key=key or new_key())
        assert response.status_code == 201, f"deposit {amount}: {describe(response)}"
        return response.json()

    def balance(self, user):
        response = self.get("wallet", user)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["currency"] == "USD", body
        return body["balance"]

    def list_item(self, user, price="10.00", title=None, **fields):
        payload = {"title": title or f"item {uuid.uuid4().hex[:8]}", "description": "", "price": price, **fields}
        response = self.post("items", user, json=payload)
        assert response.status_code == 201, f"list item: {describe(response)}"
        return response.json()

    def buy(self, user, item, expected_price=None, key=None, timeout=60):
        item_id = item["id"] if isinstance(item, dict) else item
        if expected_price is None:
            expected_price = item["price"]
        return self.post(
            "purchases", user, json={"item_id": item_id, "expected_price": expected_price}, key=key or new_key(),
            timeout=timeout,
        )

    def all_pages(self, path, user, page_size=100):
        """Every row of a list endpoint, following `next` cursors."""
        rows, cursor = [], None
        for _ in range(1000):
            params = {"page_size": page_size}
            if cursor:
                params["cursor"] = cursor
            response = self.get(path, user, params=params)
            assert response.status_code == 200, f"GET {path}: {describe(response)}"
            body = response.json()
            assert set(body) >= {"results", "next"}, body
            rows.extend(body["results"])
            cursor = body["next"]
            if cursor is None:
                return rows
        raise AssertionError(f"GET {path}: more than 1000 pages")


@pytest.fixture
def mk(live_server_url, clean_marketplace):
    return Marketplace(live_server_url)


@pytest.fixture
def workers():
    names = worker_names()
    assert len(names) >= 2, "these tests need at least two workers"
    return names


def run_manage(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=server_env(), capture_output=True, text=True,
        timeout=timeout,
    )


class RefusalChecker:
    """Send many bad requests; each must get its error and leave every row as it was.

    Failures are collected so one run reports every case that misbehaves.
    """

    def __init__(self, snapshot):
        self.snapshot = snapshot
        self.failures = []
        self.count = 0

    def expect(self, label, send, status, code=None):
        self.count += 1
        before = self.snapshot()
        try:
            response = send()
        except Exception as exc:  # noqa: BLE001 - reported with the others
            self.failures.append(f"{label}: request raised {exc!r}")
            return None
        try:
            assert_error(response, status, code)
        except AssertionError as exc:
            self.failures.append(f"{label}: {exc}")
        after = self.snapshot()
        changed = sorted(key for key in before if before[key] != after.get(key))
        if changed:
            self.failures.append(f"{label}: changed rows in {changed}")
        return response

    def verify(self):
        assert self.count, "no case was checked"
        assert not self.failures, f"{len(self.failures)} of {self.count} cases failed:\n" + "\n".join(self.failures)


@pytest.fixture
def refusals(snapshot):
    return RefusalChecker(snapshot)
