"""The tasks redispool's benchmark workers serve (`--import benchmarks.peers.redispool_tasks`)."""
from __future__ import annotations

import os

import redispool


@redispool.task(name="bench.noop")
def noop() -> None:
    return None


@redispool.task(name="bench.whoami")
def whoami() -> list[int]:
    """Which worker process ran this: the readiness check waits until every process has answered."""
    return [os.getpid(), os.getppid()]
