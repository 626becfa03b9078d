"""The deployment files, checked without Docker (no Docker Engine runs where the suite runs): the structure of
docker-compose.citus.yml, that the app reads every variable the compose file gives it and starts with production
settings from them alone, and the Dockerfile's base, user and command."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.citus.yml"
DOCKERFILE = REPO / "Dockerfile"
APP_SERVICES = ("migrate", "web", "maintenance")
# Compose's interpolation: $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME.
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def interpolate(value, env):
    def substitute(match):
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1) or match.group(4), match.group(2), match.group(3)
        if operator in (":?", "?"):
            assert env.get(name) or (operator == "?" and name in env), f"{name} is required: {argument}"
        if (operator == ":-" and not env.get(name)) or (operator == "-" and name not in env):
            return argument
        return env.get(name, "")

    return VARIABLE.sub(substitute, str(value))


def required_variables():
    """The variables the compose file refuses to start without (${NAME:?...}), each given a sample value."""
    return {name: "samplevalue" for name in re.findall(r"\$\{(\w+):?\?", COMPOSE.read_text())}


def environment_names_read(paths):
    """Every NAME in os.environ.get("NAME"), os.environ["NAME"], os.getenv("NAME") and env_flag("NAME", ...)."""
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv", "env_flag"):
                argument = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                argument = node.slice
            else:
                continue
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                names.add(argument.value)
    return names


def test_the_compose_file_has_every_service(services):
    assert set(services) >= {"coordinator", "worker", "manager", "pgbouncer", "migrate", "web", "maintenance"}


def test_citus_nodes_run_the_official_image_for_postgresql_15(services):
    for name in ("coordinator", "worker"):
        assert re.fullmatch(r"citusdata/citus:\d+\.\d+\.\d+-pg15", services[name]["image"]), name
    assert services["manager"]["image"].startswith("citusdata/membership-manager:")
    assert services["manager"]["environment"]["CITUS_HOST"] == "coordinator"
    assert any(volume.endswith(":/var/run/docker.sock") for volume in services["manager"]["volumes"])


def test_workers_can_be_scaled(services, compose):
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == "/wait-for-manager.sh"  # waits for the manager, which joins it once healthy
    named = set(compose["volumes"])
    data = [volume for volume in worker.get("volumes", []) if volume.split(":")[1] == "/var/lib/postgresql/data"]
    assert not [volume for volume in data if volume.split(":")[0] in named], "every replica would share one data dir"


def test_web_and_maintenance_wait_for_the_migrate_job(services):
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate_cluster"]
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "maintenance"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert services["maintenance"]["command"] == ["python", "manage.py", "maintenance"]


def test_long_running_services_have_health_checks(services):
    for name in ("coordinator", "worker", "manager", "pgbouncer", "web"):
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name
    assert services["web"]["healthcheck"]["test"] == ["CMD", "python", "deploy/healthcheck.py"]
    assert "/health/" in (REPO / "deploy" / "healthcheck.py").read_text()
    # The image's check asks gunicorn, which the migrate job and the maintenance loop do not run.
    for name in ("migrate", "maintenance"):
        assert services[name]["healthcheck"] == {"disable": True}, name


def test_data_and_media_are_on_volumes(services, compose):
    assert {"coordinator-data", "media"} <= set(compose["volumes"])
    assert "coordinator-data:/var/lib/postgresql/data" in services["coordinator"]["volumes"]
    for name in APP_SERVICES:
        assert f"media:{services[name]['environment']['MEDIA_ROOT']}" in services[name]["volumes"], name


def test_pgbouncer_pools_transactions_in_front_of_the_coordinator(services):
    environment = services["pgbouncer"]["environment"]
    assert environment["POOL_MODE"] == "transaction"
    assert environment["DB_HOST"] == "coordinator"
    assert services["pgbouncer"]["depends_on"]["coordinator"] == {"condition": "service_healthy"}


def test_the_app_reads_every_variable_the_compose_file_gives_it(services):
    read = environment_names_read([REPO / "app" / "settings.py", *sorted((REPO / "sharding").glob("*.py"))])
    for name in APP_SERVICES:
        unread = set(services[name]["environment"]) - read
        assert not unread, f"{name} sets {sorted(unread)}, which neither app/settings.py nor sharding/ reads"


@pytest.mark.parametrize("service, database_host", [("web", "pgbouncer"), ("maintenance", "pgbouncer"),
                                                    ("migrate", "coordinator")])
def test_production_settings_start_from_the_compose_environment_alone(services, service, database_host):
    environment = {
        name: interpolate(value, required_variables()) for name, value in services[service]["environment"].items()
    }
    assert environment["MARKETPLACE_ENV"] == "production"
    script = ("import json; from django.conf import settings; "
              "print(json.dumps([settings.DEBUG, settings.DATABASES['default']['HOST'], str(settings.MEDIA_ROOT)]))")
    result = subprocess.run(
        [sys.executable, "-c", f"import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'app.settings'; {script}"],
        cwd=REPO, env={"PATH": "/usr/bin:/bin", **environment}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, database_host, environment["MEDIA_ROOT"]]


def assert_gunicorn_serves_the_wsgi_application(command):
    """gunicorn MODULE:NAME, where MODULE is a file of the repository that assigns NAME."""
    assert command[0] == "gunicorn", command
    module, name = command[1].split(":")
    source = REPO / f"{module.replace('.', '/')}.py"
    assert source.exists(), source
    assigned = {target.id for node in ast.walk(ast.parse(source.read_text())) if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    assert name in assigned, f"{source} defines no {name}"


def test_the_web_service_runs_gunicorn_on_the_wsgi_application(services):
    assert_gunicorn_serves_the_wsgi_application(services["web"]["command"])
    assert services["web"]["build"] == "."


def dockerfile_instructions():
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined and comments left out."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [tuple(line.strip().split(None, 1)) for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_the_dockerfile_builds_a_python_3_11_image_that_runs_gunicorn_as_a_user():
    instructions = dockerfile_instructions()
    last_stage = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "FROM")
    final = instructions[last_stage:]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", final[0][1])
    users = [arguments for instruction, arguments in final if instruction == "USER"]
    assert users and users[-1] not in ("root", "0"), "the app must not run as root"
    (cmd,) = [json.loads(arguments) for instruction, arguments in final if instruction == "CMD"]
    assert_gunicorn_serves_the_wsgi_application(cmd)
    assert "deploy/healthcheck.py" in dict(final).get("HEALTHCHECK", ""), "a health check against /health/"
    installs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert "-r /tmp/requirements-prod.txt" in installs and "requirements.txt" not in installs
    assert "collectstatic" in installs


def test_the_image_installs_no_test_or_lint_package():
    production = (REPO / "requirements-prod.txt").read_text().lower()
    for package in ("pytest", "hypothesis", "playwright", "schemathesis", "ruff", "mypy", "django-stubs"):
        assert f"\n{package}" not in production, package
    assert "-r requirements-prod.txt" in (REPO / "requirements.txt").read_text()
