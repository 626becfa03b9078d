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


@pytest.mark.parametrize("command", [["check_cluster"], ["runserver", "--noreload", "127.0.0.1:0"], ["migrate_cluster"]])
def test_missing_cluster_config(tmp_path, command):
    result = _manage(*command, config_path=tmp_path / "nowhere.json")
    _assert_one_clear_line(result, "nowhere.json not found", "cluster up")


def test_malformed_cluster_config(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text('{"nodes": []}')
    _assert_one_clear_line(_manage("check_cluster", config_path=path), "lacks")


@pytest.mark.parametrize("command", [["check_cluster"], ["runserver", "--noreload", "127.0.0.1:0"]])
def test_unreachable_node(tmp_path, command):
    config = json.loads(json.dumps(settings.CLUSTER_CONFIG))
    dead = config["nodes"][-1]
    dead["port"] = dead["bouncer_port"] = _free_port()
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(config))
    _assert_one_clear_line(_manage(*command, config_path=path), f"cannot reach {dead['name']}", "cluster up")


def test_check_cluster_passes_on_the_running_cluster():
    from sharding.config import default_config_path

    result = _manage("check_cluster", config_path=default_config_path(REPO))
    assert result.returncode == 0, result.stderr
    assert "cluster ready" in result.stdout
    for node in settings.CLUSTER_CONFIG["nodes"]:
        assert node["name"] in result.stdout
