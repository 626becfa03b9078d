"""/health/ is open to anyone, who sees only `status`; the nodes, in-doubt transactions and shard moves only
staff and monitoring with HEALTH_MONITORING_TOKEN see. A node that is down makes it 503 either way."""
import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

import cluster
from tests.conftest import all_homes, worker_names

TOKEN = "monitoring-token-for-the-tests-0123456789"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.HEALTH_MONITORING_TOKEN = TOKEN


def _health(client=None, **headers):
    response = (client or Client()).get("/health/", headers=headers)
    return response.status_code, response.json()


@pytest.fixture
def staff_client(clean_marketplace):
    client = Client()
    client.force_login(get_user_model().objects.create_user("ops", is_staff=True))
    return client


def _assert_details(body):
    assert set(body) == {"status", "nodes", "in_doubt_transactions", "shard_moves"}
    assert [node["name"] for node in body["nodes"]] == ["coordinator", *all_homes()]
    assert set(body["shard_moves"]) == {"in_progress", "recent"}


def test_everyone_sees_only_the_status():
    assert _health() == (200, {"status": "ok"})


@pytest.mark.parametrize("authorization", [
    f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Token {TOKEN}", TOKEN, f"Basic {TOKEN}", "Bearer",
])
def test_a_wrong_token_is_the_same_as_none(authorization):
    assert _health(Authorization=authorization) == (200, {"status": "ok"})


def test_no_bearer_is_accepted_without_a_configured_token(settings):
    settings.HEALTH_MONITORING_TOKEN = ""
    assert _health(Authorization="Bearer ") == (200, {"status": "ok"})
    assert _health(Authorization="Bearer  ") == (200, {"status": "ok"})


def test_a_logged_in_user_who_is_not_staff_sees_only_the_status(clean_marketplace):
    client = Client()
    client.force_login(get_user_model().objects.create_user("someone"))
    assert _health(client) == (200, {"status": "ok"})


def test_monitoring_with_the_token_sees_every_node():
    status, body = _health(Authorization=f"Bearer {TOKEN}")
    assert status == 200
    _assert_details(body)
    assert body["status"] == "ok" and body["in_doubt_transactions"] == 0
    assert all(node["ok"] and node["latency_ms"] >= 0 for node in body["nodes"])


def test_staff_see_every_node(staff_client):
    status, body = _health(staff_client)
    assert status == 200
    _assert_details(body)


@pytest.mark.own_engine  # stops one of our own workers by name
def test_health_is_503_while_a_worker_is_down(staff_client):
    name, victim = os.environ["CLUSTER_NAME"], worker_names()[-1]
    cluster.stop_node(name, victim, log=lambda *_: None)
    try:
        public = _health()
        monitored = _health(Authorization=f"Bearer {TOKEN}")
        staff = _health(staff_client)
    finally:
        cluster.start_node(name, victim, log=lambda *_: None)
    assert public == (503, {"status": "degraded"})
    for status, body in (monitored, staff):
        assert status == 503
        assert body["status"] == "degraded"
        down = {node["name"]: node for node in body["nodes"]}[victim]
        assert down == {"name": victim, "role": "worker", "ok": False, "latency_ms": None}
        assert all(node["ok"] for node in body["nodes"] if node["name"] != victim)


def test_the_api_description_says_who_sees_what():
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator().get_schema(public=True)
    operation = document["paths"]["/health/"]["get"]
    assert operation["security"] == [{}, {"healthMonitoringToken": []}]
    assert document["components"]["securitySchemes"]["healthMonitoringToken"]["scheme"] == "bearer"
    health = document["components"]["schemas"]["Health"]
    assert health["required"] == ["status"]
    assert {"nodes", "in_doubt_transactions", "shard_moves"} <= set(health["properties"])
