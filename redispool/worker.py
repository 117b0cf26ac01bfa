"""Worker: a daemon that registers slots in a pool, runs the tasks dispatched to them, and releases them.

`concurrency` executor threads each block on the worker's inbox list for the next dispatch frame and run
it (in the thread or in a child process each, see execution.py). When a run ends, its release
script either returns the slot to the idle stack or hands it the oldest parked task, which the same thread
runs next without another Redis read. A heartbeat thread on its own connection keeps the worker's
heartbeat key alive on the Redis clock and runs the reaper that recovers dead workers' tasks.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import socket
import threading
import time
import uuid

import redis as redis_py

from . import protocol, registry
from .backend import DEAD, DONE, LOST, RETRY, Backend, connect
from .config import Settings, resolve_url
from .errors import BackendError, RedisPoolError, SerializationError
from .execution import (DEFAULT_RETRY_LIMIT, LOST as RUN_LOST, ProcessRunner, RunResult, ThreadRunner, Watchdog,
                        backoff_s)
from .keys import PoolKeys
from .options import TaskOptions

log = logging.getLogger("redispool.worker")

EXECUTIONS = ("thread", "process")
EXIT_ABORTED = 3  # `run()` after a second SIGTERM/SIGINT: stopped at once, running tasks re-queued
RAW_DEAD_LETTER_BYTES = 64 * 1024  # how much of an unreadable inbox entry is kept for inspection


def _new_worker_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Worker:
    """Serve a pool's tasks from this process.

    pool: the pool name. url / redis: as for Pool. concurrency: slots (and executor threads) this worker
    adds to the pool, default 4. imports: modules to import so their `@task` functions are registered.
    heartbeat_ttl: seconds without a heartbeat after which the worker counts as dead and its tasks are
    recovered (default 10; refreshed every heartbeat_ttl / 5 from its own thread and connection).
    execution: "thread" (default) or "process" (a killable child process per slot; see execution.py).
    """

    def __init__(self, pool: str = "default", url: str | None = None, *, redis: redis_py.Redis | None = None,
                 concurrency: int = 4, imports: tuple[str, ...] | list[str] = (),
                 settings: Settings | None = None, heartbeat_ttl: float = 10.0, execution: str = "thread") -> None:
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise RedisPoolError(f"concurrency must be an int >= 1, not {concurrency!r}")
        if not isinstance(heartbeat_ttl, (int, float)) or isinstance(heartbeat_ttl, bool) or heartbeat_ttl < 0.5:
            raise RedisPoolError(f"heartbeat_ttl must be seconds >= 0.5, not {heartbeat_ttl!r}")
        if execution not in EXECUTIONS:
            raise RedisPoolError(f"execution must be one of {EXECUTIONS}, not {execution!r}")
        self.imports = list(imports)
        registry.import_modules(self.imports)
        self.pool = pool
        self.settings = settings or Settings.from_env()
        self.keys = PoolKeys(self.settings.prefix, pool)
        self.concurrency = concurrency
        self.execution = execution
        self.heartbeat_ttl_s = float(heartbeat_ttl)
        self.heartbeat_interval_s = self.heartbeat_ttl_s / 5
        self.reap_interval_s = min(2.0, max(0.2, self.heartbeat_ttl_s / 4))
        self._owns_client = redis is None
        resolved_url = resolve_url(url)
        # Every connection of this process carries one name, so others can tell when it is gone (see tick).
        self.connection_name = f"redispool-worker-{_new_worker_id()}" if redis is None else ""
        self.backend = Backend(redis if redis is not None else connect(resolved_url, self.connection_name),
                               self.keys)
        # Heartbeats use a connection of their own, so a busy or blocked main connection cannot delay them.
        self._beat = Backend(redis if redis is not None else connect(resolved_url, self.connection_name),
                             self.keys)
        self.id, self.inbox, self.slots = "", "", list[str]()
        self._new_identity()
        self._draining = threading.Event()
        self._stopped = threading.Event()
        self._beat_now = threading.Event()  # an executor saw Redis come back: heartbeat (and re-register) now
        self._stop_requested = threading.Event()
        self._abort_requested = threading.Event()
        self._threads: list[threading.Thread] = []
        self._beat_thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._watchdog: Watchdog | None = None
        self._count_lock = threading.Lock()
        self.tasks_done = 0
        self._last_reap = 0.0
        self.config_warnings: list[str] = []

    def _new_identity(self) -> None:
        self.id = _new_worker_id()
        self.slots = [f"{self.id}.{i}" for i in range(self.concurrency)]
        self.inbox = self.keys.inbox(self.id)

    # -- lifetime -----------------------------------------------------------------------------------------
    def start(self) -> "Worker":
        """Register the slots and serve from background threads (for tests and embedding)."""
        with self._lock:
            if self._threads:
                return self
            self._check_server()
            self.backend.publish_tasks(self._published_tasks())
            for i in range(self.concurrency):
                thread = threading.Thread(target=self._execute_loop, name=f"redispool-exec-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)
            self._register()
            self._beat_thread = threading.Thread(target=self._beat_loop, name="redispool-heartbeat", daemon=True)
            self._beat_thread.start()
        log.info("worker %s serving pool %r: %d slots, %s execution, heartbeat TTL %g s; tasks: %s", self.id,
                 self.pool, self.concurrency, self.execution, self.heartbeat_ttl_s,
                 ", ".join(sorted(registry.registered())) or "(none)")
        return self

    def _published_tasks(self) -> dict[str, dict[str, object]]:
        return {name: TaskOptions.merged(spec.options).as_dict() for name, spec in registry.registered().items()}

    def _register(self) -> None:
        record = {"host": socket.gethostname(), "pid": os.getpid(), "concurrency": self.concurrency,
                  "connection": self.connection_name,
                  "execution": self.execution, "tasks": sorted(registry.registered()), "started": time.time()}
        self.backend.register(self.id, record, self._ttl_ms, self.slots)

    @property
    def _ttl_ms(self) -> int:
        return int(self.heartbeat_ttl_s * 1000)

    def _check_server(self) -> None:
        """Warn when Redis may evict leases or lose tasks on restart (DESIGN-NOTES 7)."""
        config = self.backend.server_config()
        policy = config.get("maxmemory-policy", "noeviction")
        if policy != "noeviction":
            self.config_warnings.append(f"maxmemory-policy is {policy!r}: Redis may evict heartbeats and leases, "
                                        "making healthy workers look dead; use 'noeviction'")
        if config and config.get("appendonly") == "no" and not config.get("save"):
            self.config_warnings.append("Redis persists nothing (no AOF, no RDB): a restart loses every parked and "
                                        "running task (their futures fail with TaskLost)")
        for warning in self.config_warnings:
            log.warning("worker %s: %s", self.id, warning)

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT, then drain (see `stop`) and return 0. A second signal stops at
        once: running tasks are re-queued for other workers and the process exits with EXIT_ABORTED."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        self.start()
        while not self._stop_requested.wait(0.5):
            pass
        drainer = threading.Thread(target=self.stop, name="redispool-drain")
        drainer.start()
        while drainer.is_alive():
            if self._abort_requested.wait(0.1):
                self.abort()
                logging.shutdown()
                os._exit(EXIT_ABORTED)
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._stop_requested.is_set():
            self._abort_requested.set()
        else:
            log.info("worker %s: signal %d, draining (send it again to stop at once)", self.id, signum)
            self._stop_requested.set()

    def stop(self, timeout: float | None = None) -> None:
        """Drain: take this worker's slots out of the pool at once, finish the tasks already dispatched to
        it, deliver their results, then stop. Its slots never return to the idle stack. Tasks still running
        after `timeout` seconds are left to the reaper (re-queued once the heartbeat lapses)."""
        with self._lock:  # held briefly: the heartbeat thread takes it too, and stop waits for that thread
            already_stopping = self._draining.is_set()
            self._draining.set()
            self._stop_requested.set()
        if already_stopping:
            self._stopped.wait(timeout)
            return
        try:
            busy = self.backend.deregister(self.id, self.slots)
            self.backend.wake(self.inbox, len(self._threads))  # every executor blocked on the inbox, at once
            log.info("worker %s draining: %d task(s) in flight", self.id, busy)
        except BackendError as exc:
            log.error("worker %s could not deregister: %s", self.id, exc)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(self._left(deadline))
        self._stopped.set()
        self._beat_now.set()
        if self._beat_thread is not None:
            self._beat_thread.join(5)
        try:
            self.backend.delete(self.inbox, self.keys.heartbeat(self.id))
        except BackendError:
            pass
        self._close_clients()
        log.info("worker %s stopped after %d task(s)", self.id, self.tasks_done)

    def abort(self) -> int:
        """Stop at once: re-queue this worker's running tasks (at the front, without counting a loss) and
        leave the pool. The tasks' threads are not interrupted; `run()` exits the process right after."""
        # No lock and no join: this must work while a drain is waiting for the running tasks.
        self._draining.set()
        self._stopped.set()
        self._beat_now.set()
        try:
            requeued = self.backend.abandon(self.id, self.slots)
        except BackendError as exc:
            log.error("worker %s could not re-queue its tasks (the reaper will): %s", self.id, exc)
            requeued = 0
        log.warning("worker %s stopped at once; %d running task(s) re-queued", self.id, requeued)
        return requeued

    def _close_clients(self) -> None:
        self.backend.close(close_client=self._owns_client)
        self._beat.close(close_client=self._owns_client)

    @staticmethod
    def _left(deadline: float | None) -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def __enter__(self) -> "Worker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- heartbeat and reaper ----------------------------------------------------------------------------
    def tick(self) -> None:
        """One heartbeat (and, when due, one reap). Re-registers with fresh slots if the worker was reaped
        or Redis lost its registration; a late release from before that is rejected by its fencing token."""
        if not self._beat.heartbeat(self.id, self._ttl_ms, draining=self._draining.is_set()):
            with self._lock:
                if self._draining.is_set():
                    return
                old, old_inbox = self.id, self.inbox
                self._new_identity()
                self.backend.publish_tasks(self._published_tasks())
                self._register()
                # Executors blocked on the old inbox move to the new one now; what is left there expires.
                self.backend.wake(old_inbox, len(self._threads), ttl_ms=self.settings.result_ttl_ms)
            log.warning("worker %s was not registered any more (reaped after a pause, or Redis lost its state); "
                        "serving again as %s with fresh slots", old, self.id)
        now = time.monotonic()
        if now - self._last_reap >= self.reap_interval_s:
            self._last_reap = now
            self._expire_disconnected()
            recovered = self._beat.reap(int(self.reap_interval_s * 1000), self.settings.result_ttl_ms)
            if recovered > 0:
                log.warning("worker %s recovered %d task(s) from dead workers", self.id, recovered)

    def _expire_disconnected(self) -> None:
        """A worker killed outright (kill -9, OOM) drops its connections at once, long before its heartbeat
        expires: end its heartbeat now, so the reap that follows recovers its tasks within one reap interval.
        A paused or partitioned worker keeps (or loses) its connections like any client; fencing covers it.
        Skipped where CLIENT LIST is not allowed or the worker shares an injected client (no name)."""
        if not self._beat.try_lock("livecheck", int(self.reap_interval_s * 1000)):
            return
        names = self._beat.connected_client_names()
        if names is None:
            return
        gone = [worker_id for worker_id, record in self._beat.workers().items()
                if record.get("connection") and record["connection"] not in names]
        if gone:
            log.warning("worker %s: worker(s) %s disconnected; recovering their tasks", self.id, ", ".join(gone))
            self._beat.delete(*(self.keys.heartbeat(w) for w in gone))

    def _beat_loop(self) -> None:
        """Tick every interval; after a failed tick retry sooner (0.05 s doubling), and tick at once when an
        executor's read recovers, so a worker re-registers within moments of a Redis restart."""
        interval_s = min(self.heartbeat_interval_s, self.reap_interval_s)
        retry_s = 0.05
        while not self._stopped.is_set():
            wait_s = interval_s
            try:
                self.tick()
                retry_s = 0.05
            except BackendError as exc:
                log.warning("worker %s heartbeat: %s", self.id, exc)
                wait_s, retry_s = min(retry_s, interval_s), retry_s * 2
            self._beat_now.wait(wait_s)
            self._beat_now.clear()

    # -- inbox and executors -------------------------------------------------------------------------------
    def _make_runner(self) -> ThreadRunner | ProcessRunner:
        if self.execution == "process":
            modules = sorted({*self.imports, *(spec.fn.__module__ for spec in registry.registered().values())}
                             - {"__main__"})
            return ProcessRunner(modules)
        with self._lock:
            if self._watchdog is None:
                self._watchdog = Watchdog()
        return ThreadRunner(self._watchdog)

    def _execute_loop(self) -> None:
        """Each executor blocks on the inbox itself (its own connection), taking one frame at a time: no
        hand-off between threads on the hot path, and a busy executor never holds frames another could run.
        Once deregistered, nothing new can arrive: it runs what was dispatched before that, then exits."""
        runner = self._make_runner()
        try:
            for frames in self.backend.batches(lambda: self.inbox, 1, self._draining, on_recover=self._beat_now.set):
                for frame in frames:
                    if frame != protocol.WAKE:
                        self._run_chain(frame, runner)
            while (left_over := self._pop_left_over()) is not None:
                if left_over != protocol.WAKE:
                    self._run_chain(left_over, runner)
        finally:
            runner.close()

    def _pop_left_over(self) -> bytes | None:
        try:
            frames = self.backend.drain(self.inbox, 1)
        except BackendError as exc:
            log.error("worker %s could not drain its inbox: %s", self.id, exc)
            return None
        return frames[0] if frames else None

    def _bury(self, frame: bytes, exc: Exception) -> None:
        """An inbox entry that names no slot: keep (the start of) it in the dead letters; nothing to release."""
        log.error("worker %s: unreadable inbox entry (%d bytes) set aside: %s", self.id, len(frame), exc)
        try:
            self.backend.bury(f"raw-{uuid.uuid4().hex}", frame[:RAW_DEAD_LETTER_BYTES], f"SerializationError: {exc}")
        except BackendError as err:
            log.error("worker %s: could not dead-letter the entry: %s", self.id, err)

    def _refuse(self, bad: protocol.MalformedDispatch) -> bytes | None:
        """A dispatch whose envelope header is unreadable: release its slot with the raw ids, so the slot comes
        back and the task is dead-lettered (its submitter, if any, gets SerializationError)."""
        log.error("worker %s: task on slot %s has an unreadable header: %s", self.id, bad.slot, bad)
        frame = protocol.result_frame(bad.raw_task_id, protocol.BAD_MESSAGE, str(bad))
        return self._release_raw(bad.slot, bad.raw_task_id, bad.attempt, bad.raw_reply_key, DEAD, frame, 0,
                                 f"bad message: {bad}", RAW_DEAD_LETTER_BYTES)

    def _run_chain(self, frame: bytes | None, runner: ThreadRunner | ProcessRunner) -> None:
        """Run a task, release its slot, and keep running the parked tasks the release hands this slot."""
        while frame is not None:
            try:
                dispatch = protocol.split_dispatch(frame)
            except protocol.MalformedDispatch as bad:
                frame = self._refuse(bad)
                continue
            except SerializationError as exc:
                self._bury(frame, exc)
                return
            mode, result, delay_ms, error, keep_bytes = self._execute(dispatch, runner)
            frame = self._release_raw(dispatch.slot, dispatch.task_id, dispatch.attempt, dispatch.reply_key, mode,
                                      result, delay_ms, error, keep_bytes)

    def _execute(self, d: protocol.Dispatch,
                 runner: ThreadRunner | ProcessRunner) -> tuple[str, bytes, int, str, int]:
        """Run one attempt; returns (release mode, outcome frame, retry delay ms, dead-letter error, bytes of
        the envelope a dead letter keeps)."""
        try:
            message = protocol.decode_body(d.body, self.settings.max_message_bytes)
            spec = registry.lookup(d.task)
            options = TaskOptions.for_run(spec.options if spec else None, d.options)
        except Exception as exc:  # noqa: BLE001 - hostile bytes can fail in many ways; none may kill the thread
            log.error("worker %s: task %s has a bad message: %s", self.id, d.task_id, exc)
            return (DEAD, protocol.result_frame(d.task_id, protocol.BAD_MESSAGE, str(exc)), 0,
                    f"bad message: {exc}", RAW_DEAD_LETTER_BYTES)
        if spec is None:
            log.error("worker %s: task %s names unregistered task %r", self.id, d.task_id, d.task)
            # Kept whole: once a worker serves that name, the dead letter can be requeued.
            return (DEAD, protocol.result_frame(d.task_id, protocol.NOT_REGISTERED, d.task), 0,
                    f"TaskNotRegistered: {d.task}", 0)
        try:
            result = runner.run(d.task, message.args, message.kwargs, options.time_limit)
        except Exception as exc:  # noqa: BLE001 - the runner itself failed: count it as a lost run
            log.exception("worker %s: could not run task %s", self.id, d.task_id)
            result = RunResult(RUN_LOST, f"the worker could not run the task: {exc}")
        with self._count_lock:
            self.tasks_done += 1
        if result.status == RUN_LOST:
            return LOST, b"", 0, "", 0
        if result.status == protocol.ERROR:
            if result.retry_requested:
                limit = result.retry_limit if result.retry_limit is not None else (
                    options.retries or DEFAULT_RETRY_LIMIT)
            else:
                limit = options.retries
            if d.retries_done < limit:
                delay_s = result.retry_delay_s if result.retry_delay_s is not None else backoff_s(
                    d.retries_done, options.retry_backoff_s, options.retry_backoff_max_s)
                return RETRY, b"", int(delay_s * 1000), "", 0
        return DONE, protocol.result_frame(d.task_id, result.status, result.value), 0, "", 0

    def _release_raw(self, slot: str, task_id: str | bytes, attempt: int, reply_key: str | bytes, mode: str,
                     frame: bytes, delay_ms: int, error: str, keep_bytes: int) -> bytes | None:
        """Release with retries (the script is idempotent, so re-sending after an error is safe); returns
        the dispatch frame of the parked task the slot runs next, if any."""
        backoff = 0.05
        while True:
            try:
                return self.backend.release(slot, task_id, attempt, reply_key, mode, frame,
                                            self.settings.result_ttl_ms, delay_ms, error, keep_bytes)
            except BackendError as exc:
                if self._stopped.is_set():
                    log.error("worker %s: gave up releasing task %r: %s", self.id, task_id, exc)
                    return None
                log.warning("worker %s: release of task %r failed (%s); retrying in %.2fs",
                            self.id, task_id, exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
