"""Worker: a daemon that registers slots in a pool, runs the tasks dispatched to them, and releases them.

One inbox thread takes dispatch frames from the worker's inbox list in batches; `concurrency` executor
threads run them. When a task ends, its release script either returns the slot to the idle stack or hands
it the oldest parked task, which the same thread runs next without another Redis read.
"""
from __future__ import annotations

import logging
import os
import queue
import re
import signal
import socket
import threading
import time
import uuid

import redis as redis_py

from . import protocol, registry
from .backend import Backend, connect
from .config import Settings, resolve_url
from .errors import BackendError, RedisPoolError, SerializationError
from .keys import PoolKeys

log = logging.getLogger("redispool.worker")


def _worker_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Serve a pool's tasks from this process.

    pool: the pool name. url / redis: as for Pool. concurrency: slots (and executor threads) this worker
    adds to the pool, default 4. imports: modules to import so their `@task` functions are registered.
    """

    def __init__(self, pool: str = "default", url: str | None = None, *, redis: redis_py.Redis | None = None,
                 concurrency: int = 4, imports: tuple[str, ...] | list[str] = (),
                 settings: Settings | None = None) -> None:
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise RedisPoolError(f"concurrency must be an int >= 1, not {concurrency!r}")
        registry.import_modules(tuple(imports))
        self.pool = pool
        self.settings = settings or Settings.from_env()
        self.keys = PoolKeys(self.settings.prefix, pool)
        self.concurrency = concurrency
        self._owns_client = redis is None
        self.backend = Backend(redis if redis is not None else connect(resolve_url(url)), self.keys)
        self.id = _worker_id()
        self.slots = [f"{self.id}.{i}" for i in range(concurrency)]
        self.inbox = self.keys.inbox(self.id)
        self._frames: queue.Queue[bytes | None] = queue.Queue()
        self._draining = threading.Event()
        self._stopped = threading.Event()
        self._stop_requested = threading.Event()
        self._threads: list[threading.Thread] = []
        self._inbox_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.tasks_done = 0

    # -- lifetime -----------------------------------------------------------------------------------------
    def start(self) -> "Worker":
        """Register the slots and serve from background threads (for tests and embedding)."""
        with self._lock:
            if self._threads:
                return self
            tasks = {name: spec.options for name, spec in registry.registered().items()}
            self.backend.publish_tasks(tasks)
            for i in range(self.concurrency):
                thread = threading.Thread(target=self._execute_loop, name=f"redispool-exec-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)
            self._inbox_thread = threading.Thread(target=self._inbox_loop, name="redispool-inbox", daemon=True)
            self._inbox_thread.start()
            record = {"host": socket.gethostname(), "pid": os.getpid(), "concurrency": self.concurrency,
                      "tasks": sorted(tasks), "started": time.time()}
            self.backend.register(self.id, record, self.slots)
        log.info("worker %s serving pool %r with %d slots: %s", self.id, self.pool, self.concurrency,
                 ", ".join(sorted(tasks)) or "(no tasks)")
        return self

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT, then drain (see `stop`) and return the exit code 0."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop_requested.set())
        self.start()
        while not self._stop_requested.wait(0.5):
            pass
        self.stop()
        return 0

    def stop(self, timeout: float | None = None) -> None:
        """Drain: take this worker's slots out of the pool at once, finish the tasks already dispatched to
        it, deliver their results, then stop the threads. Its slots never return to the idle stack."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._draining.set()
            self._stop_requested.set()
            try:
                busy = self.backend.deregister(self.id, self.slots)
                self.backend.push(self.inbox, protocol.WAKE)
                log.info("worker %s draining: %d task(s) in flight", self.id, busy)
            except BackendError as exc:
                log.error("worker %s could not deregister: %s", self.id, exc)
            deadline = None if timeout is None else time.monotonic() + timeout
            if self._inbox_thread is not None:
                self._inbox_thread.join(self._left(deadline))
            for _ in self._threads:
                self._frames.put(None)
            for thread in self._threads:
                thread.join(self._left(deadline))
            try:
                self.backend.delete(self.inbox)
            except BackendError:
                pass
            self._stopped.set()
        if self._owns_client:
            self.backend.close()
        log.info("worker %s stopped after %d task(s)", self.id, self.tasks_done)

    @staticmethod
    def _left(deadline: float | None) -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def __enter__(self) -> "Worker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loops -------------------------------------------------------------------------------------------
    def _inbox_loop(self) -> None:
        for frames in self.backend.batches(self.inbox, self.concurrency, self._draining):
            self._enqueue(frames)
        # Deregistered: nothing new can arrive; run what was dispatched before that.
        try:
            self._enqueue(self.backend.drain(self.inbox))
        except BackendError as exc:
            log.error("worker %s could not drain its inbox: %s", self.id, exc)

    def _enqueue(self, frames: list[bytes]) -> None:
        for frame in frames:
            if frame != protocol.WAKE:
                self._frames.put(frame)

    def _execute_loop(self) -> None:
        while True:
            frame = self._frames.get()
            if frame is None:
                return
            try:
                slot, task_id, reply_key, body = protocol.split_dispatch(frame)
            except SerializationError as exc:
                log.error("worker %s: dropped an unreadable inbox entry (%d bytes): %s", self.id, len(frame), exc)
                continue
            self._run_chain(slot, task_id, reply_key, body)

    def _run_chain(self, slot: str, task_id: str, reply_key: str, body: bytes) -> None:
        """Run a task, release its slot, and keep running the parked tasks the release hands this slot."""
        while True:
            result = self._execute(task_id, reply_key, body)
            next_envelope = self._release(slot, task_id, reply_key, result)
            if next_envelope is None:
                return
            try:
                _, task_id, reply_key, body = protocol.split_dispatch(slot.encode() + b"|" + next_envelope)
            except SerializationError as exc:  # written by our own acquire: should not happen
                log.error("worker %s: unreadable handed-off task on slot %s: %s", self.id, slot, exc)
                return

    def _execute(self, task_id: str, reply_key: str, body: bytes) -> bytes:
        """Run one task and return its result frame; never raises (a worker outlives its tasks' failures)."""
        try:
            message = protocol.decode_body(task_id, reply_key, body, self.settings.max_message_bytes)
        except SerializationError as exc:
            log.error("worker %s: task %s has a bad message: %s", self.id, task_id, exc)
            return protocol.result_frame(task_id, protocol.BAD_MESSAGE, str(exc))
        spec = registry.lookup(message.task)
        if spec is None:
            log.error("worker %s: task %s names unregistered task %r", self.id, task_id, message.task)
            return protocol.result_frame(task_id, protocol.NOT_REGISTERED, message.task)
        try:
            value = spec.fn(*message.args, **message.kwargs)
        except BaseException as exc:  # noqa: BLE001 - report every failure of user code to its submitter
            return protocol.result_frame(task_id, protocol.ERROR, protocol.error_value(exc))
        finally:
            self.tasks_done += 1
        return protocol.result_frame(task_id, protocol.OK, value)

    def _release(self, slot: str, task_id: str, reply_key: str, frame: bytes) -> bytes | None:
        """Release with retries: the script is idempotent, so re-sending after an error is safe."""
        backoff_s = 0.05
        while True:
            try:
                return self.backend.release(slot, task_id, reply_key, frame, self.settings.result_ttl_ms)
            except BackendError as exc:
                if self._stopped.is_set():
                    log.error("worker %s: gave up releasing task %s: %s", self.id, task_id, exc)
                    return None
                log.warning("worker %s: release of task %s failed (%s); retrying in %.2fs",
                            self.id, task_id, exc, backoff_s)
                time.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 2.0)
