"""The command line, the demo and docker-compose.yml, checked against the real CLI parser."""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import pytest
import redis
import yaml

from redispool.cli import build_parser
from redispool.embedded import FakeRedisServer
from tests.conftest import ROOT, require_redis_server


def compose_commands() -> dict[str, list[str]]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: svc["command"] for name, svc in services.items() if "command" in svc}


def as_cli_args(command: list[str]) -> list[str] | None:
    """The redispool CLI arguments a compose command runs, or None for non-redispool commands."""
    if command[:2] == ["python", "worker_main.py"]:
        return ["worker", *command[2:]]
    if command[:3] == ["python", "-m", "redispool"]:
        return command[3:]
    return None


def test_compose_has_redis_a_scalable_worker_and_a_demo_submitter():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"redis", "worker", "demo"} <= set(services)
    assert services["worker"]["command"][:2] == ["python", "worker_main.py"]
    assert "container_name" not in services["worker"]  # a fixed name would prevent --scale


@pytest.mark.parametrize("service", sorted(compose_commands()))
def test_compose_commands_match_the_cli(service):
    args = as_cli_args(compose_commands()[service])
    if args is None:
        assert service == "redis"
        return
    parsed = build_parser().parse_args(args)  # exits (fails the test) on any unknown flag
    for module in getattr(parsed, "imports", []):
        importlib.import_module(module)
    if parsed.command == "worker":
        assert parsed.url == "redis://redis:6379/0" and parsed.concurrency >= 1


def test_worker_main_help_lists_the_documented_flags():
    out = subprocess.run([sys.executable, str(ROOT / "worker_main.py"), "--help"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT).stdout
    for flag in ("--url", "--pool", "--concurrency", "--import"):
        assert flag in out


def run_demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redispool", "demo", "--tasks", "300"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**os.environ, **env})


def run_demo_without_url(path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDISPOOL_URL"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "redispool", "demo", "--tasks", "300"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env)


def assert_nothing_listens_at_demo_url(stdout: str) -> None:
    port = int(re.search(r"redis://127\.0\.0\.1:(\d+)", stdout).group(1))  # type: ignore[union-attr]
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()


def test_demo_runs_on_an_embedded_redis_server_and_leaves_nothing_running():
    require_redis_server()
    proc = run_demo_without_url()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "embedded RedisServer" in proc.stdout and "throughput" in proc.stdout and "p99" in proc.stdout
    assert_nothing_listens_at_demo_url(proc.stdout)


def test_demo_falls_back_to_fakeredis_when_redis_server_is_missing():
    proc = run_demo_without_url(path=os.path.dirname(sys.executable))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "embedded FakeRedisServer" in proc.stdout
    assert_nothing_listens_at_demo_url(proc.stdout)


def test_demo_runs_on_fakeredis_tcp_server_via_env_url():
    with FakeRedisServer() as server:
        proc = run_demo({"REDISPOOL_URL": server.url})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REDISPOOL_URL" in proc.stdout
