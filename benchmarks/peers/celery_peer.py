"""Celery: thread-pool workers (`celery worker --pool threads`), Redis broker, Redis result backend."""
from __future__ import annotations

import sys
from typing import Any

from .drivers import SyncPeer


class CeleryPeer(SyncPeer):
    name = "celery"
    package = "celery"
    notes = (("celery: --pool threads --concurrency C (in-process concurrency; the default prefork pool would "
             "add child processes), default prefetch; results through the Redis backend's pub/sub (.get())."),)

    def worker_command(self, concurrency: int, index: int) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "benchmarks.peers.celery_tasks", "worker", "--pool", "threads",
                "--concurrency", str(concurrency), "--loglevel", "WARNING", "--hostname", f"bench{index}@%h"]

    def open(self) -> None:
        from . import celery_tasks
        self.app = celery_tasks.app
        self.tasks = {"noop": celery_tasks.noop, "whoami": celery_tasks.whoami}

    def close(self) -> None:
        self.app.close()

    def submit(self, task: str) -> Any:
        return self.tasks[task].apply_async()

    def wait(self, handle: Any, timeout_s: float) -> Any:
        return handle.get(timeout=timeout_s)
