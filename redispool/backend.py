"""The only module that talks to redis-py: connections, the Lua scripts, and mapping Redis errors.

Scripts (EVALSHA, loaded again on NOSCRIPT, e.g. after a restart or SCRIPT FLUSH) and the blocking pops run
on each thread's own connection (direct.py), the rest through the redis-py client. That is the one place we
send EVALSHA ourselves instead of calling redis-py's `Script`: the hot path runs it once per task, and the
`Script` call cost 115 us of client CPU against 40 (see direct.py); `register_script` still provides each
script's SHA. Every mutating script is idempotent, because a caller re-sends a call whose reply was lost.
Blocking reads wait at most BLOCK_S seconds on connections whose socket timeout is longer, so an abandoned
pop can never swallow an element (see shared/DESIGN-NOTES.md, note 2).
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
from importlib import resources
from urllib.parse import urlsplit, urlunsplit
from typing import Any, Callable, ContextManager, Iterator, Sequence, TypeVar

import redis

from . import protocol
from .direct import DirectCalls
from .errors import BackendError
from .keys import PoolKeys

log = logging.getLogger("redispool")

BLOCK_S = 1.0
SOCKET_TIMEOUT_S = 10.0
T = TypeVar("T")

DISPATCHED, PARKED, QUEUED, FULL = 1, 2, 3, 0


def connect(url: str, client_name: str | None = None) -> redis.Redis:
    """A client whose socket timeout outlasts every blocking wait redispool makes. A client_name lets
    other workers see in CLIENT LIST whether this process is still connected."""
    try:
        return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=5.0,
                                    health_check_interval=30, client_name=client_name)
    except ValueError as exc:
        raise BackendError(f"bad Redis URL {mask_password(url)!r}: {exc}") from None


def bytes_client(client: redis.Redis) -> redis.Redis:
    """redispool reads and writes bytes. A client that decodes replies (decode_responses=True, common in
    applications) is shadowed by one with the same connection settings that does not; the caller's own
    client is left as it is."""
    pool = client.connection_pool
    if not pool.connection_kwargs.get("decode_responses"):
        return client
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


def mask_password(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def is_transient(exc: redis.RedisError) -> bool:
    """Worth retrying: the connection failed or timed out (Redis restarting, a network blip); a wrong
    password, a missing permission or a script error will not fix itself."""
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError)) and not isinstance(
        exc, redis.AuthenticationError)


def _script_source(name: str) -> str:
    folder = resources.files("redispool") / "scripts"
    return (folder / "_lib.lua").read_text() + (folder / f"{name}.lua").read_text()


SCRIPT_NAMES = ("acquire", "release", "withdraw", "register", "heartbeat", "deregister", "abandon", "reap",
                "set_capacity", "bury", "requeue_dead")

# Release modes (see release.lua).
DONE, DEAD, RETRY, LOST = "done", "dead", "retry", "lost"

# Task states, as `task_states` reads them.
PARKED_STATE, ACTIVE_STATE, DONE_STATE, MISSING_STATE = "parked", "active", "done", "missing"


class Backend:
    """One pool's view of Redis: typed calls in, small results out, BackendError on failure."""

    def __init__(self, client: redis.Redis, keys: PoolKeys) -> None:
        # Typed loosely: redis-py's response types are unions of every RESP shape.
        self.client: Any = bytes_client(client)
        self._shadow = self.client is not client  # ours to close, whoever owns `client`
        self.keys = keys
        self._scripts = {name: self.client.register_script(_script_source(name)) for name in SCRIPT_NAMES}
        self._base = keys.base.encode()
        self._direct = DirectCalls(self.client)

    # -- plumbing -------------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except redis.RedisError as exc:
            raise BackendError(f"pool {self.keys.pool!r}: {what} failed: {exc}", transient=is_transient(exc)) from exc

    def _script(self, name: str, extra_keys: Sequence[str | bytes], args: list[Any]) -> Any:
        script = self._scripts[name]
        shared = self.keys.shared
        call = (len(shared) + len(extra_keys), *shared, *extra_keys, self._base, *args)

        def run() -> Any:
            # Loaded again on NOSCRIPT; a SCRIPT FLUSH racing that load falls back to EVAL, which needs no
            # cache. Safe to repeat: every script is idempotent.
            try:
                return self._direct("EVALSHA", script.sha, *call)
            except redis.exceptions.NoScriptError:
                try:
                    self.client.script_load(script.script)
                    return self._direct("EVALSHA", script.sha, *call)
                except redis.exceptions.NoScriptError:
                    return self._direct("EVAL", script.script, *call)

        return self._call(name, run)

    # -- the pool's state machine ---------------------------------------------------------------------
    def acquire(self, task_id: str, envelope: bytes, reply_key: str, park: bool, queue_size: int = 0) -> int:
        """DISPATCHED, PARKED, QUEUED (parked within queue_size) or FULL (only when park is False)."""
        return self.acquire_many([(task_id, envelope)], reply_key, park, queue_size)[0][0]

    def acquire_many(self, tasks: Sequence[tuple[str, bytes]], reply_key: str, park: bool,
                     queue_size: int = 0, take_replies: int = 0) -> tuple[list[int], list[bytes]]:
        """One code per (task id, envelope), as `acquire`, in one round trip; and up to take_replies frames
        taken from the reply list in the same call."""
        args: list[Any] = ["park" if park else "try", queue_size, reply_key, take_replies]
        for task_id, envelope in tasks:
            args += (task_id, envelope)
        answer = self._script("acquire", [], args)
        return [int(code) for code in answer[:len(tasks)]], answer[len(tasks):]

    def release(self, slot: str, task_id: str | bytes, attempt: int, reply_key: str | bytes, mode: str,
                frame: bytes, result_ttl_ms: int, delay_ms: int = 0, error: str = "",
                keep_bytes: int = 0) -> bytes | None:
        """End a run (mode DONE, DEAD, RETRY or LOST); returns the dispatch frame of a parked task this slot
        must run next, if any. A stale release (the lease moved on) writes nothing and returns None.
        keep_bytes: for DEAD, how much of the envelope the dead letter keeps (0: all of it)."""
        answer = self._script("release", [self.keys.result(task_id), reply_key],
                              [slot, task_id, attempt, mode, frame, result_ttl_ms, delay_ms, error, keep_bytes])
        return answer[1] if answer[0] == 2 else None

    def withdraw(self, task_id: str) -> bool:
        return bool(self._script("withdraw", [], [task_id]))

    def register(self, worker_id: str, record: dict[str, Any], heartbeat_ttl_ms: int, slots: list[str]) -> int:
        return int(self._script("register", [], [worker_id, json.dumps(record), heartbeat_ttl_ms, *slots]))

    def heartbeat(self, worker_id: str, ttl_ms: int, draining: bool = False) -> bool:
        """False when the worker is no longer registered and must register again with fresh slots."""
        return bool(self._script("heartbeat", [], [worker_id, ttl_ms, "draining" if draining else ""]))

    def deregister(self, worker_id: str, slots: list[str]) -> int:
        return int(self._script("deregister", [], [worker_id, *slots]))

    def abandon(self, worker_id: str, slots: list[str]) -> int:
        return int(self._script("abandon", [], [worker_id, *slots]))

    def reap(self, lock_ms: int, result_ttl_ms: int) -> int:
        """Recover dead workers' slots and tasks; -1 when another reap ran within lock_ms."""
        return int(self._script("reap", [self.keys.key("reaper")], [lock_ms, result_ttl_ms]))

    def bury(self, record_id: str, data: bytes, error: str) -> None:
        self._script("bury", [], [record_id, data, error])

    def requeue_dead(self, task_id: str, envelope: bytes) -> bool:
        return bool(self._script("requeue_dead", [self.keys.result(task_id)], [task_id, envelope]))

    def set_capacity(self, capacity: int | None) -> int:
        return int(self._script("set_capacity", [], ["" if capacity is None else str(capacity)]))

    # -- blocking reads (short waits, see module docstring) -------------------------------------------
    def pop_many(self, key: str, count: int, block_s: float = BLOCK_S) -> list[bytes]:
        """Wait up to block_s for key to hold elements, then take up to count of them at once."""
        def pop() -> list[bytes]:
            got = self._direct("BLMPOP", block_s, 1, key, "LEFT", "COUNT", count)
            return list(got[1]) if got else []
        return self._call("blmpop", pop)

    def batches(self, key: str | Callable[[], str], count: int, stop: threading.Event,
                on_recover: Callable[[], object] | None = None,
                turn: Callable[[], ContextManager[bool]] | None = None) -> Iterator[list[bytes]]:
        """Yield batches popped from key (re-read each time when a callable; empty after a quiet wait of
        BLOCK_S) until stop is set. Errors are logged and retried with backoff (0.05 s doubling to 2 s), so
        a reader thread outlives a Redis restart, and no unexpected error kills it (a dead executor would
        silently shrink its worker); on_recover runs once Redis answers again after a failure.
        turn: entered around each pop and the handling of its batch; when it yields False, another reader
        has the list and an empty batch is yielded instead (readers still do their periodic work)."""
        backoff_s, failed = 0.05, False
        while not stop.is_set():
            name = key() if callable(key) else key
            with turn() if turn is not None else contextlib.nullcontext(True) as ours:
                if not ours:
                    yield []
                    continue
                try:
                    frames = self.pop_many(name, count)
                except Exception as exc:  # noqa: BLE001  BackendError, or anything unforeseen: keep reading
                    log.warning("reading %s: %s: %s; retrying in %.2f s", name, type(exc).__name__, exc, backoff_s)
                    failed = True
                    frames = None
                if frames is not None:
                    if failed and on_recover is not None:
                        on_recover()
                    backoff_s, failed = 0.05, False
                    yield frames  # empty after a quiet wait, so readers get a chance to do periodic work
                    continue
            stop.wait(backoff_s)
            backoff_s = min(backoff_s * 2, 2.0)

    def drain(self, key: str, count: int = 1_000_000) -> list[bytes]:
        """Take up to count elements left in a list without blocking (a draining worker's last reads)."""
        def pop() -> list[bytes]:
            got = self.client.lpop(key, count)
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

    def wake(self, key: str, readers: int, ttl_ms: int | None = None) -> None:
        """Return `readers` blocked pops on key at once (wake frames). ttl_ms: for a list nobody will read
        again, so the frames left over expire with it (never for a live inbox: it may hold dispatches)."""
        def push() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.rpush(key, *([protocol.WAKE] * readers))
            if ttl_ms is not None:
                pipe.pexpire(key, ttl_ms)
            pipe.execute()
        if readers > 0:
            self._call("wake", push)

    def delete(self, *keys: str) -> None:
        self._call("del", lambda: self.client.delete(*keys))

    def task_states(self, task_ids: list[str]) -> dict[str, str]:
        """Where Redis has each task: parked, active (running or backing off), done, or missing (lost)."""
        k = self.keys.key

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for task_id in task_ids:
                pipe.hexists(k("parked"), task_id).hexists(k("tasks"), task_id).exists(self.keys.result(task_id))
            return pipe.execute()

        flags = self._call("task states", read) if task_ids else []
        states = {}
        for i, task_id in enumerate(task_ids):
            parked, active, done = flags[3 * i: 3 * i + 3]
            states[task_id] = (PARKED_STATE if parked else ACTIVE_STATE if active else DONE_STATE if done
                               else MISSING_STATE)
        return states

    def dead_letters(self) -> list[tuple[dict[str, Any], bytes | None]]:
        """(record, envelope) of each dead letter, oldest first."""
        k = self.keys.key

        def read() -> tuple[list[bytes], list[Any], list[Any]]:
            ids = self.client.zrange(k("dead"), 0, -1)
            if not ids:
                return [], [], []
            return ids, self.client.hmget(k("deadinfo"), ids), self.client.hmget(k("deadenv"), ids)

        ids, infos, envelopes = self._call("dead letters", read)
        return [(json.loads(info), env) for info, env in zip(infos, envelopes, strict=True) if info is not None]

    def dead_envelope(self, task_id: str) -> bytes | None:
        return self._call("hget", lambda: self.client.hget(self.keys.key("deadenv"), task_id))

    def try_lock(self, name: str, ttl_ms: int) -> bool:
        """A short lock (SET NX PX): at most one holder per ttl_ms, whoever asks."""
        return bool(self._call("set", lambda: self.client.set(self.keys.key(name), 1, nx=True, px=ttl_ms)))

    def connected_client_names(self) -> set[str] | None:
        """Names of the connections Redis has open, or None where CLIENT LIST is not allowed."""
        try:
            return {str(c.get("name", "")) for c in self.client.client_list()}
        except (redis.RedisError, AttributeError, TypeError):
            return None

    def server_config(self) -> dict[str, str]:
        """maxmemory-policy, appendonly and save, or {} where CONFIG is not allowed (managed Redis)."""
        out: dict[str, str] = {}
        for name in ("maxmemory-policy", "appendonly", "save"):
            try:
                out.update({str(k): str(v) for k, v in self.client.config_get(name).items()})
            except redis.RedisError:
                return {}
        return out

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
            pipe.llen(k("waiting")).hlen(k("leases")).hlen(k("workers")).zcard(k("delayed")).zcard(k("dead"))
            return pipe.execute()

        running, capacity, slots, idle, waiting, leases, workers, delayed, dead = self._call("stats", read)
        return {"running": int(running or 0), "capacity": int(capacity) if capacity is not None else int(slots),
                "capacity_set": capacity is not None, "slots": int(slots), "idle": int(idle),
                "waiting": int(waiting), "leases": int(leases), "workers": int(workers),
                "delayed": int(delayed), "dead": int(dead)}

    def close(self, close_client: bool = True) -> None:
        """Close the hot path's connections, and the client too unless it belongs to the caller."""
        self._direct.close()
        if not (close_client or self._shadow):
            return
        try:
            self.client.close()
        except Exception:  # closing is best effort; the pool is going away
            pass
