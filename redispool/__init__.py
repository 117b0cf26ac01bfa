"""redispool: a bounded, backpressured, cluster-wide task pool over Redis (GoPool, distributed).

    @redispool.task
    def resize(path: str, width: int) -> str: ...

    future = redispool.submit("images.resize", "a.png", 640)   # blocks while the pool is full
    print(future.result())
"""
from __future__ import annotations

import atexit
import threading
from typing import Any, Callable

from .config import Settings
from .dead_letters import DeadLetter
from .errors import (BackendError, PoolClosed, PoolFull, PoolTimeout, RedisPoolError, ResultTimeout, Retry,
                     SerializationError, TaskError, TaskLost, TaskNotRegistered, TaskTimeout, WorkerLost)
from .options import TaskOptions
from .future import TaskFuture
from .pool import Pool
from .registry import task
from .worker import Worker

__all__ = [
    "Pool", "Worker", "TaskFuture", "Settings", "task", "submit", "default_pool",
    "RedisPoolError", "PoolFull", "PoolTimeout", "PoolClosed", "TaskNotRegistered", "TaskError",
    "SerializationError", "ResultTimeout", "BackendError", "WorkerLost", "TaskLost", "TaskTimeout", "Retry",
    "TaskOptions", "DeadLetter",
]

_default: Pool | None = None
_default_lock = threading.Lock()


def default_pool() -> Pool:
    """The module-level pool "default" (URL from REDISPOOL_URL / REDIS_URL), created on first use and
    closed at interpreter exit."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Pool()
            atexit.register(_default.close)
        return _default


def submit(task_name: str | Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskFuture:
    """`Pool.submit` on the default pool: blocks while the pool is full, returns a TaskFuture."""
    return default_pool().submit(task_name, *args, **kwargs)
