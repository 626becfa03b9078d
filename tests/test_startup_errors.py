"""Bad configuration gives one clear line at start-up, not a traceback mid-request."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

REPO = Path(__file__).resolve().parent.parent


def _manage(*args, config_path):
    env = {**os.environ, "CLUSTER_CONFIG": str(config_path), "DJANGO_SETTINGS_MODULE": "app.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _assert_one_clear_line(result, *needles):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    "command", [["check_cluster"], ["runserver", "--noreload", "127.0.0.1:0"], ["migrate_cluster"]]
)
def test_missing_cluster_config(tmp_path, command):
    result = _manage(*command, config_path=tmp_path / "nowhere.json")
    _assert_one_clear_line(result, "nowhere.json not found", "cluster up")


def test_malformed_cluster_config(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text('{"nodes": []}')
    _assert_one_clear_line(_manage("check_cluster", config_path=path), "lacks")


@pytest.mark.parametrize("command", [["check_cluster"], ["runserver", "--noreload", "127.0.0.1:0"]])
def test_unreachable_node(tmp_path, command):
    from sharding.config import node_alias

    config = json.loads(json.dumps(settings.CLUSTER_CONFIG))
    # A worker; with Citus the coordinator, the one node the app talks to (its worker alias is the same server).
    dead = config["nodes"][0 if config["engine"] == "citus" else -1]
    dead["port"] = dead["bouncer_port"] = _free_port()
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(config))
    _assert_one_clear_line(_manage(*command, config_path=path), f"cannot reach {node_alias(dead)}", "cluster up")


@pytest.mark.own_engine  # our workers by name
def test_check_cluster_passes_on_the_running_cluster():
    from sharding.config import default_config_path

    result = _manage("check_cluster", config_path=default_config_path(REPO))
    assert result.returncode == 0, result.stderr
    assert "cluster ready" in result.stdout
    for node in settings.CLUSTER_CONFIG["nodes"]:
        assert node["name"] in result.stdout


# --------------------------------------------------------------------------- production by default


def _run(args, **env):
    """A command with a clean environment for the settings: none of MARKETPLACE_ENV, DJANGO_SECRET_KEY or
    DJANGO_ALLOWED_HOSTS unless given."""
    from sharding.config import default_config_path

    base = {k: v for k, v in os.environ.items()
            if k not in ("MARKETPLACE_ENV", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DJANGO_DEBUG")}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**base, "CLUSTER_CONFIG": str(default_config_path(REPO)), "DJANGO_SETTINGS_MODULE": "app.settings", **env},
    )


SHOW = "from django.conf import settings as s; print('SETTINGS', s.PRODUCTION, s.DEBUG, s.ALLOWED_HOSTS)"


@pytest.mark.parametrize("env, missing", [
    ({}, ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"]),
    ({"MARKETPLACE_ENV": "production"}, ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"]),
    ({"DJANGO_SECRET_KEY": "s" * 50}, ["DJANGO_ALLOWED_HOSTS"]),
    ({"DJANGO_ALLOWED_HOSTS": "market.example.com"}, ["DJANGO_SECRET_KEY"]),
    ({"DJANGO_SECRET_KEY": "", "DJANGO_ALLOWED_HOSTS": " "}, ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"]),
])
@pytest.mark.parametrize("command", [["manage.py", "check"], ["manage.py", "runserver", "--noreload", "127.0.0.1:0"]])
def test_without_an_environment_it_is_production_and_refuses_to_start_without_a_key_and_hosts(env, missing, command):
    result = _run(command, **env)
    _assert_one_clear_line(result, *missing, "MARKETPLACE_ENV=development")
    other = {"DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"} - set(missing)
    assert not any(name in result.stderr for name in other), result.stderr


def test_the_wsgi_application_refuses_in_one_line_too():
    _assert_one_clear_line(_run(["-c", "import app.wsgi"]), "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS")


def test_a_misspelt_environment_is_refused():
    _assert_one_clear_line(_run(["manage.py", "check"], MARKETPLACE_ENV="prod"), "MARKETPLACE_ENV", "'prod'")


def test_production_with_a_key_and_hosts_starts_with_debug_off():
    result = _run(
        ["manage.py", "shell", "-c", SHOW], DJANGO_SECRET_KEY="s" * 50, DJANGO_ALLOWED_HOSTS="market.example.com"
    )
    assert result.returncode == 0, result.stderr
    assert "SETTINGS True False ['market.example.com']" in result.stdout


def test_development_is_chosen_explicitly():
    result = _run(["manage.py", "shell", "-c", SHOW], MARKETPLACE_ENV="development")
    assert result.returncode == 0, result.stderr
    assert "SETTINGS False True ['127.0.0.1', 'localhost']" in result.stdout


def test_make_run_and_make_test_set_development():
    # `make -pn` prints make's variables without running anything; .ci/run calls `make test`.
    result = subprocess.run(["make", "-pn", "help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "export MARKETPLACE_ENV" in (REPO / "Makefile").read_text()
    assert "MARKETPLACE_ENV := development" in result.stdout
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_the_test_settings_are_development():
    assert os.environ["MARKETPLACE_ENV"] == "development"
    assert settings.PRODUCTION is False and settings.ENVIRONMENT == "development"


def test_the_cluster_tool_runs_management_commands_as_development(monkeypatch):
    from cluster import core

    monkeypatch.delenv("MARKETPLACE_ENV", raising=False)
    result = core._manage(os.environ["CLUSTER_NAME"], "shell", "-c", SHOW)
    assert result.returncode == 0, result.stderr
    assert "SETTINGS False" in result.stdout
