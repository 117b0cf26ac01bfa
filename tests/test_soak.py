"""Soak: many tasks while worker processes are killed at random, with the pool's invariants sampled
throughout. Bounded in the default run; the full size is `REDISPOOL_SOAK_TASKS=100000 python -m pytest
tests/test_soak.py -m soak -s`."""
from __future__ import annotations

import collections
import os
import random
import signal
import threading
import time

import pytest

import redispool
from tests.conftest import WorkerProcesses
from tests.helpers import BackgroundSampler, wait_until

pytestmark = [pytest.mark.redis_server, pytest.mark.soak]

TASKS = int(os.environ.get("REDISPOOL_SOAK_TASKS", "10000"))
WORKERS, SLOTS, CAPACITY = 4, 4, 12
TTL = ("--heartbeat-ttl", "1")


class InvariantSampler(BackgroundSampler):
    """Reads running, the number of leases and the cap in one transaction; running must equal the leases
    and stay within the cap, at every sample."""

    def __init__(self, url: str) -> None:
        super().__init__(url, 0.002)
        self.samples = 0
        self.violations: list[tuple[int, int, int]] = []

    def sample(self) -> None:
        pipe = self.client.pipeline(transaction=True)
        running, leases, cap = pipe.get("rp:{p}:running").hlen("rp:{p}:leases").get("rp:{p}:capacity").execute()
        running, cap = int(running or 0), int(cap or CAPACITY)
        self.samples += 1
        if running != leases or not 0 <= running <= cap:
            self.violations.append((running, leases, cap))


def test_soak_with_random_worker_kills(pool_url_and_workers):
    url, workers = pool_url_and_workers
    pool = redispool.Pool("p", url, capacity=CAPACITY)
    frames: collections.Counter[str] = collections.Counter()
    handle = pool._replies._handle

    def counting_handle(frame: bytes) -> None:
        if frame[:1] in (b"R", b"E"):
            frames[redispool.protocol.frame_task_id(frame)] += 1
        handle(frame)

    pool._replies._handle = counting_handle  # type: ignore[method-assign]
    stop_killing = threading.Event()
    kills = []

    def killer() -> None:
        rng = random.Random(7)
        while not stop_killing.wait(rng.uniform(0.3, 1.0)):
            live = [p for p in workers.procs if p.poll() is None]
            victim = rng.choice(live)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            kills.append(victim.pid)
            workers.start("p", SLOTS, *TTL)

    outcomes: collections.Counter[str] = collections.Counter()
    wrong: list[int] = []
    started = time.monotonic()
    with InvariantSampler(url) as sampler:
        killing = threading.Thread(target=killer)
        killing.start()
        try:
            window: collections.deque[tuple[int, redispool.TaskFuture]] = collections.deque()
            for i in range(TASKS):
                window.append((i, pool.submit("t.echo", i)))
                while len(window) > 64 or (i == TASKS - 1 and window):
                    n, future = window.popleft()
                    try:
                        if future.result(120) != n:
                            wrong.append(n)
                        outcomes["ok"] += 1
                    except redispool.WorkerLost:
                        outcomes["worker_lost"] += 1
        finally:
            stop_killing.set()
            killing.join(30)
        wait_until(lambda: pool.running() == 0, 30, message="every lease released")
    elapsed = time.monotonic() - started
    pool.close()

    assert not wrong and sum(outcomes.values()) == TASKS
    assert sampler.samples > 100 and not sampler.violations, sampler.violations[:5]
    assert set(frames.values()) == {1} and len(frames) == TASKS, "an outcome was delivered twice or never"
    assert len(kills) >= 3
    print(f"soak: {TASKS} tasks in {elapsed:.1f} s ({TASKS / elapsed:.0f}/s), {len(kills)} workers killed, "
          f"outcomes {dict(outcomes)}, {sampler.samples} invariant samples, no violation")


@pytest.fixture
def pool_url_and_workers(redis_server, real_redis):
    procs = WorkerProcesses(redis_server.url)
    procs.start_and_wait("p", WORKERS, SLOTS, *TTL)
    yield redis_server.url, procs
    procs.cleanup()
