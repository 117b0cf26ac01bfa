"""The only module that talks to redis-py: connections, the Lua scripts, and mapping Redis errors.

Scripts run through redis-py's `Script` (EVALSHA, reloaded on NOSCRIPT, e.g. after a restart or SCRIPT
FLUSH). Every mutating script is idempotent, because redis-py re-sends a command whose reply was lost.
Blocking reads wait at most BLOCK_S seconds on connections whose socket timeout is longer, so an abandoned
pop can never swallow an element (see shared/DESIGN-NOTES.md, note 2).
"""
from __future__ import annotations

import json
import logging
import threading
from importlib import resources
from typing import Any, Callable, Iterator, TypeVar

import redis

from .errors import BackendError
from .keys import PoolKeys

log = logging.getLogger("redispool")

BLOCK_S = 1.0
SOCKET_TIMEOUT_S = 10.0
T = TypeVar("T")

DISPATCHED, PARKED, FULL = 1, 2, 0


def connect(url: str) -> redis.Redis:
    """A client whose socket timeout outlasts every blocking wait redispool makes."""
    try:
        return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=5.0,
                                    health_check_interval=30)
    except ValueError as exc:
        raise BackendError(f"bad Redis URL {url!r}: {exc}") from exc


def _script_source(name: str) -> str:
    folder = resources.files("redispool") / "scripts"
    return (folder / "_lib.lua").read_text() + (folder / f"{name}.lua").read_text()


SCRIPT_NAMES = ("acquire", "release", "withdraw", "register", "deregister", "set_capacity")


class Backend:
    """One pool's view of Redis: typed calls in, small results out, BackendError on failure."""

    def __init__(self, client: redis.Redis, keys: PoolKeys) -> None:
        # Typed loosely: redis-py's response types are unions of every RESP shape.
        self.client: Any = client
        self.keys = keys
        self._scripts = {name: client.register_script(_script_source(name)) for name in SCRIPT_NAMES}

    # -- plumbing -------------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except redis.RedisError as exc:
            raise BackendError(f"pool {self.keys.pool!r}: {what} failed: {exc}") from exc

    def _script(self, name: str, extra_keys: list[str], args: list[Any]) -> Any:
        script = self._scripts[name]
        return self._call(name, lambda: script(keys=self.keys.shared + extra_keys, args=[self.keys.base, *args]))

    # -- the pool's state machine ---------------------------------------------------------------------
    def acquire(self, task_id: str, envelope: bytes, reply_key: str, park: bool) -> int:
        """DISPATCHED, PARKED or FULL (FULL only when park is False)."""
        return int(self._script("acquire", [self.keys.result(task_id)],
                                [task_id, envelope, reply_key, "park" if park else "try"]))

    def release(self, slot: str, task_id: str, reply_key: str, frame: bytes, result_ttl_ms: int) -> bytes | None:
        """Record an outcome; returns the envelope of a parked task this slot must run next, if any."""
        answer = self._script("release", [self.keys.result(task_id), reply_key],
                              [slot, task_id, frame, result_ttl_ms])
        return answer[1] if answer[0] == 2 else None

    def withdraw(self, task_id: str) -> bool:
        return bool(self._script("withdraw", [], [task_id]))

    def register(self, worker_id: str, record: dict[str, Any], slots: list[str]) -> int:
        return int(self._script("register", [self.keys.key("workers")],
                                [worker_id, json.dumps(record), *slots]))

    def deregister(self, worker_id: str, slots: list[str]) -> int:
        return int(self._script("deregister", [self.keys.key("workers")], [worker_id, *slots]))

    def set_capacity(self, capacity: int | None) -> int:
        return int(self._script("set_capacity", [], ["" if capacity is None else str(capacity)]))

    # -- blocking reads (short waits, see module docstring) -------------------------------------------
    def pop_many(self, key: str, count: int, block_s: float = BLOCK_S) -> list[bytes]:
        """Wait up to block_s for key to hold elements, then take up to count of them at once."""
        def pop() -> list[bytes]:
            got = self.client.blmpop(block_s, 1, key, direction="LEFT", count=count)
            return list(got[1]) if got else []
        return self._call("blmpop", pop)

    def batches(self, key: str, count: int, stop: threading.Event) -> Iterator[list[bytes]]:
        """Yield batches popped from key until stop is set; Redis errors are logged and retried with
        backoff (0.05 s doubling to 2 s), so a reader thread outlives a Redis restart."""
        backoff_s = 0.05
        while not stop.is_set():
            try:
                frames = self.pop_many(key, count)
            except BackendError as exc:
                log.warning("reading %s: %s; retrying in %.2f s", key, exc, backoff_s)
                stop.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 2.0)
                continue
            backoff_s = 0.05
            if frames:
                yield frames

    def drain(self, key: str) -> list[bytes]:
        """Take everything left in a list without blocking (a draining worker's last inbox read)."""
        def pop() -> list[bytes]:
            got = self.client.lpop(key, 1_000_000)
            return list(got) if got else []
        return self._call("lpop", pop)

    def read_result(self, task_id: str, block_s: float) -> bytes | None:
        """The task's result frame, waiting up to block_s; the frame stays in place for later readers."""
        key = self.keys.result(task_id)
        if block_s <= 0:
            return self._call("lindex", lambda: self.client.lindex(key, 0))
        # Rotating a one-element list onto itself is a blocking read that leaves the element in place.
        return self._call("blmove", lambda: self.client.blmove(key, key, block_s, "LEFT", "RIGHT"))

    # -- plain reads and small writes ------------------------------------------------------------------
    def push(self, key: str, value: bytes) -> None:
        self._call("rpush", lambda: self.client.rpush(key, value))

    def delete(self, *keys: str) -> None:
        self._call("del", lambda: self.client.delete(*keys))

    def is_parked(self, task_id: str) -> bool:
        return bool(self._call("hexists", lambda: self.client.hexists(self.keys.key("parked"), task_id)))

    def publish_tasks(self, tasks: dict[str, dict[str, Any]]) -> None:
        if tasks:
            mapping = {name: json.dumps(options, default=str) for name, options in tasks.items()}
            self._call("hset", lambda: self.client.hset(self.keys.key("registry"), mapping=mapping))

    def published_tasks(self) -> dict[str, dict[str, Any]]:
        raw = self._call("hgetall", lambda: self.client.hgetall(self.keys.key("registry")))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def workers(self) -> dict[str, dict[str, Any]]:
        raw = self._call("hgetall", lambda: self.client.hgetall(self.keys.key("workers")))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def snapshot(self) -> dict[str, Any]:
        """Counters for stats(), read in one pipelined round trip."""
        k = self.keys.key

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=True)
            pipe.get(k("running")).get(k("capacity")).hlen(k("slots")).llen(k("idle"))
            pipe.llen(k("waiting")).hlen(k("leases")).hlen(k("workers"))
            return pipe.execute()

        running, capacity, slots, idle, waiting, leases, workers = self._call("stats", read)
        return {"running": int(running or 0), "capacity": int(capacity) if capacity is not None else int(slots),
                "capacity_set": capacity is not None, "slots": int(slots), "idle": int(idle),
                "waiting": int(waiting), "leases": int(leases), "workers": int(workers)}

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing is best effort; the pool is going away
            pass
