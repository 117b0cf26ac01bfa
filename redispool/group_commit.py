"""Group commit: concurrent submits of one client share a round trip to Redis.

While one thread's acquire call is in flight, others queue their tasks; when it returns, the oldest
queued caller becomes the leader and sends everything queued (of its mode, up to `limit` tasks) in one
call. Every caller still returns only once Redis has answered for its own tasks, so a returned submit
means the same as without batching; a lone submitter pays one lock and one small object per call.
This is how many producer threads (a web server's) get below one acquire round trip per task.

t=0  A sends [a]                       B, C queue [b], [c]
t=1  A's reply: A returns codes(a), hands the lead to B
t=2  B sends [b, c]; its reply wakes C with codes(c)
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Generic, Hashable, Sequence, TypeVar

from .errors import BackendError

T = TypeVar("T")
R = TypeVar("R")


class _Caller(Generic[T, R]):
    __slots__ = ("items", "mode", "wake", "results", "error", "lead")

    def __init__(self, items: Sequence[T], mode: Hashable) -> None:
        self.items = items
        self.mode = mode
        self.wake = threading.Event()
        self.results: list[R] | None = None
        self.error: BaseException | None = None
        self.lead = False


class GroupCommit(Generic[T, R]):
    """`call(items, mode)` runs `send(items, mode) -> one result per item`, batching concurrent callers of
    the same mode into one send of at most `limit` items (a single caller's items are never split)."""

    def __init__(self, send: Callable[[list[T], Hashable], list[R]], limit: int) -> None:
        self._send = send
        self._limit = limit
        self._lock = threading.Lock()
        self._queue: deque[_Caller[T, R]] = deque()
        self._busy = False

    def call(self, items: Sequence[T], mode: Hashable) -> list[R]:
        me: _Caller[T, R] = _Caller(items, mode)
        with self._lock:
            self._queue.append(me)
            if not self._busy:
                self._busy = me.lead = True
        if not me.lead:
            try:
                me.wake.wait()  # set with our results, or to make us the leader
            except BaseException:  # interrupted: never leave the queue waiting for a leader that is gone
                self._abandon(me)
                raise
            if not me.lead:
                if me.error is not None:
                    raise me.error
                assert me.results is not None
                return me.results
        self._lead(me)
        if me.error is not None:
            raise me.error
        assert me.results is not None
        return me.results

    def _abandon(self, me: _Caller[T, R]) -> None:
        """An interrupted caller leaves: unsent items are withdrawn, and a lead it was given moves on."""
        with self._lock:
            if me in self._queue:
                self._queue.remove(me)
            if me.lead:
                self._hand_on()

    def _hand_on(self) -> None:
        """(Under the lock.) Wake the oldest queued caller as the next leader, or stand down."""
        if self._queue:
            successor = self._queue[0]
            successor.lead = True
            successor.wake.set()
        else:
            self._busy = False

    def _lead(self, me: _Caller[T, R]) -> None:
        """Send one batch that starts with `me`, settle its callers, and hand the lead on."""
        batch: list[_Caller[T, R]] = []
        try:
            batch = self._take_batch(me)
            flat = [item for caller in batch for item in caller.items]
            try:
                results = self._send(flat, me.mode)
            except BaseException as exc:  # every caller in the batch sees the failure and may retry
                me.error = exc
                # An interrupt belongs to the leader's thread; the others see a transient failure.
                shared = exc if isinstance(exc, Exception) else BackendError(
                    f"the thread sending this batch was interrupted ({type(exc).__name__})", transient=True)
                for caller in batch[1:]:
                    caller.error = shared
            else:
                start = 0
                for caller in batch:
                    caller.results = results[start:start + len(caller.items)]
                    start += len(caller.items)
        finally:
            for caller in batch:
                if caller is not me:
                    caller.wake.set()
            with self._lock:
                self._hand_on()

    def _take_batch(self, me: _Caller[T, R]) -> list[_Caller[T, R]]:
        with self._lock:
            self._queue.remove(me)
            batch, size = [me], len(me.items)
            kept: deque[_Caller[T, R]] = deque()
            while self._queue:
                caller = self._queue.popleft()
                if caller.mode == me.mode and size + len(caller.items) <= self._limit:
                    batch.append(caller)
                    size += len(caller.items)
                else:
                    kept.append(caller)
            self._queue = kept
            return batch
