"""Pool: the submitting side of a distributed GoPool (submit, block while full, map, inspect)."""
from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
import uuid
from typing import Any, Callable, Hashable, Iterable, Iterator

import redis as redis_py

from . import protocol
from .backend import (ACTIVE_STATE, DISPATCHED, FULL, MISSING_STATE, PARKED, PARKED_STATE, Backend,
                      connect)
from .config import Settings, resolve_url
from .errors import BackendError, PoolClosed, PoolFull, PoolTimeout, RedisPoolError, ResultTimeout
from .dead_letters import DeadLetter
from .future import TaskFuture
from .group_commit import GroupCommit
from .keys import PoolKeys
from .listener import ReplyListener
from .options import TaskOptions, header_json
from .registry import task_name_of

log = logging.getLogger("redispool")

# A blocked submitter re-reads its task's real state this often, in case a grant frame went missing.
RECHECK_S = 2.0
# ...and runs the reaper itself after waiting this long (a default heartbeat TTL), then as often again.
REAP_AFTER_S = 10.0
# Tasks per acquire call in submit_many and map.
ACQUIRE_BATCH = 512


class Pool:
    """A bounded pool of worker slots in Redis, shared by every process that opens the same name.

    name: the pool; every key it uses shares the hash tag `{name}`.
    url: Redis URL; defaults to env REDISPOOL_URL, then REDIS_URL, then redis://localhost:6379/0.
    redis: an existing redis-py (or fakeredis) client to use instead of `url`; the pool does not close it.
    capacity: when given, sets the cluster-wide cap (see `set_capacity`).
    settings: key prefix, result TTL and message size limit (default: `Settings.from_env()`).
    queue_size: GoPool's task queue. 0 (default) is strict hand-off: a submit that finds the pool full
    blocks until its task is dispatched. With N > 0, a submit returns as soon as its task is parked while
    fewer than N tasks wait ahead of it, and blocks only beyond that: producers run ahead by up to N tasks
    (still first come, first served, still capped), and need not wait a round trip per task for a grant.
    """

    def __init__(self, name: str = "default", url: str | None = None, *, redis: redis_py.Redis | None = None,
                 capacity: int | None = None, settings: Settings | None = None, queue_size: int = 0) -> None:
        if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 0:
            raise RedisPoolError(f"queue_size must be an int >= 0, not {queue_size!r}")
        self.name = name
        self.queue_size = queue_size
        self.settings = settings or Settings.from_env()
        self.keys = PoolKeys(self.settings.prefix, name)
        self._owns_client = redis is None
        self.backend = Backend(redis if redis is not None else connect(resolve_url(url)), self.keys)
        self.client_id = uuid.uuid4().hex
        # Task ids: this client's random prefix and a counter (unique without a urandom call per task).
        self._id_prefix = uuid.uuid4().hex[:20]  # not the client id: a task id is then never part of a reply key
        self._ids = itertools.count(1)
        self._replies = ReplyListener(self.backend, self.keys.reply(self.client_id))
        # Concurrent submits from many threads share acquire round trips (see group_commit.py).
        self._acquires: GroupCommit[tuple[str, bytes], int] = GroupCommit(self._send_acquire, ACQUIRE_BATCH)
        if capacity is not None:
            self.set_capacity(capacity)

    # -- submitting ------------------------------------------------------------------------------------
    def submit(self, task_name: str | Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskFuture:
        """Run `task_name(*args, **kwargs)` on a worker; blocks while the pool is full.

        task_name: a registered name, or the @task-decorated function itself."""
        return self.submit_with(task_name, args, kwargs)

    def submit_with(self, task_name: str | Callable[..., Any], args: tuple | list = (),
                    kwargs: dict[str, Any] | None = None, *, block: bool = True,
                    timeout: float | None = None, **options: Any) -> TaskFuture:
        """Submit with control over waiting and per-call task options.

        block=False: raise PoolFull at once when no slot is free or other submitters are waiting.
        timeout: seconds to wait for a slot (None: forever); on expiry the task is withdrawn and
        PoolTimeout raised. options: time_limit, retries, max_attempts, on_worker_lost (see TaskOptions),
        overriding the task's declared ones. Bad arguments or options raise before anything is written.
        While Redis is unreachable the submit retries for `settings.redis_retry_s`, then raises BackendError.
        """
        return self._submit(task_name, [(args, kwargs)], block, timeout, options)[0]

    def submit_many(self, task_name: str | Callable[..., Any], calls: Iterable[tuple | list], *,
                    timeout: float | None = None, **options: Any) -> list[TaskFuture]:
        """Submit `task_name(*call)` for each call (a tuple of positional arguments), in order, with one
        Redis round trip per 512 tasks. Blocks until every task is dispatched (or queued, see queue_size),
        in the same first-come-first-served line as single submits. On `timeout`, the tasks still parked
        are withdrawn and PoolTimeout is raised; its `submitted` lists the futures of those that were not.
        """
        return self._submit(task_name, [(call, None) for call in calls], True, timeout, options)

    def _submit(self, task_name: str | Callable[..., Any], calls: list[tuple[tuple | list, dict[str, Any] | None]],
                block: bool, timeout: float | None, options: dict[str, Any]) -> list[TaskFuture]:
        self._check_open()
        if timeout is not None and not timeout >= 0:
            raise RedisPoolError(f"timeout must be >= 0 seconds, not {timeout!r}")
        name = task_name_of(task_name)
        TaskOptions.check(options)
        reply_key = self._replies.reply_key
        # Encode everything first: a bad argument anywhere fails the call before anything is written.
        prepared = []
        for args, kwargs in calls:
            task_id = f"{self._id_prefix}{next(self._ids):x}"
            prepared.append((task_id, protocol.encode_envelope(task_id, reply_key, name, args, kwargs, options,
                                                               max_bytes=self.settings.max_message_bytes)))
        futures = [TaskFuture(task_id, name, self._replies) for task_id, _ in prepared]
        for future in futures:
            self._replies.expect(future)
        deadline = None if timeout is None else time.monotonic() + timeout
        parked: list[tuple[str, bytes, threading.Event]] = []
        for start in range(0, len(prepared), ACQUIRE_BATCH):
            chunk = prepared[start:start + ACQUIRE_BATCH]
            try:
                codes = self._acquire(chunk, block, deadline)
            except BaseException:
                for task_id, _ in prepared[start:]:
                    self._replies.forget(task_id)
                raise
            for (task_id, envelope), code in zip(chunk, codes, strict=True):
                if code == FULL:
                    self._replies.forget(task_id)
                    raise PoolFull(self.name)
                grant = self._replies.confirm(task_id, granted=code != PARKED)
                if grant is not None:
                    parked.append((task_id, envelope, grant))
        for i, (task_id, envelope, grant) in enumerate(parked):
            try:
                self._wait_for_grant(task_id, envelope, grant, timeout, deadline)
            except PoolTimeout as exc:
                withdrawn = {task_id} | {later for later, _, _ in parked[i + 1:] if self._withdraw(later)}
                exc.submitted = [f for f in futures if f.id not in withdrawn]
                raise
        return futures

    def _acquire(self, tasks: list[tuple[str, bytes]], park: bool, deadline: float | None) -> list[int]:
        """The acquire script, re-sent with backoff while Redis is unreachable (it is idempotent)."""
        give_up = time.monotonic() + self.settings.redis_retry_s
        if deadline is not None:
            give_up = min(give_up, deadline)
        backoff_s = 0.05
        while True:
            try:
                return self._acquires.call(tasks, park)
            except BackendError as exc:
                if not exc.transient or time.monotonic() + backoff_s > give_up:
                    raise
                time.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 1.0)

    def _send_acquire(self, tasks: list[tuple[str, bytes]], park: Hashable) -> list[int]:
        """One acquire call, which also brings back the replies waiting for this client when no other
        thread is reading them (results ride on submits: no read round trip of their own)."""
        with self._replies.reading_alongside() as take:
            codes, frames = self.backend.acquire_many(tasks, self._replies.reply_key, bool(park), self.queue_size,
                                                      take)
            self._replies.handle(frames)
        return codes

    def _wait_for_grant(self, task_id: str, envelope: bytes, grant: threading.Event, timeout_s: float | None,
                        deadline: float | None) -> None:
        """Block until the parked task is dispatched; on timeout or interrupt, withdraw it atomically.

        Every RECHECK_S the task's real state is read from Redis (grant frames are hints): dispatched means
        granted, and a task Redis no longer knows (restart) is parked again. After REAP_AFTER_S of waiting,
        the submitter also runs the reaper, in case no live worker is left to run it."""
        next_reap = time.monotonic() + REAP_AFTER_S
        try:
            while True:
                remaining = RECHECK_S if deadline is None else min(RECHECK_S, deadline - time.monotonic())
                if remaining > 0 and self._await_grant(grant, remaining):
                    if self._replies.closed:
                        raise PoolClosed(f"pool {self.name!r} closed while a submit was waiting")
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    if self._withdraw(task_id):
                        raise PoolTimeout(self.name, timeout_s or 0.0)
                    self._replies.confirm(task_id, granted=True)  # dispatched just before the deadline
                    return
                try:
                    state = self.backend.task_states([task_id])[task_id]
                    if state == MISSING_STATE:  # Redis lost it (restart): park it again
                        state = ACTIVE_STATE if self.backend.acquire(
                            task_id, envelope, self._replies.reply_key, True) == DISPATCHED else PARKED_STATE
                    if state != PARKED_STATE:
                        self._replies.confirm(task_id, granted=True)
                        return
                    if time.monotonic() >= next_reap:
                        next_reap = time.monotonic() + REAP_AFTER_S
                        self.backend.reap(1000, self.settings.result_ttl_ms)
                except BackendError as exc:
                    log.warning("pool %r: waiting for a slot: %s", self.name, exc)
        except (PoolTimeout, PoolClosed):
            raise
        except BaseException:
            # Interrupted (Ctrl-C): never leave a parked task behind that nobody waits for.
            self._withdraw(task_id)
            raise

    def _await_grant(self, grant: threading.Event, timeout_s: float) -> bool:
        """Wait for a grant, reading this client's replies on this thread while no other thread does."""
        with self._replies.waiting_for(grant.is_set, timeout_s) as left:
            return grant.wait(left)

    def _withdraw(self, task_id: str) -> bool:
        """Take a parked task back; True when it will not run (also when Redis is unreachable: then it is
        gone with Redis or, with persistence, runs with nobody waiting; its result stays readable by id)."""
        try:
            withdrawn = self.backend.withdraw(task_id)
        except BackendError:
            withdrawn = True
        if withdrawn:
            self._replies.forget(task_id)
        return withdrawn

    def map(self, task_name: str | Callable[..., Any], iterable: Iterable[Any], *,
            max_in_flight: int | None = None, **options: Any) -> Iterator[Any]:
        """Yield `task_name(item)` for each item, in input order, with at most max_in_flight outstanding.

        Each item is one positional argument (tuples are not splatted). Default max_in_flight: twice the
        pool's capacity (at least 1). Items are submitted in batches (one round trip per batch) whenever
        the window is half empty. The first task error is raised when its turn comes. options: as for
        submit_with.
        """
        limit = max_in_flight if max_in_flight is not None else max(1, 2 * self.capacity())
        if limit < 1:
            raise RedisPoolError(f"max_in_flight must be >= 1, not {limit!r}")
        items = iter(iterable)
        window: collections.deque[TaskFuture] = collections.deque()
        try:
            while True:
                if len(window) <= limit // 2:
                    batch = [(item,) for item in itertools.islice(items, limit - len(window))]
                    if batch:
                        window.extend(self.submit_many(task_name, batch, **options))
                if not window:
                    return
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()

    # -- results ----------------------------------------------------------------------------------------
    def result(self, task_id: str, timeout: float | None = None) -> Any:
        """A task's result by id, from any process, waiting up to `timeout` seconds (None: forever).

        Results are kept for `settings.result_ttl_s` (default one day). Raises the task's error, or
        ResultTimeout when no result appeared in time.
        """
        future = self._replies.pending(task_id)
        if future is not None:
            return future.result(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait_s = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            frame = self.backend.read_result(task_id, max(0.0, wait_s))
            if frame is not None:
                _, value, error = protocol.parse_outcome(frame)
                if error is not None:
                    raise error
                return value
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(f"no result for task {task_id} within {timeout:g} s")

    # -- inspection and control -------------------------------------------------------------------------
    def running(self) -> int:
        return int(self.stats()["running"])

    def capacity(self) -> int:
        return int(self.stats()["capacity"])

    def idle(self) -> int:
        return int(self.stats()["idle"])

    def set_capacity(self, n: int | None) -> None:
        """Set the cluster-wide cap on concurrently running tasks; None restores the default (the number
        of registered worker slots). Raising it dispatches waiting tasks at once."""
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise RedisPoolError(f"capacity must be an int >= 0 or None, not {n!r}")
        self.backend.set_capacity(n)

    def stats(self) -> dict[str, Any]:
        """running, capacity, idle, waiting (parked tasks), slots, workers, and this client's in-flight."""
        snap = self.backend.snapshot()
        snap.update(pool=self.name, in_flight=self._replies.in_flight())
        return snap

    def dead_letters(self) -> list[DeadLetter]:
        """Tasks set aside (lost max_attempts times, failed with WorkerLost, undecodable, unknown), oldest first;
        at most 10,000 are kept."""
        return [DeadLetter.from_record(record, envelope, self.settings.max_message_bytes)
                for record, envelope in self.backend.dead_letters()]

    def requeue_dead(self, task_id: str) -> TaskFuture:
        """Send a dead letter back to the pool (behind parked tasks, its attempt counts reset); the returned
        future, of this client, gets its new outcome. Raises RedisPoolError if there is no such dead letter."""
        self._check_open()
        envelope = self.backend.dead_envelope(task_id)
        if envelope is None:
            raise RedisPoolError(f"pool {self.name!r} has no dead letter {task_id!r}")
        _, _, name, options, body = protocol.split_envelope(envelope)
        readdressed = f"{task_id}|{self._replies.reply_key}|{name}|{header_json(options)}|".encode() + body
        future = TaskFuture(task_id, name, self._replies)
        self._replies.expect(future)
        if not self.backend.requeue_dead(task_id, readdressed):
            self._replies.forget(task_id)
            raise RedisPoolError(f"pool {self.name!r} has no dead letter {task_id!r}")
        self._replies.confirm(task_id, granted=True)
        return future

    def tasks(self) -> dict[str, dict[str, Any]]:
        """Task names served by this pool's workers, with the options they declared."""
        return self.backend.published_tasks()

    def workers(self) -> dict[str, dict[str, Any]]:
        """Live workers of this pool: id -> host, pid, concurrency, tasks."""
        return self.backend.workers()

    # -- lifetime ---------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._replies.closed:
            raise PoolClosed(f"pool {self.name!r} is closed")

    def close(self) -> None:
        """GoPool's Release: stop the reply listener, fail pending futures with PoolClosed, free connections."""
        if self._replies.closed:
            return
        self._replies.close()
        self.backend.close(close_client=self._owns_client)

    @property
    def closed(self) -> bool:
        return self._replies.closed

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Pool {self.name!r} prefix={self.settings.prefix!r}>"
