"""Huey: `huey_consumer -k thread -w C` processes, RedisHuey with notify_result=True (BLPOP, no polling)."""
from __future__ import annotations

import sys
from typing import Any

from .drivers import SyncPeer


class HueyPeer(SyncPeer):
    name = "huey"
    package = "huey"
    notes = (("huey: RedisHuey(notify_result=True, store_none=True), consumers `-k thread -w C`; results with "
             "result.get(blocking=True)."),)

    def worker_command(self, concurrency: int, index: int) -> list[str]:
        return [sys.executable, "-m", "huey.bin.huey_consumer", "benchmarks.peers.huey_tasks.huey",
                "-k", "thread", "-w", str(concurrency), "-q"]

    def open(self) -> None:
        from . import huey_tasks
        self.huey = huey_tasks.huey
        self.tasks = {"noop": huey_tasks.noop, "whoami": huey_tasks.whoami}

    def close(self) -> None:
        self.huey.storage.conn.close()

    def submit(self, task: str) -> Any:
        return self.tasks[task]()

    def wait(self, handle: Any, timeout_s: float) -> Any:
        return handle.get(blocking=True, timeout=timeout_s)
