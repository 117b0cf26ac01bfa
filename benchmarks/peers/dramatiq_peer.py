"""Dramatiq: `dramatiq` worker processes with threads, Redis broker, Results middleware on Redis."""
from __future__ import annotations

import sys
from typing import Any

from .drivers import SyncPeer


class DramatiqPeer(SyncPeer):
    name = "dramatiq"
    package = "dramatiq"
    notes = (("dramatiq: each worker is `dramatiq --processes 1 --threads C` (a parent plus one worker process); "
             "results with message.get_result(block=True)."),)

    def worker_command(self, concurrency: int, index: int) -> list[str]:
        return [sys.executable, "-m", "dramatiq", "benchmarks.peers.dramatiq_tasks", "--processes", "1",
                "--threads", str(concurrency)]

    def open(self) -> None:
        from . import dramatiq_tasks
        self.backend = dramatiq_tasks.backend
        self.broker = dramatiq_tasks.broker
        self.actors: dict[str, Any] = {"noop": dramatiq_tasks.noop, "whoami": dramatiq_tasks.whoami}

    def close(self) -> None:
        self.broker.close()

    def submit(self, task: str) -> Any:
        return self.actors[task].send()

    def wait(self, handle: Any, timeout_s: float) -> Any:
        return handle.get_result(backend=self.backend, block=True, timeout=int(timeout_s * 1000))
