"""The reply listener: one thread per client that reads the client's reply list and settles futures.

Workers' release scripts push outcome frames, and grant frames for parked tasks, to the submitting
client's own reply list; this thread takes them in batches (BLMPOP with a count), so there is no
per-task blocking call and no polling.
"""
from __future__ import annotations

import logging
import threading
import time

from . import protocol
from .backend import Backend
from .errors import BackendError, PoolClosed, SerializationError
from .future import TaskFuture

log = logging.getLogger("redispool")


class ReplyListener:
    """Owns the table of pending futures and parked-task grant events of one client."""

    BATCH = 512

    def __init__(self, backend: Backend, reply_key: str) -> None:
        self.backend = backend
        self.reply_key = reply_key
        self._lock = threading.Lock()
        self._pending: dict[str, TaskFuture] = {}
        self._grants: dict[str, threading.Event] = {}
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def expect(self, future: TaskFuture, parked_wait: bool) -> threading.Event | None:
        """Register a future (and its grant event) before the task reaches Redis, so no frame is missed."""
        self._start()
        with self._lock:
            self._pending[future.id] = future
            if parked_wait:
                event = self._grants[future.id] = threading.Event()
                return event
        return None

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._pending.pop(task_id, None)
            self._grants.pop(task_id, None)

    def granted(self, task_id: str) -> None:
        with self._lock:
            self._grants.pop(task_id, None)

    def pending(self, task_id: str) -> TaskFuture | None:
        with self._lock:
            return self._pending.get(task_id)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed.is_set():
                    self._thread = threading.Thread(target=self._loop, name="redispool-replies", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        for frames in self.backend.batches(self.reply_key, self.BATCH, self._closed):
            for frame in frames:
                self._handle(frame)

    def _handle(self, frame: bytes) -> None:
        kind = frame[:1]
        if kind == b"G":
            with self._lock:
                event = self._grants.pop(frame[1:].decode("ascii", "replace"), None)
            if event is not None:
                event.set()
        elif kind == b"R":
            try:
                task_id, status, value = protocol.parse_result(frame)
            except SerializationError as exc:
                log.error("reply listener: dropped a malformed result frame: %s", exc)
                return
            with self._lock:
                future = self._pending.pop(task_id, None)
                event = self._grants.pop(task_id, None)
            if event is not None:
                event.set()
            if future is not None:
                future._resolve(*protocol.outcome(task_id, status, value))

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (woken at once by an X frame) and fail what is still pending with PoolClosed."""
        self._closed.set()
        thread = self._thread
        if thread is not None:
            try:
                self.backend.push(self.reply_key, protocol.WAKE)
            except BackendError:
                pass
            deadline = time.monotonic() + timeout_s
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            pending, self._pending = self._pending, {}
            grants, self._grants = self._grants, {}
        for event in grants.values():
            event.set()
        for future in pending.values():
            future._resolve(None, PoolClosed(f"pool closed before task {future.id} finished"))
        try:
            self.backend.delete(self.reply_key)
        except BackendError:
            pass

    @property
    def closed(self) -> bool:
        return self._closed.is_set()
