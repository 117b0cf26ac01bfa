"""Fixtures: fakeredis for fast tests, a private real redis-server per module, and factories for pools,
in-process workers and real worker processes that clean up what they built."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import fakeredis
import pytest
import redis

import redispool
import tests.tasks  # noqa: F401  registers the test tasks for in-process workers
from redispool.embedded import RedisServer
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_redis_server() -> None:
    """Real-Redis tests skip on a laptop without redis-server, but fail in CI: they must never silently skip."""
    if not RedisServer.available():
        if IN_CI:
            pytest.fail("redis-server is not installed; CI must run the real-Redis tests")
        pytest.skip("redis-server is not installed")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port for this test module, killed by PID afterwards."""
    require_redis_server()
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def real_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=10)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def fake_redis() -> Iterator[redis.Redis]:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    yield client
    client.close()


@pytest.fixture(params=["fakeredis", "real"])
def any_redis(request: pytest.FixtureRequest) -> redis.Redis:
    """The same behaviour tests run on fakeredis and on a private real redis-server."""
    if request.param == "fakeredis":
        return request.getfixturevalue("fake_redis")
    return request.getfixturevalue("real_redis")


@pytest.fixture
def make_pool(any_redis: redis.Redis) -> Iterator[Callable[..., redispool.Pool]]:
    pools: list[redispool.Pool] = []

    def make(name: str = "p", **kwargs: object) -> redispool.Pool:
        pool = redispool.Pool(name, redis=any_redis, **kwargs)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


@pytest.fixture
def make_worker(any_redis: redis.Redis) -> Iterator[Callable[..., redispool.Worker]]:
    workers: list[redispool.Worker] = []

    def make(pool: str = "p", concurrency: int = 2, start: bool = True, **kwargs: object) -> redispool.Worker:
        worker = redispool.Worker(pool, redis=any_redis, concurrency=concurrency, **kwargs)  # type: ignore[arg-type]
        workers.append(worker)
        return worker.start() if start else worker

    yield make
    for worker in workers:
        worker.stop(timeout=10)


class WorkerProcesses:
    """Real worker daemons started from worker_main.py; whatever is left is SIGKILLed at teardown."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log_dir = Path(tempfile.mkdtemp(prefix="redispool-workers-"))

    def start(self, pool: str = "p", concurrency: int = 2, *extra: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, str(ROOT / "worker_main.py"), "--url", self.url, "--pool", pool,
               "--concurrency", str(concurrency), "--import", "tests.tasks", "--log-level", "WARNING", *extra]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        # Output goes to a file, never an unread pipe (a full pipe would block a chatty worker).
        with open(self.log_dir / f"worker-{len(self.procs)}.log", "wb") as log:
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(self.log_dir.glob("*.log")))

    def start_and_wait(self, pool: str, count: int, concurrency: int, *extra: str) -> list[subprocess.Popen[bytes]]:
        """Start `count` workers and wait until all their slots are registered."""
        client = redis.Redis.from_url(self.url)
        before = client.hlen(f"rp:{{{pool}}}:slots")
        procs = [self.start(pool, concurrency, *extra) for _ in range(count)]
        wait_until(lambda: client.hlen(f"rp:{{{pool}}}:slots") >= before + count * concurrency, 30,
                   message="worker slots registered")
        client.close()
        return procs

    def terminate(self, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout_s)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        shutil.rmtree(self.log_dir, ignore_errors=True)


@pytest.fixture
def worker_procs(redis_server: RedisServer) -> Iterator[WorkerProcesses]:
    procs = WorkerProcesses(redis_server.url)
    yield procs
    procs.cleanup()
