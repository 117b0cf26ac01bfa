"""The scenarios, written once over `submit` and `wait`: with threads for sync clients, coroutines for async.

Every system is driven the same way: one producer submitting one call at a time with a bounded window of
outstanding results, round trips one at a time, submits alone, and N concurrent producers.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
from abc import abstractmethod
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from .base import Peer

T = TypeVar("T")
NOOP, WHOAMI = "noop", "whoami"


class SyncPeer(Peer):
    """A peer with a blocking client; its saturation producers are OS threads sharing one client."""

    @abstractmethod
    def submit(self, task: str) -> Any:
        """Send task `task` (NOOP or WHOAMI); return a handle on its result."""

    @abstractmethod
    def wait(self, handle: Any, timeout_s: float) -> Any:
        """The task's result through the system's own result mechanism; raise if it does not come."""

    def identify(self, count: int, timeout_s: float) -> list[tuple[int, int]]:
        handles = [self.submit(WHOAMI) for _ in range(count)]
        return [(int(r[0]), int(r[1])) for r in (self.wait(h, timeout_s) for h in handles)]

    def throughput(self, n: int, window: int, timeout_s: float) -> None:
        pending: collections.deque[Any] = collections.deque()
        for _ in range(n):
            if len(pending) >= window:
                self.wait(pending.popleft(), timeout_s)
            pending.append(self.submit(NOOP))
        while pending:
            self.wait(pending.popleft(), timeout_s)

    def latencies(self, n: int, timeout_s: float) -> list[float]:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            self.wait(self.submit(NOOP), timeout_s)
            times.append(time.perf_counter() - started)
        return times

    def enqueue(self, n: int) -> Any:
        return [self.submit(NOOP) for _ in range(n)]

    def wait_all(self, handles: Any, timeout_s: float) -> None:
        for handle in handles:
            self.wait(handle, timeout_s)

    def saturation(self, producers: int, total: int, timeout_s: float) -> tuple[float, list[int]]:
        tickets = itertools.count()  # next() on it is atomic under the GIL
        counts = [0] * producers
        errors: list[BaseException] = []
        start = threading.Barrier(producers + 1)

        def produce(index: int) -> None:
            start.wait()
            try:
                while next(tickets) < total and not errors:
                    self.wait(self.submit(NOOP), timeout_s)
                    counts[index] += 1
            except BaseException as exc:  # noqa: BLE001  re-raised by the caller
                errors.append(exc)

        threads = [threading.Thread(target=produce, args=(i,), daemon=True) for i in range(producers)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        if errors:
            raise errors[0]
        return elapsed, counts


class AsyncPeer(Peer):
    """A peer with an asyncio client, run on one event loop of its own; saturation producers are tasks."""

    loop: asyncio.AbstractEventLoop

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def disconnect(self) -> None: ...

    @abstractmethod
    async def submit(self, task: str) -> Any: ...

    @abstractmethod
    async def wait(self, handle: Any, timeout_s: float) -> Any: ...

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def open(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._run(self.connect())

    def close(self) -> None:
        try:
            self._run(self.disconnect())
        finally:
            self.loop.close()

    def identify(self, count: int, timeout_s: float) -> list[tuple[int, int]]:
        async def run() -> list[tuple[int, int]]:
            handles = [await self.submit(WHOAMI) for _ in range(count)]
            results = [await self.wait(h, timeout_s) for h in handles]
            return [(int(r[0]), int(r[1])) for r in results]
        return self._run(run())

    def throughput(self, n: int, window: int, timeout_s: float) -> None:
        async def run() -> None:
            pending: collections.deque[Awaitable[Any]] = collections.deque()
            for _ in range(n):
                if len(pending) >= window:
                    await pending.popleft()
                handle = await self.submit(NOOP)
                pending.append(asyncio.ensure_future(self.wait(handle, timeout_s)))
            while pending:
                await pending.popleft()
        self._run(run())

    def latencies(self, n: int, timeout_s: float) -> list[float]:
        async def run() -> list[float]:
            times = []
            for _ in range(n):
                started = time.perf_counter()
                await self.wait(await self.submit(NOOP), timeout_s)
                times.append(time.perf_counter() - started)
            return times
        return self._run(run())

    def enqueue(self, n: int) -> Any:
        async def run() -> list[Any]:
            return [await self.submit(NOOP) for _ in range(n)]
        return self._run(run())

    def wait_all(self, handles: Any, timeout_s: float) -> None:
        async def run() -> None:
            for handle in handles:
                await self.wait(handle, timeout_s)
        self._run(run())

    def saturation(self, producers: int, total: int, timeout_s: float) -> tuple[float, list[int]]:
        tickets = itertools.count()
        counts = [0] * producers

        async def produce(index: int) -> None:
            while next(tickets) < total:
                await self.wait(await self.submit(NOOP), timeout_s)
                counts[index] += 1

        async def run() -> float:
            began = time.perf_counter()
            await asyncio.gather(*(produce(i) for i in range(producers)))
            return time.perf_counter() - began
        return self._run(run()), counts
