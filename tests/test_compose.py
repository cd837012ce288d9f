"""docker-compose.yml keeps the production shape: every service there, servers with health checks.

No database, broker or Docker engine is needed: `docker compose config` only reads the file, and the
structural test parses it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVERS = ("postgres", "rabbitmq", "redis", "queue-redis", "web")
PROCESSES = ("worker-accounts", "worker-concerts", "worker-payments", "relay", "beat")
REQUIRED = (*SERVERS, *PROCESSES)


def compose_command() -> list[str] | None:
    """`docker compose` (the plugin) or `docker-compose` (the standalone tool), whichever runs here."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            probe = subprocess.run([*command, "version"], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return command
    return None


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker compose config -q`: parses, interpolates and validates the file; needs no engine."""
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (.ci/run installs the latter)")
    return subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docker_compose_config_is_valid() -> None:
    result = compose_config({**os.environ, "SECRET_KEY": "compose-config-check"})
    assert result.returncode == 0, result.stderr or result.stdout


def test_docker_compose_refuses_to_run_without_secret_key() -> None:
    result = compose_config({k: v for k, v in os.environ.items() if k != "SECRET_KEY"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr + result.stdout


def load_services() -> dict[str, Any] | None:
    """The `services:` mapping parsed with PyYAML, or None when PyYAML is not installed."""
    try:
        import yaml
    except ImportError:
        return None
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    services = document.get("services")
    assert isinstance(services, dict), "docker-compose.yml has no services mapping"
    return services


def service_blocks_by_regex(text: str) -> dict[str, str]:
    """Without PyYAML: each service's block of lines, keyed by name (two-space indented keys under services:)."""
    match = re.search(r"^services:[ \t]*\n(?P<body>(?:[ \t]+.*\n|[ \t]*\n)*)", text, re.MULTILINE)
    assert match, "docker-compose.yml has no top-level services: key"
    blocks: dict[str, str] = {}
    name = None
    for line in match.group("body").splitlines():
        key = re.match(r"^  ([A-Za-z0-9][\w.-]*):", line)
        if key:
            name = key.group(1)
            blocks[name] = ""
        elif name is not None:
            blocks[name] += line + "\n"
    return blocks


def test_every_service_is_there_and_servers_have_health_checks() -> None:
    services = load_services()
    if services is None:
        pytest.skip("PyYAML is not installed; the regex test below checks the same without it")
    missing = [name for name in REQUIRED if name not in services]
    assert not missing, f"services missing from docker-compose.yml: {missing}"
    for name in SERVERS:
        check = services[name].get("healthcheck")
        assert isinstance(check, dict), f"{name} has no healthcheck"
        assert check.get("test"), f"{name}'s healthcheck has no test"
    for name in ("web", *PROCESSES):
        conditions = services[name].get("depends_on") or {}
        assert isinstance(conditions, dict), f"{name}: depends_on should name conditions"
        for server in ("postgres", "rabbitmq", "redis", "queue-redis"):
            assert conditions.get(server, {}).get("condition") == "service_healthy", (
                f"{name} should wait until {server} is healthy"
            )
        environment = services[name].get("environment") or {}
        assert "${SECRET_KEY:?" in str(environment.get("SECRET_KEY")), f"{name}: SECRET_KEY must have no default"
        assert str(environment.get("DEBUG")) == "0", f"{name}: DEBUG must be off"


def test_every_service_is_there_without_yaml() -> None:
    """The same check by regex, which needs no YAML parser."""
    blocks = service_blocks_by_regex(COMPOSE_FILE.read_text())
    missing = [name for name in REQUIRED if name not in blocks]
    assert not missing, f"services missing from docker-compose.yml: {missing}"
    unchecked = [name for name in SERVERS if not re.search(r"^    healthcheck:", blocks[name], re.MULTILINE)]
    assert not unchecked, f"servers without a healthcheck: {unchecked}"


def test_the_waiting_room_has_a_redis_of_its_own_that_keeps_every_place() -> None:
    """Its own server, AOF on and noeviction (a full Redis refuses writes rather than drop a place)."""
    blocks = service_blocks_by_regex(COMPOSE_FILE.read_text())
    command = blocks["queue-redis"]
    assert re.search(r'"--appendonly",\s*"yes"', command), "queue-redis: AOF must be on"
    assert re.search(r'"--maxmemory-policy",\s*"noeviction"', command), "queue-redis: it must never evict"
    assert "QUEUE_REDIS_URL: redis://queue-redis:" in COMPOSE_FILE.read_text()


def test_the_web_server_is_the_front_on_one_origin() -> None:
    """The Procfile's web line and compose's web service run the same ASGI front (fast path and Django)."""
    web = service_blocks_by_regex(COMPOSE_FILE.read_text())["web"]
    assert "ticketing.front.asgi:application" in web
    procfile = (ROOT / "Procfile").read_text()
    assert re.search(r"^web: .*granian .*--interface asgi .*ticketing\.front\.asgi:application", procfile, re.M)
