"""RQ: `rq worker` processes (SimpleWorker runs jobs in the worker; the default Worker forks per job).

RQ runs one job per process at a time, so C slots are C worker processes; results are read with
`Job.latest_result(timeout=...)`, a blocking XREAD on the job's result stream.
"""
from __future__ import annotations

import math
import sys
from typing import Any, ClassVar

from .drivers import SyncPeer

QUEUE = "bench"


class RqSimplePeer(SyncPeer):
    name = "rq-simple"
    package = "rq"
    in_process_concurrency = False
    worker_class: ClassVar[str] = "rq.worker.SimpleWorker"
    notes: ClassVar[tuple[str, ...]] = ("rq: one job per process, so a P x C configuration runs P*C worker processes (e.g. 16x1).",)

    def worker_command(self, concurrency: int, index: int) -> list[str]:
        return [sys.executable, "-m", "rq.cli", "worker", "--url", self.url, "--worker-class", self.worker_class,
                "--quiet", QUEUE]

    def open(self) -> None:
        import redis
        from rq import Queue

        from . import rq_tasks
        self.connection = redis.Redis.from_url(self.url)
        self.queue = Queue(QUEUE, connection=self.connection)
        self.functions = {"noop": rq_tasks.noop, "whoami": rq_tasks.whoami}

    def close(self) -> None:
        self.connection.close()

    def submit(self, task: str) -> Any:
        return self.queue.enqueue(self.functions[task])

    def wait(self, handle: Any, timeout_s: float) -> Any:
        from rq.results import Result
        result = handle.latest_result(timeout=max(1, math.ceil(timeout_s)))
        if result is None:
            raise TimeoutError(f"rq job {handle.id}: no result in {timeout_s:g} s")
        if result.type != Result.Type.SUCCESSFUL:
            raise RuntimeError(f"rq job {handle.id} failed: {result.exc_string}")
        return result.return_value


class RqForkPeer(RqSimplePeer):
    name = "rq-fork"
    worker_class = "rq.worker.Worker"
    notes = ()
