"""The small interface every benchmarked system implements.

A peer says how to start one of its worker processes and how a producer talks to it; the runner starts
and stops the processes, so every system gets the same lifecycle, the same readiness check and the same
measurements. The scenarios themselves are written once, in `drivers.py`, for sync and async clients.
"""
from __future__ import annotations

import importlib.metadata
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from .plan import Plan, Shape

ROOT = Path(__file__).resolve().parent.parent.parent
URL_ENV = "BENCH_REDIS_URL"            # the task modules read the Redis URL from here
CONCURRENCY_ENV = "BENCH_CONCURRENCY"  # ...and, where a settings object needs it, the concurrency


class Peer(ABC):
    name: ClassVar[str]
    package: ClassVar[str]                    # the distribution whose version is reported
    in_process_concurrency: ClassVar[bool] = True  # False: one task per process at a time (RQ)
    scenarios: ClassVar[tuple[str, ...]] = ("throughput", "latency", "enqueue", "saturation")
    notes: ClassVar[tuple[str, ...]] = ()     # configuration choices printed under the tables

    def __init__(self, url: str, plan: Plan) -> None:
        self.url = url
        self.plan = plan
        # The task modules, imported by the producer (in `open`) and by the workers, read the URL from here.
        os.environ[URL_ENV] = url
        os.environ.setdefault(CONCURRENCY_ENV, "1")

    def version(self) -> str:
        return importlib.metadata.version(self.package)

    def skip_reason(self) -> str | None:
        """Why this system cannot be measured here (None: it can)."""
        return None

    def shape_for(self, slots: int, processes: int) -> Shape:
        """`slots` of total concurrency over at most `processes` OS processes (one per slot without threads)."""
        if not self.in_process_concurrency:
            return Shape(slots, 1)
        count = max(1, min(processes, slots))
        return Shape(count, max(1, slots // count))

    @abstractmethod
    def worker_command(self, concurrency: int, index: int) -> list[str]:
        """argv of worker process number `index`, run from the repo root with PYTHONPATH set to it."""

    def worker_env(self, concurrency: int) -> dict[str, str]:
        return {URL_ENV: self.url, CONCURRENCY_ENV: str(concurrency)}

    def note_for_run(self) -> str | None:
        """A note about this run that depends on what is installed (e.g. a missing redispool feature)."""
        return None

    # -- the producer side ----------------------------------------------------------------------------
    @abstractmethod
    def open(self) -> None:
        """Connect the producer (after the workers started)."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect the producer, stopping any thread or event loop it started."""

    def set_capacity(self, slots: int) -> None:
        """Cap concurrency from the producer side, where the system has such a cap (redispool)."""

    @abstractmethod
    def identify(self, count: int, timeout_s: float) -> list[tuple[int, int]]:
        """Run `count` whoami tasks; (pid, parent pid) of the processes that ran them."""

    @abstractmethod
    def throughput(self, n: int, window: int, timeout_s: float) -> None:
        """Submit n no-ops one call at a time, at most `window` results outstanding; return with every result."""

    @abstractmethod
    def latencies(self, n: int, timeout_s: float) -> list[float]:
        """n round trips, one task at a time; seconds each."""

    @abstractmethod
    def enqueue(self, n: int) -> Any:
        """Submit n no-ops without awaiting results; returns what `wait_all` needs."""

    @abstractmethod
    def wait_all(self, handles: Any, timeout_s: float) -> None:
        """Wait for the results of an `enqueue` (outside the measured time)."""

    @abstractmethod
    def saturation(self, producers: int, total: int, timeout_s: float) -> tuple[float, list[int]]:
        """`producers` concurrent submitters, each one task at a time, `total` tasks between them.

        Returns the seconds from the common start to the last result, and the completions per producer."""
