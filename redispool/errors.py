"""The error tree: every failure redispool reports derives from RedisPoolError."""
from __future__ import annotations


class RedisPoolError(Exception):
    """Base of every redispool error."""


class PoolFull(RedisPoolError):
    """Raised by a non-blocking submit when no slot is free (or tasks are already waiting)."""

    def __init__(self, pool: str) -> None:
        super().__init__(f"pool {pool!r} is full")
        self.pool = pool


class PoolTimeout(RedisPoolError):
    """Raised when a blocking submit waited `timeout` seconds without being granted a slot.

    The parked task was withdrawn atomically: it will not run.
    """

    def __init__(self, pool: str, timeout_s: float) -> None:
        super().__init__(f"pool {pool!r}: no slot within {timeout_s:g} s; the task was withdrawn")
        self.pool = pool
        self.timeout_s = timeout_s
        self.submitted: list = []  # submit_many: futures of the tasks that were dispatched before the timeout


class PoolClosed(RedisPoolError):
    """Raised for futures still pending when their pool is closed, and by calls on a closed pool."""


class SerializationError(RedisPoolError):
    """Arguments or a result that msgpack cannot carry, or bytes that are not a valid message."""


class TaskNotRegistered(RedisPoolError):
    """The worker that received the task has no task of that name."""

    def __init__(self, task_name: str, task_id: str | None = None) -> None:
        super().__init__(f"no task named {task_name!r} is registered on the worker")
        self.task_name = task_name
        self.task_id = task_id


class TaskError(RedisPoolError):
    """The task raised: carries the remote exception's type name, message and traceback text."""

    def __init__(self, type_name: str, message: str, traceback: str = "", task_id: str | None = None) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        self.task_id = task_id


class BackendError(RedisPoolError):
    """Redis could not be reached or answered with an error; `__cause__` holds the redis-py error.
    `transient` says whether retrying can help (a lost connection) or not (bad credentials)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ResultTimeout(RedisPoolError, TimeoutError):
    """`Pool.result` waited its timeout and the task's result had not appeared."""


class WorkerLost(RedisPoolError):
    """The worker running the task died (or was paused past its heartbeat TTL) and the task was not
    re-run: its `on_worker_lost` is "fail", or it reached `max_attempts` and was dead-lettered."""

    def __init__(self, message: str, task_id: str | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.attempts = attempts


class TaskLost(RedisPoolError):
    """Redis no longer knows the task (e.g. it restarted without persistence): it may or may not have run."""

    def __init__(self, message: str, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class TaskTimeout(RedisPoolError):
    """The task ran past its `time_limit` and was stopped."""

    def __init__(self, message: str, task_id: str | None = None, time_limit_s: float | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.time_limit_s = time_limit_s


class Retry(Exception):
    """Raise inside a task to ask for another run after `delay` seconds (default: the task's backoff).

    Honoured while the task has retries left (its `retries` option, or `max_retries` given here); the
    slot is released during the delay. Deliberately not a RedisPoolError: it is a request, not a failure.
    """

    def __init__(self, delay: float | None = None, max_retries: int | None = None) -> None:
        super().__init__(f"retry requested (delay={delay!r})")
        self.delay = delay
        self.max_retries = max_retries
