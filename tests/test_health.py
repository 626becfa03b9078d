"""/health/ reports every node; a node that is down makes it 503 with the same shape."""
import os

import cluster
from django.test import Client
from tests.conftest import worker_names


def _health():
    response = Client().get("/health/")
    return response.status_code, response.json()


def test_health_lists_every_node_when_all_are_up():
    status, body = _health()
    assert status == 200
    assert body["status"] == "ok" and body["in_doubt_transactions"] == 0
    assert [node["name"] for node in body["nodes"]] == ["coordinator", *worker_names()]
    assert all(node["ok"] and node["latency_ms"] >= 0 for node in body["nodes"])


def test_health_is_503_while_a_worker_is_down():
    name, victim = os.environ["CLUSTER_NAME"], worker_names()[-1]
    cluster.stop_node(name, victim, log=lambda *_: None)
    try:
        status, body = _health()
    finally:
        cluster.start_node(name, victim, log=lambda *_: None)
    assert status == 503
    assert body["status"] == "degraded"
    down = {node["name"]: node for node in body["nodes"]}[victim]
    assert down == {"name": victim, "role": "worker", "ok": False, "latency_ms": None}
    assert all(node["ok"] for node in body["nodes"] if node["name"] != victim)
