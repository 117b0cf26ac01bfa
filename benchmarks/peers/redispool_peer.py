"""redispool: `worker_main.py` workers, a `redispool.Pool` producer, futures for results.

Two extra rows when this redispool has the features: "queued" opens the producer's Pool with
queue_size=window (it runs ahead of the workers like a queue's producer, still capped), and "batched"
submits with `Pool.submit_many`, refilling the window when it is half empty, as `Pool.map` does.
"""
from __future__ import annotations

import collections
import inspect
import sys
from typing import Any, ClassVar

from .base import ROOT
from .drivers import NOOP, SyncPeer

POOL = "bench"
TASKS = {"noop": "bench.noop", "whoami": "bench.whoami"}


def _accepts_queue_size() -> bool:
    import redispool
    return "queue_size" in inspect.signature(redispool.Pool).parameters


class RedispoolPeer(SyncPeer):
    name = "redispool"
    package = "redispool"
    notes = ("redispool: thread workers (`worker_main.py --concurrency C`); saturation sets pool.set_capacity(8).",)

    def worker_command(self, concurrency: int, index: int) -> list[str]:
        return [sys.executable, str(ROOT / "worker_main.py"), "--url", self.url, "--pool", POOL,
                "--concurrency", str(concurrency), "--import", "benchmarks.peers.redispool_tasks",
                "--log-level", "WARNING"]

    def note_for_run(self) -> str | None:
        if not _accepts_queue_size():
            return ("redispool: Pool has no queue_size here, so 'enqueue' submits block while the pool is full "
                    "(the enqueue rate is bounded by the workers)")
        return None

    def open(self) -> None:
        import redispool
        self.pool = redispool.Pool(POOL, self.url)
        self._open_enqueue_pool()

    def _open_enqueue_pool(self) -> None:
        """A client that may queue a whole enqueue run beyond capacity without blocking (needs queue_size)."""
        import redispool
        self._enqueue_pool: Any = None
        if _accepts_queue_size():
            self._enqueue_pool = redispool.Pool(POOL, self.url, queue_size=self.plan.tasks + 1024)

    def close(self) -> None:
        self.pool.close()
        if self._enqueue_pool is not None:
            self._enqueue_pool.close()

    def set_capacity(self, slots: int) -> None:
        self.pool.set_capacity(slots)

    def submit(self, task: str) -> Any:
        return self.pool.submit(TASKS[task])

    def wait(self, handle: Any, timeout_s: float) -> Any:
        return handle.result(timeout_s)

    def enqueue(self, n: int) -> Any:
        pool = self._enqueue_pool or self.pool
        return [pool.submit(TASKS[NOOP]) for _ in range(n)]


class RedispoolQueuedPeer(RedispoolPeer):
    """The same workers; the producer's Pool has queue_size = the throughput window."""

    name = "redispool-queued"
    notes = (("redispool-queued: the producer's Pool(queue_size=window): submits return once parked while fewer "
             "than `window` tasks wait, like a queue's producer (still capped, first come first served)."),)

    def skip_reason(self) -> str | None:
        return None if _accepts_queue_size() else "this redispool's Pool has no queue_size yet"

    def open(self) -> None:
        import redispool
        self.pool = redispool.Pool(POOL, self.url, queue_size=self.plan.window)
        self._open_enqueue_pool()


class RedispoolBatchedPeer(RedispoolPeer):
    """The same workers; the producer sends a batch with `submit_many` whenever its window is half empty."""

    name = "redispool-batched"
    scenarios: ClassVar[tuple[str, ...]] = ("throughput", "enqueue")
    notes = (("redispool-batched: Pool.submit_many, refilling the window when half empty (as Pool.map does), "
             "enqueue in batches of 512; no latency or saturation rows (one task at a time is the unbatched case)."),)

    def skip_reason(self) -> str | None:
        import redispool
        return None if hasattr(redispool.Pool, "submit_many") else "this redispool has no Pool.submit_many yet"

    def throughput(self, n: int, window: int, timeout_s: float) -> None:
        pending: collections.deque[Any] = collections.deque()
        sent = 0
        while sent < n or pending:
            if sent < n and len(pending) <= window // 2:
                size = min(window - len(pending), n - sent)
                pending.extend(self.pool.submit_many(TASKS[NOOP], [()] * size))
                sent += size
            pending.popleft().result(timeout_s)

    def enqueue(self, n: int) -> Any:
        pool = self._enqueue_pool or self.pool
        batch = 512  # what submit_many sends per round trip
        futures: list[Any] = []
        for start in range(0, n, batch):
            futures.extend(pool.submit_many(TASKS[NOOP], [()] * min(batch, n - start)))
        return futures
