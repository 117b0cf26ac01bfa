"""The one place that names redispool's Redis keys.

Every key of a pool carries the pool's hash tag, `{prefix}:{<pool>}:`, so all of a pool's keys live in one
Redis Cluster slot and each script touches a single slot. The prefix isolates tenants sharing one Redis.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


def check_name(kind: str, value: str) -> str:
    """Pool names and prefixes go into key names and frames: keep them to a safe alphabet."""
    from .errors import RedisPoolError

    if not isinstance(value, str) or not _NAME.match(value):
        raise RedisPoolError(f"{kind} {value!r} must be 1-100 characters of letters, digits, '_', '.', '-'")
    return value


@dataclass(frozen=True)
class PoolKeys:
    """Key names for one pool. `base` is the tagged prefix that scripts extend for per-worker inboxes."""

    prefix: str
    pool: str

    def __post_init__(self) -> None:
        check_name("prefix", self.prefix)
        check_name("pool name", self.pool)

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.pool}}}:"

    def key(self, name: str) -> str:
        return self.base + name

    @functools.cached_property
    def shared(self) -> tuple[bytes, ...]:
        """The keys every script receives first, in the order `_lib.lua` names them (encoded once: they
        are sent with every script call)."""
        return tuple(self.key(n).encode() for n in SHARED_KEYS)

    def inbox(self, worker_id: str) -> str:
        return self.key(f"inbox:{worker_id}")

    def reply(self, client_id: str) -> str:
        return self.key(f"reply:{client_id}")

    def result(self, task_id: str | bytes) -> str | bytes:
        if isinstance(task_id, bytes):  # an id that is not text: only hostile frames carry one
            return self.base.encode() + b"result:" + task_id
        return self.key(f"result:{task_id}")

    def heartbeat(self, worker_id: str) -> str:
        return self.key(f"hb:{worker_id}")


# Order matters: _lib.lua reads KEYS[1..16] under these names.
SHARED_KEYS = (
    "idle",      # LIST, the idle-slot stack (RPUSH/RPOP: last in, first out)
    "running",   # STRING int, slots leased to tasks
    "capacity",  # STRING int, the cluster-wide cap; absent = number of registered slots
    "slots",     # HASH slot id -> worker id, the registered slots
    "waiting",   # LIST of parked task ids, oldest first (re-dispatched tasks go to the front)
    "tasks",     # HASH task id -> envelope, for every parked, running or backing-off task
    "leases",    # HASH slot id -> "<task id>:<attempt>", the task each busy slot runs (the fencing token)
    "owner",     # HASH task id -> slot id, the reverse of leases
    "parked",    # HASH task id -> reply key of the parked submitter
    "handoff",   # HASH slot id -> id of the task whose release handed this slot its current task
    "workers",   # HASH worker id -> JSON record (host, pid, concurrency, tasks)
    "registry",  # HASH task name -> JSON options published by workers (read by the reaper)
    "counts",    # HASH "<task id>:a|l|r" -> dispatches (attempts), worker losses, retries
    "delayed",   # ZSET task id -> Redis-clock ms when a retry backoff ends
    "dead",      # ZSET task id -> Redis-clock ms when it was dead-lettered (oldest trimmed first)
    "deadinfo",  # HASH task id -> JSON record of a dead letter (task, error, attempts, when)
    "deadenv",   # HASH task id -> envelope of a dead letter, for inspection and requeue
)
