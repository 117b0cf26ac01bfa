"""arq: `arq WorkerSettings` processes (max_jobs = C coroutines), results with Job.result (it polls).

Runs from its own virtualenv: arq >= 0.26 wants redis-py < 6.
"""
from __future__ import annotations

import sys
from typing import Any

from .drivers import AsyncPeer


class ArqPeer(AsyncPeer):
    name = "arq"
    package = "arq"
    notes = (("arq: own venv (redis-py < 6); worker poll_delay and Job.result poll_delay 5 ms instead of the 0.5 s "
             "default (at the default a worker starts at most max_jobs jobs per 0.5 s)."),)

    def worker_command(self, concurrency: int, index: int) -> list[str]:
        return [sys.executable, "-m", "arq", "benchmarks.peers.arq_tasks.WorkerSettings"]

    async def connect(self) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        from .arq_tasks import POLL_S
        self.poll_s = POLL_S
        self.redis = await create_pool(RedisSettings.from_dsn(self.url))

    async def disconnect(self) -> None:
        await self.redis.aclose()

    async def submit(self, task: str) -> Any:
        return await self.redis.enqueue_job(task)

    async def wait(self, handle: Any, timeout_s: float) -> Any:
        return await handle.result(timeout=timeout_s, poll_delay=self.poll_s)
