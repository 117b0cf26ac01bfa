"""SAQ: `saq settings` processes (C coroutines each); results through SAQ's job-status pub/sub.

`Job.refresh(until_complete=...)` reads the job and only then listens, so a job finishing in between is
missed; the producer therefore listens on the job's channel through the queue's pub/sub multiplexer before
it enqueues, then reads the finished job, which is what refresh does, without the race.

SAQ's sweep (at worker start, then every 60 s) aborts a job it finds in the active list whose status is not
yet ACTIVE, which is every job between its dequeue (BLMOVE) and the worker's status update; jobs are
therefore enqueued with retries=2, so SAQ's own retry recovers them instead of failing the run.
"""
from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

from .drivers import AsyncPeer


class SaqPeer(AsyncPeer):
    name = "saq"
    package = "saq"
    notes = (("saq: subscribes to the job's status channel before enqueueing (Job.refresh has a lost-wake-up "
             "race); jobs have retries=2 (SAQ's sweep aborts jobs caught between dequeue and ACTIVE); SAQ's "
             "redis extra pins redis-py < 8, run here with redis-py 8."),)

    def worker_command(self, concurrency: int, index: int) -> list[str]:
        return [sys.executable, "-m", "saq", "benchmarks.peers.saq_tasks.settings", "--quiet"]

    async def connect(self) -> None:
        from saq import Queue

        from .saq_tasks import QUEUE
        queue: Any = Queue.from_url(self.url, name=QUEUE)  # a RedisQueue: its pub/sub is used below
        self.queue = queue
        await queue.connect()
        # A standing subscription keeps the multiplexer's PSUBSCRIBE up between jobs; wait until it is live.
        channel = queue.job_id("bench-probe")
        self.probe = await queue._pubsub.subscribe(channel)
        while True:
            await queue.redis.publish(channel, "probe")
            try:
                await asyncio.wait_for(self.probe.get(), 0.05)
                break
            except asyncio.TimeoutError:
                continue

    async def disconnect(self) -> None:
        await self.queue._pubsub.unsubscribe(self.probe)
        await self.queue.disconnect()

    async def submit(self, task: str) -> Any:
        from saq import Job
        key = uuid.uuid4().hex
        updates = await self.queue._pubsub.subscribe(self.queue.job_id(key))
        job = await self.queue.enqueue(Job(function=task, key=key, retries=2))
        return job, updates

    async def wait(self, handle: Any, timeout_s: float) -> Any:
        from saq.job import TERMINAL_STATUSES, Status
        job, updates = handle

        async def finished() -> Status:
            while (status := Status[(await updates.get())["data"].decode().upper()]) not in TERMINAL_STATUSES:
                pass
            return status
        try:
            status = await asyncio.wait_for(finished(), timeout_s)
        finally:
            await self.queue._pubsub.unsubscribe(updates)
        await job.refresh()
        if status != Status.COMPLETE:
            raise RuntimeError(f"saq job {job.key}: {status} {job.error}")
        return job.result
